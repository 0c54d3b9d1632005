//! `passerelled`: the Passerelle daemon's command line. All the work is in the library.
#![forbid(unsafe_code)]

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use passerelle_daemon::config::HubConfig;
use passerelle_daemon::{Config, Daemon, Error, Listeners, RoleConfig, ValidConfig};

/// jemalloc, not glibc's malloc: a hub's memory is thousands of small per-connection buffers
/// plus bursts (a storm of members, a view sent to all of them). glibc kept the burst's high-water
/// mark resident for good (a hub holding 4,000 idle sessions stayed at its 513 MB peak); jemalloc
/// returns freed pages within a second (351 MB, peak 475 MB). Its settings are compiled in from
/// `.cargo/config.toml`. Measured in BENCHMARKS.md, "Fan-in".
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long in-flight calls get to finish after SIGINT/SIGTERM before the daemon exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Passerelle daemon: runs a structure's node or a network hub.
#[derive(Debug, Parser)]
#[command(name = "passerelled", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the span context (`span`, `spans`) of each event.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node or hub described by a config file until SIGINT or SIGTERM (SIGHUP reloads a
    /// hub's revocation list).
    Run {
        /// The TOML config file (see config/node.example.toml and config/hub.example.toml).
        #[arg(long, short, env = "PASSERELLE_CONFIG")]
        config: PathBuf,
        /// How log lines on stderr look: `text` for people, `json` (one object per line) for a
        /// log collector. Which lines is set by `RUST_LOG` (default `info`, e.g.
        /// `RUST_LOG=passerelle_daemon=debug`).
        #[arg(long, value_enum, env = "PASSERELLE_LOG_FORMAT", default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Start a whole federation of région Pays de la Loire on this machine (two network hubs, the
    /// DREETS consolidation hub, four structures), seed it, show what each party sees, then keep
    /// it running until Ctrl-C with the `passerelle` commands to explore it.
    Demo {
        /// Keep the PKI, configs and stores in DIR (a second run reuses them); by default a
        /// temporary directory is used and removed on exit.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Tell the story, then stop and exit instead of waiting for Ctrl-C (for scripts and CI).
        #[arg(long)]
        once: bool,
    },
    /// Check a config file, its certificates and keys; print what is wrong (exit 2 if anything is).
    CheckConfig {
        /// The TOML config file to check.
        #[arg(long, short, env = "PASSERELLE_CONFIG")]
        config: PathBuf,
    },
}

/// Threads of the blocking pool (store calls); see `main`.
const MAX_BLOCKING_THREADS: usize = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { data_dir, once } => {
            // The story goes to stdout; only warnings and errors are logged, unless RUST_LOG says.
            init_logging_with(LogFormat::Text, "warn");
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(demo::run(demo::Options { data_dir, once })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("passerelled demo: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(valid) => {
                println!("{}: ok ({})", config.display(), describe(&valid));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config, log_format } => {
            init_logging(log_format);
            let valid = match Config::load(&config) {
                Ok(valid) => valid,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            // Store calls run on the blocking pool and a hub's writes serialise on one lock:
            // hundreds of threads queued on it (tokio's default allows 512) cost memory
            // (stacks, allocator arenas) during a storm of members and buy nothing.
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(MAX_BLOCKING_THREADS)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(valid)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "daemon failed");
                    eprintln!("passerelled: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn describe(config: &ValidConfig) -> String {
    let metrics = config.metrics.map(|addr| format!(", metrics http://{addr}/metrics")).unwrap_or_default();
    let role = match &config.role {
        RoleConfig::Node(node) => format!(
            "node {} \"{}\", data_dir {}, api {}{}",
            node.structure.siret,
            node.structure.name,
            config.data_dir.display(),
            config.api.listen,
            if node.tls.is_some() { ", tls to hubs configured" } else { "" }
        ),
        RoleConfig::Hub(hub) => format!(
            "hub {} (network {}, région {}), data_dir {}, listen {} (mutual tls, trusting {}), api {}",
            hub.id,
            hub.network,
            hub.region,
            config.data_dir.display(),
            hub.listen,
            hub.tls
                .trust
                .iter()
                .map(|a| {
                    let roles: Vec<&str> = a.roles.iter().map(|r| r.as_str()).collect();
                    format!("{} for {}", a.network, roles.join("+"))
                })
                .collect::<Vec<_>>()
                .join(", "),
            config.api.listen
        ),
    };
    format!("{role}{metrics}")
}

async fn serve(config: ValidConfig) -> Result<(), Error> {
    let kind = if config.hub().is_some() { "hub" } else { "node" };
    if let Some((before, after)) = passerelle_daemon::raise_open_file_limit() {
        let connections = config.limits.max_connections as u64;
        if after < connections + config.limits.max_handshakes as u64 {
            tracing::warn!(
                before,
                after,
                connections,
                "open-file limit below [limits] max_connections; raise LimitNOFILE"
            );
        } else if after != before {
            tracing::info!(before, after, "open-file limit raised");
        }
    }
    let listeners = Listeners::bind(&config).await?;
    let gui_scheme = match &config.gui {
        Some(gui) if gui.tls.is_some() => "https",
        _ => "http",
    };
    // SIGHUP reads the file again, here, and hands the hub the settings parsed.
    let config_file = config.source.clone();
    let daemon = tokio::task::spawn_blocking(move || Daemon::open(config)).await??;
    // Scripts (and the end-to-end tests) read these lines; logs go to stderr.
    println!("passerelled: {kind} api listening on {}", listeners.api_addr()?);
    if let Some(addr) = listeners.hub_addr()? {
        println!("passerelled: hub listening on {addr}");
    }
    if let Some(addr) = listeners.metrics_addr()? {
        println!("passerelled: metrics listening on http://{addr}/metrics");
    }
    if let Some(addr) = listeners.gui_addr()? {
        println!("passerelled: gui listening on {gui_scheme}://{addr}");
    }
    println!("passerelled: ready");

    if let Some(hub) = daemon.hub().cloned() {
        tokio::spawn(async move {
            let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hangups.recv().await.is_some() {
                let hub = hub.clone();
                let config_file = config_file.clone();
                let reload = move || hub.reload(&HubConfig::reread(config_file.as_deref())?);
                match tokio::task::spawn_blocking(reload).await {
                    Ok(Ok(serials)) => {
                        tracing::info!(denied = serials.len(), "SIGHUP: revocation list reloaded")
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "SIGHUP: reload failed, keeping the current list")
                    }
                    Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
                }
            }
        });
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut deadline_rx = stop_rx.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested, finishing in-flight calls");
        let _ = stop_tx.send(true);
    });
    let shutdown = async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::select! {
        served = daemon.serve(listeners, shutdown) => served,
        _ = async {
            let _ = deadline_rx.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_DEADLINE).await;
        } => {
            tracing::warn!(deadline = ?SHUTDOWN_DEADLINE, "shutdown deadline passed, exiting with calls in flight");
            Ok(())
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        // Without signal handlers the daemon still stops on kill; never stop spontaneously.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn init_logging(format: LogFormat) {
    init_logging_with(format, "info");
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` or else `default_filter`.
fn init_logging_with(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).init(),
    }
}
