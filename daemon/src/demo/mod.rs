//! `passerelled demo`: a whole federation of région Pays de la Loire (52) on this machine, in one
//! command — two network hubs, the DREETS consolidation hub and four structures, each a real
//! daemon with its own sled store, talking gRPC over mutual TLS on loopback ports.
//!
//! The demo is a client of the system like any other: it creates the PKI with `passerelle pki`'s
//! library, writes ordinary config files, starts the daemons through the library's `Daemon`, and
//! seeds and reads everything through the public APIs. Nothing in here reaches into a store.

mod cast;
mod federation;
mod seed;
mod story;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use passerelle_proto::date::Date;

use cast::{CONSOLIDATION, NETWORKS, STRUCTURES};
use federation::{Federation, Pki};

/// What `passerelled demo` was asked.
#[derive(Debug)]
pub(crate) struct Options {
    /// Where to keep everything between runs; a temporary directory (removed on exit) if `None`.
    pub(crate) data_dir: Option<PathBuf>,
    /// Tell the story and stop, instead of running until Ctrl-C.
    pub(crate) once: bool,
}

/// Sets the federation up, tells the story, then serves until Ctrl-C (unless `once`).
pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let (dir, temporary) = match &options.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating --data-dir {}", dir.display()))?;
            (dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?, None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("passerelle-demo-")
                .tempdir()
                .context("creating a temporary directory")?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    println!("Passerelle demo: région Pays de la Loire (52)");
    println!(
        "data: {} ({})",
        dir.display(),
        if temporary.is_some() { "temporary, removed on exit; --data-dir DIR keeps it" } else { "kept" }
    );

    let (pki, created) = Pki::open_or_create(&dir.join("pki"))?;
    let federation = Federation::start(&dir, &pki).await?;
    println!(
        "PKI: {} one CA per network ({}) in {}",
        if created { "created" } else { "reusing" },
        Pki::networks().collect::<Vec<_>>().join(", "),
        dir.join("pki").display()
    );
    println!("hubs:");
    println!(
        "  {:<12} consolidation (DREETS), mutual TLS {}",
        CONSOLIDATION,
        federation.consolidation.hub_endpoint()?
    );
    for ((id, network), hub) in NETWORKS.iter().zip(&federation.networks) {
        println!(
            "  {id:<12} network {network}, mutual TLS {}, relays to {CONSOLIDATION}",
            hub.hub_endpoint()?
        );
    }
    println!("structures:");
    for cast in &STRUCTURES {
        println!(
            "  {:<4} {}  {:<26} SIRET {}  member of {}",
            cast.kind.to_uppercase(),
            cast.departement,
            cast.name,
            cast.siret,
            cast.hubs.join(", ")
        );
    }

    // Ctrl-C at any point stops the daemons cleanly and removes the temporary directory.
    let told = tokio::select! {
        told = tell(&federation, &dir) => Some(told),
        () = crate::wait_for_signal() => None,
    };
    let interrupted = match told {
        Some(Err(e)) => {
            federation.stop().await?;
            return Err(e);
        }
        Some(Ok(())) => {
            println!("\nstory told in {:.1} s", started.elapsed().as_secs_f64());
            if !options.once {
                println!("Press Ctrl-C to stop the federation.");
                crate::wait_for_signal().await;
            }
            false
        }
        None => true,
    };
    println!("{}stopping the daemons…", if interrupted { "interrupted: " } else { "" });
    federation.stop().await?;
    match temporary {
        Some(temp) => {
            let path = temp.path().display().to_string();
            temp.close().with_context(|| format!("removing {path}"))?;
            println!("removed {path}");
        }
        None => println!(
            "kept {}: `passerelled demo --data-dir {}` starts it again",
            dir.display(),
            dir.display()
        ),
    }
    Ok(())
}

/// Seeds (on the first run), waits for sync, and prints each part of the story.
async fn tell(federation: &Federation, dir: &std::path::Path) -> anyhow::Result<()> {
    let today = Date::today();
    let quarter = cast::last_quarter(today);
    let marker = dir.join("seeded");
    if marker.exists() {
        println!("data: reusing the needs, persons and reports of the previous run");
    } else {
        let seeded = seed::seed(federation, today).await?;
        std::fs::write(&marker, "seeded\n").with_context(|| format!("writing {}", marker.display()))?;
        println!(
            "seeded through the nodes' APIs: {} needs, {} persons with {} consents, {} monthly reports (12 months × {} structures)",
            seeded.needs,
            seeded.persons,
            seeded.consents,
            seeded.reports,
            STRUCTURES.len()
        );
    }
    let months = cast::last_twelve_months(today);
    story::wait_for_sync(federation, &months).await?;
    story::close_months(federation, &months).await?;
    story::members(federation).await?;
    story::pooled_needs(federation).await?;
    story::consolidated_table(federation, &quarter).await?;
    story::withdrawal(federation).await?;
    story::commands(federation, &quarter)?;
    Ok(())
}
