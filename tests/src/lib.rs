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
use passerelle_daemon::{Config, Listeners, ValidConfig};

pub mod console;
pub mod fanin;
pub mod fixtures;
pub mod hostile;
pub mod http;
pub mod pki;
pub mod webdriver;
pub mod wire;

/// A free loopback port, for a daemon a test must restart at the same address. (The port is
/// released before the daemon binds it; another process could take it in between, which on a
/// test machine does not happen in practice.)
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

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

/// A daemon (node or hub) running inside the test process, on free loopback ports.
pub struct InProcessDaemon {
    /// `http://127.0.0.1:PORT` of the local API (plaintext loopback).
    pub endpoint: String,
    /// `127.0.0.1:PORT` of the hub's mutual-TLS listener, on a hub.
    pub hub_addr: Option<std::net::SocketAddr>,
    /// `127.0.0.1:PORT` of the metrics listener, when the config has `[metrics]`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `127.0.0.1:PORT` of the web console, when the config has `[gui]`.
    pub gui_addr: Option<std::net::SocketAddr>,
    /// The config it runs with.
    pub config: ValidConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<passerelle_daemon::Result<()>>>,
}

/// The node most tests use.
pub type InProcessNode = InProcessDaemon;

impl InProcessDaemon {
    /// Starts a node whose data lives in `dir` (reuse the same `dir` to restart on the same data).
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let config_path = write_node_config(dir, SIRET, "127.0.0.1:0")?;
        Self::start_config(&config_path).await
    }

    /// Starts the daemon a config file describes (its listen addresses should use port 0).
    pub async fn start_config(config_path: &Path) -> anyhow::Result<Self> {
        let config = Config::load(config_path)?;
        let listeners = Listeners::bind(&config).await?;
        let endpoint = format!("http://{}", listeners.api_addr()?);
        let hub_addr = listeners.hub_addr()?;
        let metrics_addr = listeners.metrics_addr()?;
        let gui_addr = listeners.gui_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Open first, so a failure to start is this call's error, not a reset connection later.
        let daemon = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || passerelle_daemon::Daemon::open(config)).await??
        };
        let task = tokio::spawn(daemon.serve(listeners, async {
            let _ = stopped.await;
        }));
        Ok(Self { endpoint, hub_addr, metrics_addr, gui_addr, config, stop: Some(stop), task: Some(task) })
    }

    /// `https://localhost:PORT` of the hub listener.
    pub fn hub_endpoint(&self) -> String {
        format!("https://localhost:{}", self.hub_addr.map(|a| a.port()).unwrap_or_default())
    }

    /// On a hub: closes the months given through the operator API, as an operator would
    /// (consumers read closed periods only).
    pub async fn close_periods(&self, periods: &[&str]) -> anyhow::Result<()> {
        let hub = passerelle_client::HubClient::connect(&self.endpoint, None).await?;
        for period in periods {
            hub.close_period(period).await?;
        }
        Ok(())
    }

    /// Stops the daemon gracefully and waits until its store is closed.
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
    /// `http://ADDR` of the local API announced on its stdout.
    pub endpoint: String,
    /// The hub listener's address, on a hub.
    pub hub_addr: Option<String>,
    /// The web console's `http(s)://ADDR`, when configured.
    pub gui_url: Option<String>,
}

impl ChildDaemon {
    /// Starts `passerelled run --config CONFIG` and waits for its `ready` line.
    pub fn spawn(config: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(config, &[], "warn")
    }

    /// [`ChildDaemon::spawn`] with extra `run` flags and a `RUST_LOG` filter; its stderr (the
    /// logs) stays piped in `child.stderr` for the test to read.
    pub fn spawn_with(config: &Path, extra_args: &[&str], rust_log: &str) -> anyhow::Result<Self> {
        Self::spawn_binary(&bin("passerelled"), config, extra_args, rust_log)
    }

