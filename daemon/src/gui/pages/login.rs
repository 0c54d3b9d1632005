//! Logging in and out, and the setup page shown until an account exists.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::super::forms::Form;
use super::super::html::{Html, html};
use super::super::{Console, Ctx, Gui, Reply, auth, guard};
use super::layout;
use crate::error::Result;

/// Until an account exists: how to create one (and nothing else is served).
pub(crate) fn setup<C: Console>() -> Reply {
    layout::bare(
        StatusCode::SERVICE_UNAVAILABLE,
        "Créer le premier compte",
        html!(
            "<p>La console n'a encore aucun compte. Sur la machine du {}, créez-en un \
             (le mot de passe est demandé deux fois, 12 caractères au moins) :</p>\
             <pre><code>passerelle gui user add prenom.nom --role admin</code></pre>\
             <p>Un compte <code>admin</code> lit et modifie ; un compte <code>viewer</code> lit seulement. \
             Créez un compte par personne : ce qui est fait dans la console porte son nom. \
             Rechargez ensuite cette page.</p>",
            C::MACHINE
        ),
    )
}

/// The login form, with its token in a cookie and in the form (login CSRF): the browser's
/// current token while it is live (other tabs and requests keep working), else a fresh one.
pub(crate) fn form<C: Console>(
    gui: &Arc<Gui<C>>,
    cookies: &[(String, String)],
    problem: Option<&str>,
    status: StatusCode,
) -> Reply {
    let current = cookies.iter().find(|(k, _)| k == auth::LOGIN_COOKIE).map(|(_, v)| v.as_str());
    let token = match current {
        Some(token) if gui.sessions.check_login_token(token) => token.to_string(),
        _ => gui.sessions.login_token(),
    };
    let alert = match problem {
        Some(p) => html!("<div class=\"alert\" role=\"alert\"><p>{}</p></div>", p),
        None => Html::default(),
    };
    let body = html!(
        "{}<form method=\"post\" action=\"/connexion\" class=\"card\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <div class=\"field\"><label for=\"name\">Identifiant</label>\
         <input id=\"name\" name=\"name\" type=\"text\" autocomplete=\"username\" required autofocus></div>\
         <div class=\"field\"><label for=\"password\">Mot de passe</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></div>\
         <button type=\"submit\">Se connecter</button></form>",
        alert,
        token.as_str()
    );
    with_cookie(
        layout::bare(status, "Connexion", body),
        &guard::cookie(auth::LOGIN_COOKIE, &token, gui.tls, None),
    )
}

/// Checks a login: token, rate limit, password; opens a session.
pub(crate) async fn login<C: Console>(
    gui: &Arc<Gui<C>>,
    sent: Form,
    cookies: Vec<(String, String)>,
    addr: IpAddr,
) -> Result<Reply> {
    let token = sent.get("csrf").to_string();
    let cookie = cookies.iter().find(|(k, _)| k == auth::LOGIN_COOKIE).map(|(_, v)| v.as_str()).unwrap_or("");
    if !auth::same_secret(&token, cookie) || !gui.sessions.check_login_token(&token) {
        return Ok(Reply::Text(
            StatusCode::FORBIDDEN,
            "Formulaire de connexion expiré ou forgé (jeton CSRF) : rechargez la page.\n",
        ));
    }
    if gui.limiter.blocked(addr) {
        return Ok(form(
            gui,
            &cookies,
            Some("Trop d'essais manqués depuis cette adresse : attendez une minute avant de réessayer."),
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let (name, password) = (sent.get("name").to_string(), sent.get("password").to_string());
    let app = gui.clone();
    let user = name.clone();
    let role = tokio::task::spawn_blocking(move || app.app.login(&user, &password)).await??;
    let Some(role) = role else {
        gui.limiter.failed(addr);
        tracing::info!(%addr, "gui: failed login");
        return Ok(form(
            gui,
            &cookies,
            Some("Identifiant ou mot de passe incorrect."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    gui.limiter.succeeded(addr);
    gui.sessions.spend_login_token(&token);
    let Some(session) = gui.sessions.open(&name, role) else {
        return Ok(Reply::Text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Pas de source d'aléa pour ouvrir une session.\n",
        ));
    };
    tracing::info!(user = %name, "gui: login");
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(hyper::header::LOCATION, hyper::header::HeaderValue::from_static(C::HOME));
    for cookie in [
        guard::cookie(auth::SESSION_COOKIE, &session.id, gui.tls, None),
        guard::cookie(auth::LOGIN_COOKIE, "", gui.tls, Some(0)),
    ] {
        if let Ok(value) = cookie.parse() {
            headers.append(hyper::header::SET_COOKIE, value);
        }
    }
    Ok(Reply::Raw(response))
}

/// Ends the session.
pub(crate) fn logout<C: Console>(ctx: &Ctx<'_, C>) -> Reply {
    ctx.gui.sessions.close(&ctx.session.id);
    tracing::info!(user = %ctx.session.user, "gui: logout");
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(hyper::header::LOCATION, hyper::header::HeaderValue::from_static("/connexion"));
    if let Ok(value) = guard::cookie(auth::SESSION_COOKIE, "", ctx.gui.tls, Some(0)).parse() {
        response.headers_mut().append(hyper::header::SET_COOKIE, value);
    }
    Reply::Raw(response)
}

/// Adds a `Set-Cookie` to a page.
fn with_cookie(reply: Reply, cookie: &str) -> Reply {
    let Reply::Html(status, html) = reply else { return reply };
    let mut response = Response::new(Full::new(Bytes::from(html.into_string())));
    *response.status_mut() = status;
    guard::content_type(response.headers_mut(), "text/html; charset=utf-8");
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(hyper::header::SET_COOKIE, value);
    }
    Reply::Raw(response)
}
