//! The frame of every page: language, skip link, header, navigation, main, footer.

use hyper::StatusCode;

use super::super::html::{Html, html};
use super::super::{Console, Ctx, Reply};

/// The navigation, in the order of pages.
pub(crate) const NAV: &[(&str, &str)] = &[
    ("/tableau-de-bord", "Tableau de bord"),
    ("/besoins", "Besoins"),
    ("/personnes", "Personnes et consentements"),
    ("/indicateurs", "Indicateurs"),
    ("/mises-en-relation", "Mises en relation"),
    ("/reseau", "Réseau"),
];

/// A page of a logged-in user: the navigation (the current entry marked), who is logged in, the
/// logout button, the flash message, then `body`.
pub(crate) fn page<C: Console>(ctx: &Ctx<'_, C>, current: &str, title: &str, body: Html) -> Reply {
    page_with_status(ctx, current, title, body, StatusCode::OK)
}

/// [`page`] with another status (a form sent back with errors is 422).
pub(crate) fn page_with_status<C: Console>(
    ctx: &Ctx<'_, C>,
    current: &str,
    title: &str,
    body: Html,
    status: StatusCode,
) -> Reply {
    let nav = Html::concat(C::NAV.iter().map(|(href, label)| {
        if *href == current {
            html!("<li><a href=\"{}\" aria-current=\"page\">{}</a></li>", *href, *label)
        } else {
            html!("<li><a href=\"{}\">{}</a></li>", *href, *label)
        }
    }));
    let role = if ctx.admin() { "administration" } else { "lecture seule" };
    let flash = match &ctx.flash {
        Some(message) => html!("<p class=\"flash\" role=\"status\">{}</p>", message.as_str()),
        None => Html::default(),
    };
    let brand = ctx.gui.app.brand();
    let header = html!(
        "<header class=\"top\"><p class=\"brand\">Passerelle · {}</p>\
         <form method=\"post\" action=\"/deconnexion\" class=\"who\">\
         <span>{} ({})</span><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" class=\"link\">Se déconnecter</button></form></header>\
         <nav aria-label=\"Menu principal\"><ul>{}</ul></nav>",
        brand.as_str(),
        ctx.session.user.as_str(),
        role,
        ctx.session.csrf.as_str(),
        nav
    );
    document(
        status,
        title,
        html!("{}<main id=\"contenu\"><h1>{}</h1>{}{}</main>", header, title, flash, body),
    )
}

/// A page outside a session (login, setup).
pub(crate) fn bare(status: StatusCode, title: &str, body: Html) -> Reply {
    document(
        status,
        title,
        html!(
            "<header class=\"top\"><p class=\"brand\">Passerelle</p></header>\
             <main id=\"contenu\" class=\"narrow\"><h1>{}</h1>{}</main>",
            title,
            body
        ),
    )
}

fn document(status: StatusCode, title: &str, content: Html) -> Reply {
    Reply::Html(
        status,
        html!(
            "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · Passerelle</title><link rel=\"stylesheet\" href=\"/assets/style.css\"><link rel=\"icon\" href=\"/assets/favicon.svg\"></head>\
             <body><a class=\"skip\" href=\"#contenu\">Aller au contenu</a>{}</body></html>\n",
            title,
            content
        ),
    )
}
