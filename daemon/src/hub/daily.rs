//! A hub's daily clean-up: what it no longer needs to remember goes, at start and then every
//! day — tombstones after `[hub] tombstone_retention_days` (`tombstones.rs`), introduction
//! requests `[hub] introduction_retention_days` after their expiry (`introductions.rs`).

use std::sync::Arc;
use std::time::Duration;

use passerelle_proto::date::now_unix_ms;
use tokio::sync::watch;

use super::Hub;

/// The instant `retention` before now, in milliseconds.
fn cutoff(retention: Duration) -> i64 {
    now_unix_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
}

/// Runs the clean-up at start and then daily, until `stop` turns true.
pub(crate) fn start(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let h = hub.clone();
            let done = tokio::task::spawn_blocking(move || -> crate::error::Result<(usize, usize)> {
                let tombstones = h.forget_tombstones(cutoff(h.config.tombstone_retention))?;
                let introductions = h.forget_introductions(cutoff(h.config.introduction_retention))?;
                Ok((tombstones, introductions))
            })
            .await;
            match done {
                Ok(Ok((0, 0))) => {}
                Ok(Ok((tombstones, introductions))) => {
                    tracing::info!(
                        tombstones,
                        introductions,
                        "expired tombstones and introductions forgotten"
                    );
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "daily clean-up failed"),
                Err(e) => tracing::warn!(error = %e, "daily clean-up task failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}
