//! The hub's console pages (issue 17), one file each, and their route table.
//!
//! Same gate, sessions and accounts rules as the node's console (`super`): a `viewer` reads every
//! page; only `admin` accepts, removes or closes. Each page calls the [`crate::hub::Hub`]
//! functions the hub's gRPC API calls (`api/hub.rs`), so no rule has a second copy here.

mod completeness;
mod members;
mod relays;
mod statistics;

use hyper::{Method, StatusCode};

use super::html::Html;
use super::pages::layout;
use super::{Ctx, HubConsole, Reply};
use crate::error::Result;

/// The hub console's menu.
pub(crate) const NAV: &[(&str, &str)] = &[
    ("/membres", "Membres"),
    ("/completude", "Complétude"),
    ("/statistiques", "Statistiques"),
    ("/synchronisation", "Synchronisation"),
];

/// The route table: GET shows, POST changes (then redirects).
pub(crate) async fn route(method: &Method, path: &str, ctx: Ctx<'_, HubConsole>) -> Result<Reply> {
    let post = method == Method::POST;
    match (post, path) {
        (false, "/") => Ok(Reply::Redirect("/membres".into())),
        (true, "/deconnexion") => Ok(super::pages::login::logout(&ctx)),
        (false, "/membres") => members::list(&ctx).await,
        (false, "/membres/retirer") => members::confirm_remove(&ctx).await,
        (true, "/membres/retirer") => members::remove(&ctx).await,
        (true, "/membres/accepter") => members::accept(&ctx).await,
        (false, "/completude") => completeness::show(&ctx).await,
        (true, "/completude/cloturer") => completeness::close(&ctx).await,
        (false, "/statistiques") => statistics::show(&ctx).await,
        (false, "/statistiques.csv") => statistics::csv(&ctx).await,
        (false, "/synchronisation") => relays::show(&ctx).await,
        _ => Ok(layout::page_with_status(
            &ctx,
            "",
            "Page introuvable",
            Html::trusted("<p>Cette page n'existe pas. <a href=\"/membres\">Retour aux membres</a>.</p>"),
            StatusCode::NOT_FOUND,
        )),
    }
}
