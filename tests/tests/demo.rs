//! `passerelled demo` as a user runs it: a real child process that sets a whole federation up,
//! tells the story, prints `passerelle` commands that work as printed, and cleans up on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use passerelle_tests::bin;

/// Longer than the demo needs on a loaded 2-core machine (it takes about a second).
const STORY_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `passerelled demo` whose stdout lines arrive on a channel.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn spawn(args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(bin("passerelled"))
            .arg("demo")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning passerelled demo")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines, seen: Vec::new() })
    }

    /// Reads lines until one satisfies `until` (or the output ends, which fails).
    fn read_until(&mut self, until: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        loop {
            match self.lines.recv_timeout(STORY_TIMEOUT) {
                Ok(line) => {
                    let done = until(&line);
                    self.seen.push(line);
                    if done {
                        return Ok(());
                    }
                }
                Err(e) => bail!("the demo stopped talking ({e}); it printed:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Reads everything until the process closes stdout, then its exit status.
    fn finish(mut self) -> anyhow::Result<(std::process::ExitStatus, String)> {
        while let Ok(line) = self.lines.recv_timeout(STORY_TIMEOUT) {
            self.seen.push(line);
        }
        let status = self.child.wait()?;
        Ok((status, self.seen.join("\n")))
    }

    fn output(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What every telling of the story must show.
fn assert_story(out: &str) {
    for expected in [
        "dreets-52 holds all 4 structures' reports, relayed by both networks",
        "── Closing the reported months on dreets-52 and the network hubs",
        "each closed month's tables are frozen",
        "── Members of coorace-pdl",
        "node/85204617600016  accepted  Les Jardins du Bocage",
        "── Members of fas-pdl",
        "hub/coorace-pdl  accepted",
        "9 needs from 3 structures",
        "fewer than 3 structures",
        "coorace-pdl deleted the profile and acknowledged the purge",
        "purge-ack      coorace-pdl",
        "hash chain intact",
        "the same analyst at coorace-pdl: refused (a network hub serves its own network's consumers only)",
    ] {
        assert!(out.contains(expected), "the story lacks {expected:?}:\n{out}");
    }
    // The operator closed the twelve seeded months, each with the 4 structures reported.
    let closed = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() == 6 && f[1] == "closed" && f[4] == "4" && f[5] == "4")
        .count();
    assert_eq!(closed, 12, "twelve closed months, 4 of 4 reported:\n{out}");
    // The consolidated région total is published, with the sector's dynamic-exit rate.
    let total = out.lines().find(|l| l.starts_with("all ")).unwrap_or_default();
    let figures: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(figures.get(1), Some(&"4"), "the région total counts the 4 structures: {total}");
    let rate: f64 = figures.last().and_then(|r| r.parse().ok()).unwrap_or_default();
    assert!((45.0..75.0).contains(&rate), "dynamic-exit rate {rate} in {total}");
    // The structure in both networks does not see its own needs among the pooled ones.
    let pooled = out.split("── Pooled needs").nth(1).and_then(|s| s.split("── ").next()).unwrap_or_default();
    assert!(!pooled.contains("Les Jardins du Bocage    "), "own needs listed as pooled:\n{pooled}");
}

#[test]
fn the_demo_tells_the_story_its_commands_work_and_ctrl_c_removes_everything() -> anyhow::Result<()> {
    let mut demo = Demo::spawn(&[])?;
    demo.read_until(|l| l == "Press Ctrl-C to stop the federation.")?;
    let out = demo.output();
    assert_story(&out);
    let dir: PathBuf = out
        .lines()
        .find_map(|l| l.strip_prefix("data: ")?.split(" (temporary").next().map(PathBuf::from))
        .context("no data line")?;
    for network in ["consolidation", "coorace", "fas"] {
        ensure!(
            dir.join(format!("pki/ca-{network}/ca.pem")).exists(),
            "{network}'s CA is in {}",
            dir.display()
        );
    }

    // Every command printed works as printed, against the running federation.
    let cli = bin("passerelle").display().to_string();
    let commands: Vec<&str> = out.lines().filter(|l| l.starts_with(&format!("{cli} "))).collect();
    ensure!(commands.len() >= 10, "too few commands printed:\n{out}");
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let run = Command::new(words[0]).args(&words[1..]).output()?;
        let stdout = String::from_utf8_lossy(&run.stdout);
        ensure!(
            run.status.success() && !stdout.trim().is_empty(),
            "{command}\nfailed ({}): {}{}",
            run.status,
            stdout,
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let members = commands.iter().find(|c| c.ends_with("hub members")).context("hub members")?;
    let words: Vec<&str> = members.split_whitespace().collect();
    let listed = String::from_utf8(Command::new(words[0]).args(&words[1..]).output()?.stdout)?;
    assert_eq!(listed.lines().filter(|l| l.contains("accepted")).count(), 3, "{listed}");

    // The metrics URLs printed answer too.
    let urls: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("curl -s ")?.split_whitespace().next()).collect();
    assert_eq!(urls.len(), 2, "{out}");
    for (url, expected) in
        urls.iter().zip(["passerelle_sync_lag_seconds{hub=\"coorace-pdl\"} 0", "passerelle_hub_members"])
    {
        let addr = url.trim_start_matches("http://").trim_end_matches("/metrics");
        let mut stream = std::net::TcpStream::connect(addr)?;
        use std::io::{Read, Write};
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut page = String::new();
        stream.read_to_string(&mut page)?;
        assert!(page.starts_with("HTTP/1.1 200") && page.contains(expected), "{url}: {page}");
    }

    // Ctrl-C: the daemons stop cleanly and the temporary directory goes.
    let status = Command::new("kill").args(["-INT", &demo.child.id().to_string()]).status()?;
    ensure!(status.success(), "kill -INT failed");
    let (status, out) = demo.finish()?;
    assert!(status.success(), "the demo exited with {status}:\n{out}");
    assert!(out.contains(&format!("removed {}", dir.display())), "{out}");
    assert!(!dir.exists(), "{} is still there", dir.display());
    Ok(())
}

#[test]
fn a_kept_data_dir_is_reused_without_duplicating_anything() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("demo");
    let data_arg = data.display().to_string();
    let (status, first) = Demo::spawn(&["--data-dir", &data_arg, "--once"])?.finish()?;
    assert!(status.success(), "first run: {status}\n{first}");
    assert_story(&first);
    assert!(first.contains("PKI: created"), "{first}");
    assert!(first.contains("seeded through the nodes' APIs: 12 needs, 13 persons"), "{first}");

    let (status, second) = Demo::spawn(&["--data-dir", &data_arg, "--once"])?.finish()?;
    assert!(status.success(), "second run: {status}\n{second}");
    assert_story(&second);
    assert!(second.contains("PKI: reusing"), "{second}");
    assert!(second.contains("reusing the needs, persons and reports"), "{second}");
    assert!(second.contains("a previous run withdrew it"), "{second}");
    assert!(second.contains(&format!("kept {}", data.canonicalize()?.display())), "{second}");
    assert!(data.join("seeded").exists());
    Ok(())
}
