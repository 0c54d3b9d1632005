//! **Synchronisation**: the relays to upstream hubs (connected, pending feed entries, last ack).

use super::super::html::{Html, html};
use super::super::pages::layout;
use super::super::pages::widgets::when;
use super::super::{Ctx, HubConsole, Reply};
use crate::error::Result;

/// The relays' status, as the metrics endpoint and `passerelle hub status` see it.
pub(crate) async fn show(ctx: &Ctx<'_, HubConsole>) -> Result<Reply> {
    let statuses = ctx.hub(|hub| hub.relay_statuses()).await?;
    let body = if statuses.is_empty() {
        Html::trusted(
            "<p>Ce hub ne relaie vers aucun hub amont (aucune section <code>[[hub.upstream]]</code>).</p>",
        )
    } else {
        let rows = Html::concat(statuses.iter().map(|(id, s)| {
            html!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                id.as_str(),
                if s.connected { "connecté" } else { "déconnecté" },
                s.pending_feed_entries,
                s.batches_acked,
                s.records_acked,
                when(s.last_ack_at_ms).as_str()
            )
        }));
        html!(
            "<table><caption>Relais vers les hubs amont</caption><thead><tr><th scope=\"col\">Hub amont</th>\
             <th scope=\"col\">État</th><th scope=\"col\">Entrées du flux en attente</th><th scope=\"col\">Lots acquittés</th>\
             <th scope=\"col\">Enregistrements acquittés</th><th scope=\"col\">Dernier acquittement</th></tr></thead><tbody>{}</tbody></table>",
            rows
        )
    };
    Ok(layout::page(ctx, "/synchronisation", "Synchronisation", body))
}
