//! `passerelled`: the Passerelle daemon's command line. All the work is in the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use passerelle_daemon::{Config, Daemon, Error};

/// How long in-flight calls get to finish after SIGINT/SIGTERM before the daemon exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Passerelle daemon: runs a structure's node.
#[derive(Debug, Parser)]
#[command(name = "passerelled", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon described by a config file until SIGINT or SIGTERM.
    Run {
        /// The TOML config file (see config/node.example.toml).
        #[arg(long, short, env = "PASSERELLE_CONFIG")]
        config: PathBuf,
    },
    /// Check a config file and print what is wrong with it (exit 2 if anything is).
    CheckConfig {
        /// The TOML config file to check.
        #[arg(long, short, env = "PASSERELLE_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(valid) => {
                println!(
                    "{}: ok (node {} \"{}\", data_dir {}, api {})",
                    config.display(),
                    valid.structure.siret,
                    valid.structure.name,
                    valid.data_dir.display(),
                    valid.api_listen
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            init_logging();
            let valid = match Config::load(&config) {
                Ok(valid) => valid,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Runtime::new() {
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

async fn serve(config: passerelle_daemon::ValidConfig) -> Result<(), Error> {
    let listen = config.api_listen;
    let daemon = tokio::task::spawn_blocking(move || Daemon::open(&config)).await??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::io(format!("binding api.listen {listen}"), e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("reading the listener address", e))?;
    // The one line on stdout: scripts (and the end-to-end tests) wait for it.
    println!("passerelled: node api listening on {addr}");

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
        served = daemon.serve(listener, shutdown) => served,
        _ = async {
            let _ = deadline_rx.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_DEADLINE).await;
        } => {
            tracing::warn!(deadline = ?SHUTDOWN_DEADLINE, "shutdown deadline passed, exiting with calls in flight");
            Ok(())
        }
    }
}

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

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
