//! The network side of introductions: sending a request, the answers owed, and reading the hub's
//! mailbox, all unary `HubSync` calls over the node's own mutual-TLS connection.
//!
//! What is owed lives in the records (`node/introductions.rs`), so a hub that cannot be reached
//! only delays it: every sync session exchanges at its start and then every
//! [`EXCHANGE_EVERY`], and the API calls that change something (and `introductions list`)
//! exchange at once with the hub concerned. A hub's refusal of a request at `need introduce`
//! is the caller's error (the request is forgotten); later refusals are logged and settled.

use std::sync::Arc;
use std::time::Duration;

use passerelle_proto::datasets::Dataset;
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::{
    Introduction, MailboxRequest, MailboxResponse, ReplyIntroductionRequest, SendIntroductionRequest,
};
use tokio::sync::watch;
use tonic::transport::Channel;

use super::introductions::IntroductionKeys;
use super::sealing;
use super::sync_engine::{Link, SyncEngine};
use crate::error::{Error, Result};
use crate::sync::link::status_text;

/// How often an open sync session reads the hub's mailbox.
pub(crate) const EXCHANGE_EVERY: Duration = Duration::from_secs(60);
/// Requests asked per `Mailbox` page (the hub caps it too).
const MAILBOX_PAGE: u32 = 200;
/// Most requests a node takes from one hub's mailbox: a bound on what a hostile hub can make it
/// hold (about 2 KB each).
const MAX_MAILBOX: usize = 20_000;
/// How long a request waits for the hub to acknowledge what was committed before it (its need).
const CATCH_UP: Duration = Duration::from_secs(5);

/// A status the hub may answer differently later (not a refusal).
fn transient(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
            | tonic::Code::Internal
    )
}

fn refused(hub: &str, status: &tonic::Status) -> Error {
    if transient(status.code()) {
        Error::Unavailable(format!("hub {hub}: {}", status_text(status)))
    } else {
        Error::HubRefused { hub: hub.into(), code: status.code(), message: status.message().into() }
    }
}

impl SyncEngine {
    fn introduction_keys(&self) -> Result<IntroductionKeys> {
        let tls = self.tls.as_ref().ok_or_else(|| Error::Config("introductions need [tls]".into()))?;
        Ok(IntroductionKeys {
            ca: tls.ca.clone(),
            key: tls.key.clone(),
            retention: self.introduction_retention,
        })
    }

    fn link(&self, hub_id: &str) -> Result<&Arc<Link>> {
        self.links.iter().find(|l| l.config.id == hub_id).ok_or_else(|| {
            Error::FailedPrecondition(format!("hub_id \"{hub_id}\": not a hub this node syncs with"))
        })
    }

    /// `need introduce`: records the request and sends it now; queued if the hub is unreachable.
    pub(crate) async fn introduce(&self, need_id: &str, hub_id: Option<&str>) -> Result<Introduction> {
        let sharing: Vec<&Arc<Link>> =
            self.links.iter().filter(|l| l.config.datasets.contains(&Dataset::Needs)).collect();
        let link = match hub_id {
            Some(id) => *sharing.iter().find(|l| l.config.id == id).ok_or_else(|| {
                Error::FailedPrecondition(format!("hub_id \"{id}\": needs are not shared with this hub"))
            })?,
            None => match sharing.as_slice() {
                [one] => *one,
                [] => return Err(Error::FailedPrecondition("needs are not shared with any hub".into())),
                several => {
                    let ids: Vec<&str> = several.iter().map(|l| l.config.id.as_str()).collect();
                    return Err(passerelle_proto::validate::FieldError::rule(
                        "hub",
                        format!("required: the need is shared with several hubs ({})", ids.join(", ")),
                    )
                    .into());
                }
            },
        };
        let hub = link.config.id.clone();
        let (node, need, h) = (self.node.clone(), need_id.to_string(), hub.clone());
        let intro = tokio::task::spawn_blocking(move || node.create_introduction(&need, &h)).await??;
        // The hub must hold the need's latest version before it can match it.
        self.caught_up(link, CATCH_UP, true).await;
        match self.send_request(link, &intro).await {
            Ok(intro) => Ok(intro),
            Err(e @ Error::HubRefused { .. }) => {
                let (node, id) = (self.node.clone(), intro.id.clone());
                tokio::task::spawn_blocking(move || node.introduction_refused(&id, true)).await??;
                Err(e)
            }
            Err(e) => {
                tracing::warn!(hub = %hub, error = %e, "introduction queued");
                Ok(intro)
            }
        }
    }

    async fn send_request(&self, link: &Link, intro: &Introduction) -> Result<Introduction> {
        let channel = self.connect(&link.config).await?;
        self.send_request_on(channel, &link.config.id, intro).await
    }

    async fn send_request_on(
        &self,
        channel: Channel,
        hub: &str,
        intro: &Introduction,
    ) -> Result<Introduction> {
        let need_id = intro.need.as_ref().map(|n| n.need_id.clone()).unwrap_or_default();
        let reply = HubSyncClient::new(channel)
            .send_introduction(SendIntroductionRequest { id: intro.id.clone(), need_id })
            .await
            .map_err(|s| refused(hub, &s))?
            .into_inner();
        let (node, id) = (self.node.clone(), intro.id.clone());
        tokio::task::spawn_blocking(move || node.introduction_sent(&id, reply.status, reply.expires_at_ms))
            .await?
    }

