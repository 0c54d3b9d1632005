//! Tableau de bord: each hub's sync state, months overdue, introduction requests waiting, needs
//! expiring soon.

use passerelle_proto::date::{Date, now_unix_ms};
use passerelle_proto::v1::NeedStatus;

use super::super::html::{Html, html};
use super::super::{Ctx, Reply};
use super::{layout, widgets};
use crate::error::Result;
use crate::node::introductions::Direction;

/// Needs whose end date (or, without one, start date) falls within this many days are "expiring".
const EXPIRING_DAYS: i64 = 14;

/// The dashboard.
pub(crate) async fn show(ctx: &Ctx<'_>) -> Result<Reply> {
    let sync = ctx.gui.app.sync.clone();
    let hubs = ctx.gui.app.sync.indicator_hubs();
    let (status, missing, incoming, needs) = ctx
        .node(move |node| {
            Ok((
                sync.status()?,
                node.missing_indicators(&hubs, now_unix_ms())?,
                node.list_introductions(Direction::In)?,
                node.list_needs(NeedStatus::Open as i32)?,
            ))
        })
        .await?;
    let rows = Html::concat(status.hubs.iter().map(|h| {
        let state = if h.connected { "connecté" } else { "déconnecté" };
        html!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            h.hub_id.as_str(),
            state,
            widgets::when(h.last_ack_at_ms),
            h.pending,
            if h.last_error.is_empty() { "—" } else { h.last_error.as_str() }
        )
    }));
    let hubs = if status.hubs.is_empty() {
        Html::trusted("<p>Aucun hub configuré : ce nœud ne partage rien.</p>")
    } else {
        html!(
            "<table><caption>Synchronisation avec les hubs</caption><thead><tr><th scope=\"col\">Hub</th>\
             <th scope=\"col\">État</th><th scope=\"col\">Dernier accusé</th><th scope=\"col\">En attente</th>\
             <th scope=\"col\">Dernière erreur</th></tr></thead><tbody>{}</tbody></table>",
            rows
        )
    };
    let overdue: Vec<_> = missing.iter().filter(|m| m.overdue).collect();
    let waiting: usize =
        incoming.iter().map(|i| i.persons.iter().filter(|p| p.state == "pending").count()).sum();
    let today = Date::from_unix_ms(now_unix_ms());
    let expiring: Vec<_> = needs
        .iter()
        .filter(|n| {
            let fields = n.fields.as_ref();
            let day =
                fields.and_then(|f| f.end_date.clone()).or_else(|| fields.map(|f| f.start_date.clone()));
            day.and_then(|d| Date::parse(&d).ok())
                .is_some_and(|d| (d.days_since_epoch() - today.days_since_epoch()) <= EXPIRING_DAYS)
        })
        .collect();
    let cards = html!(
        "<ul class=\"cards\">\
         <li><a href=\"/indicateurs\"><strong>{}</strong> mois en retard</a></li>\
         <li><a href=\"/mises-en-relation\"><strong>{}</strong> réponses de mise en relation attendues</a></li>\
         <li><a href=\"/besoins\"><strong>{}</strong> besoins ouverts, dont {} échéant sous {} jours</a></li>\
         </ul>",
        overdue.len(),
        waiting,
        needs.len(),
        expiring.len(),
        EXPIRING_DAYS
    );
    let overdue_list = if overdue.is_empty() {
        Html::default()
    } else {
        html!(
            "<h2>Mois en retard</h2><ul>{}</ul>",
            Html::concat(overdue.iter().map(|m| html!(
                "<li>{} pour {} (dû le {})</li>",
                m.period.as_str(),
                m.hub_id.as_str(),
                m.due.as_str()
            )))
        )
    };
    Ok(layout::page(ctx, "/tableau-de-bord", "Tableau de bord", html!("{}{}{}", cards, hubs, overdue_list)))
}