    /// [`ChildDaemon::spawn_with`] for another build of `passerelled` (a benchmark comparing
    /// two versions).
    pub fn spawn_binary(
        binary: &Path,
        config: &Path,
        extra_args: &[&str],
        rust_log: &str,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(binary)
            .arg("run")
            .args(extra_args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning passerelled")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut endpoint, mut hub_addr, mut gui_url) = (None, None, None);
        loop {
            let line = lines.next().transpose()?.unwrap_or_default();
            if let Some(addr) = line.split(" api listening on ").nth(1) {
                endpoint = Some(format!("http://{addr}"));
            } else if let Some(addr) = line.strip_prefix("passerelled: hub listening on ") {
                hub_addr = Some(addr.to_string());
            } else if let Some(url) = line.strip_prefix("passerelled: gui listening on ") {
                gui_url = Some(url.to_string());
            } else if line == "passerelled: ready" {
                break;
            } else {
                let status = child.wait()?;
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    std::io::Read::read_to_string(&mut e, &mut stderr)?;
                }
                bail!("passerelled did not start ({status}): {line}{stderr}");
            }
        }
        Ok(Self { endpoint: endpoint.context("no api line")?, hub_addr, gui_url, child })
    }

    /// SIGTERM, then waits for the daemon to exit (a graceful shutdown: its store is closed).
    pub fn terminate(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.child.id());
        self.child.wait()?;
        Ok(())
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

/// The records a stopped hub holds of `origin` in `dataset`, read from its sled store on disk:
/// (key, version, live).
pub fn hub_records_on_disk(
    hub_config: &Path,
    origin: &str,
    dataset: &str,
) -> anyhow::Result<Vec<(String, u64, bool)>> {
    let config = Config::load(hub_config)?;
    let settings = config.hub().context("not a hub config")?.clone();
    let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
    Ok(hub
        .records_of(origin, dataset.parse()?)?
        .into_iter()
        .map(|(k, r)| (k, r.version, r.is_live()))
        .collect())
}

/// The live anonymised profiles a stopped hub holds of `origin`, read from its store on disk,
/// with their pseudonyms.
pub fn hub_profiles_on_disk(
    hub_config: &Path,
    origin: &str,
) -> anyhow::Result<Vec<passerelle_proto::v1::AnonymizedProfile>> {
    let config = Config::load(hub_config)?;
    let settings = config.hub().context("not a hub config")?.clone();
    let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
    Ok(hub
        .records_of(origin, passerelle_proto::datasets::Dataset::Profiles)?
        .into_iter()
        .filter_map(|(_, r)| r.profile.filter(|_| !r.deleted))
        .collect())
}

/// Whether any file under `dir` contains `needle` (raw bytes, as an attacker with the disk sees).
pub fn dir_contains(dir: &Path, needle: &str) -> anyhow::Result<bool> {
    Ok(dir_find(dir, needle)?.is_some())
}

/// Where `needle` occurs under `dir`: the file and the bytes around it (to tell a leak from a
/// coincidence when a test fails).
pub fn dir_find(dir: &Path, needle: &str) -> anyhow::Result<Option<(PathBuf, String)>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if let Some(found) = dir_find(&path, needle)? {
                return Ok(Some(found));
            }
        } else {
            let bytes = std::fs::read(&path)?;
            // A short all-digit needle (a commune code) also occurs by chance inside the hex
            // strings a store holds (pseudonyms, fingerprints): flanked by hex digits on both
            // sides it is such a coincidence — stored as a field, it follows its length byte.
            let numeric = needle.bytes().all(|b| b.is_ascii_digit());
            let alone = |at: usize| {
                let before = at.checked_sub(1).map(|i| bytes[i]);
                let after = bytes.get(at + needle.len()).copied();
                !numeric || ![before, after].iter().all(|b| b.is_some_and(|b| b.is_ascii_hexdigit()))
            };
            let mut hits = bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle.as_bytes());
            if let Some((at, _)) = hits.find(|(at, _)| alone(*at)) {
                let around = &bytes[at.saturating_sub(48)..(at + needle.len() + 48).min(bytes.len())];
                return Ok(Some((path, String::from_utf8_lossy(around).into_owned())));
            }
        }
    }
    Ok(None)
}
