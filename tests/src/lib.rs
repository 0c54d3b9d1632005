//! Helpers for Passerelle's end-to-end tests: real daemons (in-process on `127.0.0.1:0`, or as
//! child processes), real sled stores in temporary directories, and the real `passerelle` binary.
//!
//! Binaries are the workspace's own build outputs (`target/<profile>/passerelled`), built once by
//! `cargo nextest run --workspace` / `cargo test --workspace`; tests never rebuild them.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use passerelle_daemon::{Config, ValidConfig};

/// A valid SIRET (Luhn) for the structure most tests use.
pub const SIRET: &str = "73282932000074";

/// The path of a workspace binary next to the running test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`), or run the tests with `cargo nextest run --workspace`",
        path.display()
    );
    path
}

/// Writes a node config for `siret` into `dir/node.toml`, with its data in `dir/data` and the API
/// on `listen`.
pub fn write_node_config(dir: &Path, siret: &str, listen: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"data\"\n\n[node]\nsiret = \"{siret}\"\nkind = \"ai\"\nname = \"Tremplin Travail\"\ndepartement = \"49\"\n\n[api]\nlisten = \"{listen}\"\n"
        ),
    )?;
    Ok(path)
}

/// A node daemon running inside the test process, on a free loopback port.
pub struct InProcessNode {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The config the node runs with (data in `dir/data`).
    pub config: ValidConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<passerelle_daemon::Result<()>>>,
}

impl InProcessNode {
    /// Starts a node whose data lives in `dir` (reuse the same `dir` to restart on the same data).
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let config_path = write_node_config(dir, SIRET, "127.0.0.1:0")?;
        let config = Config::load(&config_path)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(passerelle_daemon::run(config.clone(), listener, async {
            let _ = stopped.await;
        }));
        Ok(Self { endpoint, config, stop: Some(stop), task: Some(task) })
    }

    /// Stops the node gracefully and waits until its store is closed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

/// A `passerelled` child process.
pub struct ChildDaemon {
    /// The process.
    pub child: Child,
    /// `http://ADDR` announced on its stdout.
    pub endpoint: String,
}

impl ChildDaemon {
    /// Starts `passerelled run --config CONFIG` and waits for its "listening on" line.
    pub fn spawn(config: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(bin("passerelled"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning passerelled")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("passerelled: node api listening on ") else {
            let status = child.wait()?;
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut stderr)?;
            }
            bail!("passerelled did not start ({status}): {line}{stderr}");
        };
        Ok(Self { endpoint: format!("http://{addr}"), child })
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a `passerelle` invocation did.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// Parses stdout as JSON, failing with the whole output if it is not.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.stdout).with_context(|| format!("stdout is not JSON: {self:?}"))
    }

    /// Fails unless the command exited 0.
    pub fn ok(self) -> anyhow::Result<Self> {
        if self.code != 0 {
            bail!("passerelle failed: {self:?}");
        }
        Ok(self)
    }
}

/// Runs `passerelle --endpoint ENDPOINT ARGS...` (blocking; call from `spawn_blocking` in async
/// tests, or use [`cli_async`]).
pub fn cli(endpoint: &str, args: &[&str]) -> CliOutput {
    let output = Command::new(bin("passerelle"))
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .env_remove("PASSERELLE_ENDPOINT")
        .output()
        .expect("running passerelle");
    CliOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`cli`] without blocking the async runtime.
pub async fn cli_async(endpoint: &str, args: &[&str]) -> CliOutput {
    let endpoint = endpoint.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || cli(&endpoint, &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("cli task")
}

/// Arguments of a valid `need add`.
pub fn need_add_args() -> Vec<&'static str> {
    vec![
        "need",
        "add",
        "--rome",
        "K2204",
        "--title",
        "Agent d'entretien",
        "--contract",
        "mise-a-disposition",
        "--positions",
        "2",
        "--hours",
        "24",
        "--departement",
        "49",
        "--commune",
        "49007",
        "--start",
        "2026-12-01",
    ]
}

/// Arguments of a valid `person add`.
pub fn person_add_args() -> Vec<&'static str> {
    vec![
        "person",
        "add",
        "--first-name",
        "Camille",
        "--last-name",
        "Martin",
        "--birth-date",
        "1990-04-02",
        "--commune",
        "49007",
        "--rome",
        "K2204,G1602",
        "--available-from",
        "2026-12-01",
    ]
}

/// Arguments of a valid `indicators submit`.
pub fn indicators_submit_args(period: &'static str) -> Vec<&'static str> {
    vec![
        "indicators",
        "submit",
        "--period",
        period,
        "--etp",
        "12.5",
        "--employees",
        "20",
        "--hours",
        "1700",
        "--hires",
        "3",
        "--exits-total",
        "4",
        "--exits-durable",
        "1",
        "--exits-transition",
        "1",
        "--exits-positive",
        "1",
        "--exits-other",
        "1",
    ]
}
