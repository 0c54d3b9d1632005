//! The console's pages, one file each, and the route table.

pub(crate) mod dashboard;
pub(crate) mod indicators;
pub(crate) mod introductions;
pub(crate) mod layout;
pub(crate) mod login;
pub(crate) mod needs;
pub(crate) mod network;
pub(crate) mod persons;
pub(crate) mod widgets;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};

use super::{Console, Ctx, Reply, guard};
use crate::error::Result;

/// The style sheet, embedded (no third-party resource, no inline style).
const STYLE: &str = include_str!("../assets/style.css");

/// The icon, embedded (browsers would otherwise ask for `/favicon.ico`).
const FAVICON: &str = include_str!("../assets/favicon.svg");

/// An embedded asset, if `path` names one (served without a session: it holds nothing private).
pub(crate) fn asset(path: &str) -> Option<Reply> {
    let (body, kind) = match path {
        "/assets/style.css" => (STYLE, "text/css; charset=utf-8"),
        "/assets/favicon.svg" | "/favicon.ico" => (FAVICON, "image/svg+xml"),
        _ => return None,
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    guard::content_type(response.headers_mut(), kind);
    response
        .headers_mut()
        .insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("max-age=3600"));
    Some(Reply::Raw(response))
}

/// The route table: GET shows, POST changes (then redirects).
pub(crate) async fn route(method: &Method, path: &str, ctx: Ctx<'_>) -> Result<Reply> {
    let post = method == Method::POST;
    match (post, path) {
        (false, "/") => Ok(Reply::Redirect("/tableau-de-bord".into())),
        (true, "/deconnexion") => Ok(login::logout(&ctx)),
        (false, "/tableau-de-bord") => dashboard::show(&ctx).await,
        (false, "/besoins") => needs::list(&ctx).await,
        (false, "/besoins/nouveau") => needs::new_form(&ctx),
        (true, "/besoins/nouveau") => needs::create(&ctx).await,
        (false, "/besoins/modifier") => needs::edit_form(&ctx).await,
        (true, "/besoins/modifier") => needs::update(&ctx).await,
        (true, "/besoins/cloturer") => needs::close(&ctx).await,
        (true, "/besoins/supprimer") => needs::delete(&ctx).await,
        (true, "/besoins/importer") => needs::import(&ctx).await,
        (false, "/personnes") => persons::list(&ctx).await,
        (false, "/personnes/nouvelle") => persons::new_form(&ctx),
        (true, "/personnes/nouvelle") => persons::create(&ctx).await,
        (false, "/personnes/fiche") => persons::show(&ctx).await,
        (false, "/personnes/modifier") => persons::edit_form(&ctx).await,
        (true, "/personnes/modifier") => persons::update(&ctx).await,
        (true, "/personnes/supprimer") => persons::delete(&ctx).await,
        (false, "/personnes/rapport") => persons::report(&ctx).await,
        (true, "/consentements/accorder") => persons::grant(&ctx).await,
        (true, "/consentements/retirer") => persons::withdraw(&ctx).await,
        (false, "/indicateurs") => indicators::show(&ctx).await,
        (true, "/indicateurs") => indicators::submit(&ctx).await,
        (false, "/mises-en-relation") => introductions::show(&ctx).await,
        (true, "/mises-en-relation/accepter") => introductions::accept(&ctx).await,
        (true, "/mises-en-relation/refuser") => introductions::decline(&ctx).await,
        (true, "/mises-en-relation/resultat") => introductions::outcome(&ctx).await,
        (true, "/mises-en-relation/demander") => introductions::ask(&ctx).await,
        (false, "/reseau") => network::show(&ctx).await,
        _ => Ok(layout::page_with_status(
            &ctx,
            "",
            "Page introuvable",
            super::html::Html::trusted(
                "<p>Cette page n'existe pas. <a href=\"/tableau-de-bord\">Retour au tableau de bord</a>.</p>",
            ),
            StatusCode::NOT_FOUND,
        )),
    }
}

/// What a node call's failure means for a form: a rule the user can fix (shown beside its
/// field), a refusal to say in a message, or a real failure (the caller's `?`).
pub(crate) enum Refusal {
    /// A broken rule naming a field.
    Field(passerelle_proto::validate::FieldError),
    /// Another refusal the user can understand (not found, conflict, state).
    Message(String),
}

/// Sorts a node error into what the user sees, or passes real failures on.
pub(crate) fn refusal(error: crate::Error) -> Result<Refusal> {
    use crate::Error;
    match error {
        Error::Invalid(e) => Ok(Refusal::Field(e)),
        e @ (Error::InvalidRows(_)
        | Error::NotFound { .. }
        | Error::AlreadyExists(_)
        | Error::VersionConflict { .. }
        | Error::FailedPrecondition(_)
        | Error::PermissionDenied(_)
        | Error::Unavailable(_)
        | Error::ResourceExhausted(_)
        | Error::HubRefused { .. }) => Ok(Refusal::Message(e.to_string())),
        e => Err(e),
    }
}

/// Redirects to `to` after leaving `message` (the outcome of a POST that needs no form back).
pub(crate) fn done<C: Console>(ctx: &Ctx<'_, C>, to: &str, message: impl Into<String>) -> Reply {
    ctx.flash(message);
    Reply::Redirect(to.to_string())
}

/// The outcome of a one-button POST: success redirects with `ok`, a refusal with its message.
pub(crate) fn settle<T, C: Console>(
    ctx: &Ctx<'_, C>,
    to: &str,
    outcome: Result<T>,
    ok: &str,
) -> Result<Reply> {
    match outcome {
        Ok(_) => Ok(done(ctx, to, ok)),
        Err(e) => match refusal(e)? {
            Refusal::Field(e) => Ok(done(ctx, to, format!("Refusé : {e}"))),
            Refusal::Message(m) => Ok(done(ctx, to, format!("Refusé : {m}"))),
        },
    }
}