    /// Sends what is owed to `hub`, then reads and applies its mailbox.
    pub(crate) async fn exchange_on(&self, channel: Channel, hub: &str) -> Result<()> {
        let keys = self.introduction_keys()?;
        let node = self.node.clone();
        let h = hub.to_string();
        let queued = tokio::task::spawn_blocking(move || node.queued_introductions(&h)).await??;
        for intro in queued {
            match self.send_request_on(channel.clone(), hub, &intro).await {
                Err(Error::HubRefused { message, .. }) => {
                    tracing::warn!(request = %intro.id, %message, "queued introduction refused by the hub");
                    let (node, id) = (self.node.clone(), intro.id.clone());
                    tokio::task::spawn_blocking(move || node.introduction_refused(&id, false)).await??;
                }
                other => {
                    other?;
                }
            }
        }
        let mut client = HubSyncClient::new(channel);
        self.send_owed(&mut client, hub).await?;
        // Page by page (a flood of requests cannot make one answer too large to decode); the
        // pages are applied together, as one listing (a request absent from it is forgotten).
        let mut mailbox = MailboxResponse::default();
        let mut after = String::new();
        loop {
            let page = client
                .mailbox(MailboxRequest { after: after.clone(), limit: MAILBOX_PAGE })
                .await
                .map_err(|s| refused(hub, &s))?
                .into_inner();
            let empty = page.inbound.is_empty() && page.outbound.is_empty();
            mailbox.inbound.extend(page.inbound);
            mailbox.outbound.extend(page.outbound);
            if page.next.is_empty() {
                break;
            }
            if empty || page.next <= after {
                return Err(Error::Unavailable(format!("hub {hub}: a mailbox page that does not advance")));
            }
            if mailbox.inbound.len() + mailbox.outbound.len() > MAX_MAILBOX {
                return Err(Error::Unavailable(format!(
                    "hub {hub}: more than {MAX_MAILBOX} introduction requests in the mailbox"
                )));
            }
            after = page.next;
        }
        let secret = sealing::load_secret_key(&keys.key)?;
        let (node, h) = (self.node.clone(), hub.to_string());
        tokio::task::spawn_blocking(move || node.apply_mailbox(&h, mailbox, &keys, &secret)).await??;
        // What the mailbox made owed (a purge acknowledgement) goes at once.
        self.send_owed(&mut client, hub).await
    }

    async fn send_owed(&self, client: &mut HubSyncClient<Channel>, hub: &str) -> Result<()> {
        let (node, h) = (self.node.clone(), hub.to_string());
        let owed = tokio::task::spawn_blocking(move || node.owed_replies(&h)).await??;
        for item in owed {
            let sent = client
                .reply_introduction(ReplyIntroductionRequest { replies: vec![item.reply.clone()] })
                .await;
            let refusal = match sent {
                Ok(_) => None,
                Err(s) if transient(s.code()) => return Err(refused(hub, &s)),
                Err(s) => {
                    // Refused for good (expired, cancelled): settled, not retried forever.
                    tracing::warn!(request = %item.reply.request_id, error = %status_text(&s), "introduction answer refused");
                    Some(s.message().to_string())
                }
            };
            let node = self.node.clone();
            tokio::task::spawn_blocking(move || node.reply_delivered(&item, refusal.as_deref())).await??;
        }
        Ok(())
    }

    /// Exchanges with one hub now, over a new connection.
    pub(crate) async fn exchange(&self, hub: &str) -> Result<()> {
        let link = self.link(hub)?;
        let channel = self.connect(&link.config).await?;
        self.exchange_on(channel, hub).await
    }

    /// Exchanges with every hub (best effort); returns the hubs that could not be reached.
    pub(crate) async fn refresh_introductions(&self) -> Vec<String> {
        let mut unreachable = Vec::new();
        for link in &self.links {
            if let Err(e) = self.exchange(&link.config.id).await {
                unreachable.push(format!("{}: {e}", link.config.id));
            }
        }
        unreachable
    }

    /// After a local change owed to `hub_id`: tries to deliver it now (a failure leaves it owed).
    pub(crate) async fn deliver(&self, hub_id: &str) {
        if let Err(e) = self.exchange(hub_id).await {
            tracing::warn!(hub = %hub_id, error = %e, "introductions: will retry at the next sync");
        }
    }

    /// Waits until `link` has a session the hub accepted that acknowledged everything committed
    /// before the call, or `timeout`: a queued request is only sent once its need is there. With
    /// `unless_failing`, a link whose last session failed is not waited for.
    async fn caught_up(&self, link: &Link, timeout: Duration, unless_failing: bool) {
        let target = self.node.head_seq();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progress = self.progress.notified();
            let done = link
                .status
                .lock()
                // Caught up, or the link is failing (the request will be queued): no point waiting.
                .map(|s| {
                    (s.connected && s.checkpoint >= target && s.owed == 0)
                        || (unless_failing && !s.connected && !s.last_error.is_empty())
                })
                .unwrap_or(true);
            if done || tokio::time::timeout_at(deadline, progress).await.is_err() {
                return;
            }
        }
    }

    /// Within a sync session: exchanges once the session's push has caught up, then every
    /// [`EXCHANGE_EVERY`], until `stop`.
    pub(crate) async fn exchange_loop(
        &self,
        link: &Link,
        channel: Channel,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        tokio::select! {
            () = self.caught_up(link, EXCHANGE_EVERY, false) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        loop {
            if let Err(e) = self.exchange_on(channel.clone(), &link.config.id).await {
                tracing::warn!(error = %e, "introductions exchange failed");
            }
            let node = self.node.clone();
            let retention = self.introduction_retention;
            let _ =
                tokio::task::spawn_blocking(move || node.sweep_introductions(retention, now_unix_ms())).await;
            tokio::select! {
                () = tokio::time::sleep(EXCHANGE_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
        }
    }
}
