//! The web console: server-rendered HTML forms, in French, for a structure's staff on a node
//! (`pages/`) and for a network's staff and state analysts on a hub (`hub/`).
//!
//! Served on `[gui] listen` (HTTP/1.1 on hyper, as the metrics listener; HTTPS with `[gui.tls]`),
//! with every asset embedded in the binary. Each page calls the same [`Node`], [`SyncEngine`] or
//! [`Hub`] functions as the gRPC API (`api/structure.rs`, `api/hub.rs`): the console holds no
//! rule of its own, and shows the validation message beside the field it names. What differs
//! between the two roles (where accounts live, the menu, the routes) is the [`Console`] trait;
//! serving, sessions, login and the security gate below are one copy for both.
//!
//! Every request goes through the same gate, in this order ([`guard`]): the `Host` header must be
//! the listen address or one of `[gui] hosts` (DNS rebinding); until an account exists only the
//! setup page is served; a page needs a live session; a POST needs the session's CSRF token and,
//! except logging out, the `admin` role. Every response carries a strict Content-Security-Policy
//! and the usual hardening headers. Personal data never goes in a URL (ids only: persons are
//! named by their pseudonymous record id) nor in a log line (requests are logged by method and
//! path only, and paths hold no personal data).

mod auth;
mod charts;
mod forms;
mod guard;
mod html;
mod hub;
mod labels;
mod pages;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use passerelle_proto::v1::GuiRole;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::GuiConfig;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::node::Node;
use crate::node::sync_engine::SyncEngine;

pub(crate) use auth::Session;
use forms::Form;
use html::Html;

/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Simultaneous connections beyond this are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// The largest form body (a need's description is at most 2,000 characters).
const MAX_FORM_BYTES: usize = 64 * 1024;
/// The largest upload (a CSV of needs).
const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

/// What one role's console brings to the shared serving and security layer: where its
/// accounts live, its menu and its routes.
pub(crate) trait Console: Send + Sync + Sized + 'static {
    /// The menu: path and label, in order.
    const NAV: &'static [(&'static str, &'static str)];
    /// The first page after logging in.
    const HOME: &'static str;
    /// The machine named in the setup page ("nœud", "hub").
    const MACHINE: &'static str;
    /// Who this console is, for the page header.
    fn brand(&self) -> String;
    /// Whether any account exists (blocking).
    fn has_accounts(&self) -> Result<bool>;
    /// The role of account `name` if it exists (blocking).
    fn role_of(&self, name: &str) -> Result<Option<GuiRole>>;
    /// Checks a login (blocking: Argon2id).
    fn login(&self, name: &str, password: &str) -> Result<Option<GuiRole>>;
    /// The page answering a request that passed the gate.
    fn route<'a>(
        method: &'a Method,
        path: &'a str,
        ctx: Ctx<'a, Self>,
    ) -> impl Future<Output = Result<Reply>> + Send + 'a;
}

/// A node's console: its records and its sync engine.
#[derive(Debug)]
pub(crate) struct NodeConsole {
    pub(crate) node: Arc<Node>,
    pub(crate) sync: Arc<SyncEngine>,
}

impl Console for NodeConsole {
    const NAV: &'static [(&'static str, &'static str)] = pages::layout::NAV;
    const HOME: &'static str = "/tableau-de-bord";
    const MACHINE: &'static str = "nœud";
    fn brand(&self) -> String {
        self.node.structure().name.clone()
    }
    fn has_accounts(&self) -> Result<bool> {
        self.node.has_gui_users()
    }
    fn role_of(&self, name: &str) -> Result<Option<GuiRole>> {
        self.node.gui_role(name)
    }
    fn login(&self, name: &str, password: &str) -> Result<Option<GuiRole>> {
        self.node.gui_login(name, password)
    }
    fn route<'a>(
        method: &'a Method,
        path: &'a str,
        ctx: Ctx<'a, Self>,
    ) -> impl Future<Output = Result<Reply>> + Send + 'a {
        pages::route(method, path, ctx)
    }
}

/// A hub's console: its members, periods, published tables and relays.
#[derive(Debug)]
pub(crate) struct HubConsole {
    pub(crate) hub: Arc<Hub>,
}

impl Console for HubConsole {
    const NAV: &'static [(&'static str, &'static str)] = hub::NAV;
    const HOME: &'static str = "/membres";
    const MACHINE: &'static str = "hub";
    fn brand(&self) -> String {
        format!("hub {}", self.hub.config().id)
    }
    fn has_accounts(&self) -> Result<bool> {
        self.hub.has_gui_users()
    }
    fn role_of(&self, name: &str) -> Result<Option<GuiRole>> {
        self.hub.gui_role(name)
    }
    fn login(&self, name: &str, password: &str) -> Result<Option<GuiRole>> {
        self.hub.gui_login(name, password)
    }
    fn route<'a>(
        method: &'a Method,
        path: &'a str,
        ctx: Ctx<'a, Self>,
    ) -> impl Future<Output = Result<Reply>> + Send + 'a {
        hub::route(method, path, ctx)
    }
}

/// The console's state, shared by every connection.
#[derive(Debug)]
pub(crate) struct Gui<C = NodeConsole> {
    /// The role's side: its records and accounts.
    pub(crate) app: C,
    /// `Host` headers accepted (lowercase).
    hosts: Vec<String>,
    /// Whether it is served over HTTPS (cookies are then `Secure`).
    tls: bool,
    pub(crate) sessions: auth::Sessions,
    limiter: auth::LoginLimiter,
}

/// A page's answer before the common headers are added.
pub(crate) enum Reply {
    /// A whole HTML document (see `pages::layout`).
    Html(StatusCode, Html),
    /// See other (after a successful POST).
    Redirect(String),
    /// A bare answer (refusals before any page can be shown).
    Text(StatusCode, &'static str),
    /// A response built by the page (cookies).
    Raw(Response<Full<Bytes>>),
}

/// What a page handler gets.
pub(crate) struct Ctx<'a, C = NodeConsole> {
    pub(crate) gui: &'a Arc<Gui<C>>,
    pub(crate) session: Session,
    /// The query string's fields (never personal data: filters and record ids).
    pub(crate) query: Form,
    /// The POST body's fields.
    pub(crate) form: Form,
    /// Uploaded files (multipart POSTs): field name and content.
    pub(crate) files: forms::Files,
    /// The message left by the previous POST (shown once).
    pub(crate) flash: Option<String>,
}

impl Ctx<'_, NodeConsole> {
    /// Runs a blocking node call off the async workers.
    pub(crate) async fn node<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Node) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let node = self.gui.app.node.clone();
        tokio::task::spawn_blocking(move || call(&node)).await?
    }
}

impl Ctx<'_, HubConsole> {
    /// Runs a blocking hub call off the async workers.
    pub(crate) async fn hub<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Hub) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let hub = self.gui.app.hub.clone();
        tokio::task::spawn_blocking(move || call(&hub)).await?
    }
}

impl<C> Ctx<'_, C> {
    /// Leaves a message for the next page this session sees.
    pub(crate) fn flash(&self, message: impl Into<String>) {
        self.gui.sessions.set_flash(&self.session.id, message.into());
    }

    /// Whether the user may change records.
    pub(crate) fn admin(&self) -> bool {
        self.session.role == GuiRole::Admin
    }
}

impl<C: Console> Gui<C> {
    /// The console of `app`, answering to the `Host` headers of `config` and of the bound
    /// address `bound`.
    pub(crate) fn new(app: C, config: &GuiConfig, bound: SocketAddr) -> Self {
        let mut hosts = vec![bound.to_string()];
        if bound.ip().is_loopback() {
            hosts.push(format!("localhost:{}", bound.port()));
        }
        hosts.extend(config.hosts.iter().cloned());
        Self {
            app,
            hosts,
            tls: config.tls.is_some(),
            sessions: auth::Sessions::default(),
            limiter: auth::LoginLimiter::default(),
        }
    }
}

/// The TLS acceptor of `[gui.tls]` (no client certificate; HTTP/1.1).
pub(crate) fn tls_acceptor(config: &GuiConfig) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    let Some(files) = &config.tls else { return Ok(None) };
    let (chain, key) = crate::tls::load_identity(&files.cert, &files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("gui.tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Config(format!("{}: {e}", files.cert.display())))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))))
}

/// Serves the console on `listener` until `stop` turns true, then closes every connection.
pub(crate) async fn serve<C: Console>(
    listener: TcpListener,
    gui: Arc<Gui<C>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let for_connections = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, remote)) = accepted else { continue };
                while connections.try_join_next().is_some() {}
                if connections.len() >= MAX_CONNECTIONS {
                    tracing::warn!(%remote, "gui: too many connections, closing this one");
                    continue;
                }
                let (gui, tls, stop) = (gui.clone(), tls.clone(), for_connections.clone());
                connections.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            let handshake = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await;
                            match handshake {
                                Ok(Ok(stream)) => connection(TokioIo::new(stream), remote, gui, stop).await,
                                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "gui: tls handshake failed"),
                                Err(_) => tracing::debug!(%remote, "gui: tls handshake timed out"),
                            }
                        }
                        None => connection(TokioIo::new(stream), remote, gui, stop).await,
                    }
                });
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    while connections.join_next().await.is_some() {}
}

/// Serves one connection, closing it gracefully when the daemon stops.
async fn connection<S, C: Console>(
    io: TokioIo<S>,
    remote: SocketAddr,
    gui: Arc<Gui<C>>,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let gui = gui.clone();
        async move { Ok::<_, Infallible>(respond(&gui, request, remote).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::select! {
        _ = connection.as_mut() => return,
        () = stopping => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// One request, through the gate, then the page; every answer gets the security headers.
async fn respond<C: Console>(
    gui: &Arc<Gui<C>>,
    request: Request<hyper::body::Incoming>,
    remote: SocketAddr,
) -> Response<Full<Bytes>> {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let mut response = match answer(gui, request, remote).await {
        Ok(reply) => render(reply),
        Err(e) => {
            tracing::error!(method = %method, path = %path, error = %e, "gui: request failed");
            render(Reply::Text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Erreur interne : voir le journal du service.\n",
            ))
        }
    };
    guard::secure_headers(response.headers_mut(), gui.tls);
    tracing::debug!(method = %method, path = %path, status = response.status().as_u16(), "gui request");
    response
}

/// The gate, then the route.
async fn answer<C: Console>(
    gui: &Arc<Gui<C>>,
    request: Request<hyper::body::Incoming>,
    remote: SocketAddr,
) -> Result<Reply> {
    if !guard::host_allowed(request.headers(), &gui.hosts) {
        return Ok(Reply::Text(
            StatusCode::MISDIRECTED_REQUEST,
            "Hôte refusé : ouvrez la console à son adresse configurée.\n",
        ));
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    if let Some(asset) = pages::asset(&path) {
        return Ok(asset);
    }
    if method != Method::GET && method != Method::POST && method != Method::HEAD {
        return Ok(Reply::Text(StatusCode::METHOD_NOT_ALLOWED, "Méthode non prise en charge.\n"));
    }
    let app = gui.clone();
    if !tokio::task::spawn_blocking(move || app.app.has_accounts()).await?? {
        return Ok(pages::login::setup::<C>());
    }
    let query = Form::urlencoded(request.uri().query().unwrap_or_default().as_bytes());
    let cookies = guard::cookies(request.headers());
    if path == "/connexion" {
        return match method {
            Method::POST => {
                let (form, _) = read_body(request).await?;
                pages::login::login(gui, form, cookies, remote.ip()).await
            }
            _ => Ok(pages::login::form(gui, &cookies, None, StatusCode::OK)),
        };
    }
    let Some(session) = session_of(gui, &cookies).await? else {
        return Ok(Reply::Redirect("/connexion".into()));
    };
    let (form, files) = if method == Method::POST {
        let (form, files) = match read_body(request).await {
            Ok(body) => body,
            Err(e) => {
                tracing::info!(path = %path, error = %e, "gui: unreadable request body");
                return Ok(Reply::Text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Envoi refusé : trop volumineux ou illisible.\n",
                ));
            }
        };
        if !auth::same_secret(form.get("csrf"), &session.csrf) {
            return Ok(Reply::Text(
                StatusCode::FORBIDDEN,
                "Formulaire expiré ou forgé (jeton CSRF) : rechargez la page.\n",
            ));
        }
        if path != "/deconnexion" && session.role != GuiRole::Admin {
            return Ok(Reply::Text(
                StatusCode::FORBIDDEN,
                "Votre compte est en lecture seule (rôle viewer).\n",
            ));
        }
        (form, files)
    } else {
        (Form::default(), Vec::new())
    };
    let flash = gui.sessions.take_flash(&session.id);
    let ctx = Ctx { gui, session, query, form, files, flash };
    C::route(&method, &path, ctx).await
}

/// The live session of the request's cookie, with its account's current role.
async fn session_of<C: Console>(gui: &Arc<Gui<C>>, cookies: &[(String, String)]) -> Result<Option<Session>> {
    let Some(id) = cookies.iter().find(|(k, _)| k == auth::SESSION_COOKIE).map(|(_, v)| v.clone()) else {
        return Ok(None);
    };
    let Some((user, csrf)) = gui.sessions.get(&id) else { return Ok(None) };
    let app = gui.clone();
    let name = user.clone();
    match tokio::task::spawn_blocking(move || app.app.role_of(&name)).await?? {
        Some(role) => Ok(Some(Session { id, user, role, csrf })),
        None => {
            // The account was removed: its sessions end here.
            gui.sessions.close(&id);
            Ok(None)
        }
    }
}

/// The request's form fields and uploaded files, bounded in size.
async fn read_body(request: Request<hyper::body::Incoming>) -> Result<(Form, forms::Files)> {
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let multipart = content_type.starts_with("multipart/form-data");
    let limit = if multipart { MAX_UPLOAD_BYTES } else { MAX_FORM_BYTES };
    let body = Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|e| Error::ResourceExhausted(format!("request body: {e}")))?
        .to_bytes();
    if multipart {
        forms::multipart(&content_type, &body)
            .ok_or_else(|| Error::ResourceExhausted("request body: malformed multipart form".into()))
    } else {
        Ok((Form::urlencoded(&body), Vec::new()))
    }
}

/// A reply as an HTTP response (the page frame around a page's body).
fn render(reply: Reply) -> Response<Full<Bytes>> {
    match reply {
        Reply::Html(status, html) => {
            let mut response = Response::new(Full::new(Bytes::from(html.into_string())));
            *response.status_mut() = status;
            guard::content_type(response.headers_mut(), "text/html; charset=utf-8");
            response
        }
        Reply::Redirect(location) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(value) = location.parse() {
                response.headers_mut().insert(hyper::header::LOCATION, value);
            }
            response
        }
        Reply::Text(status, text) => {
            let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
            *response.status_mut() = status;
            guard::content_type(response.headers_mut(), "text/plain; charset=utf-8");
            response
        }
        Reply::Raw(response) => response,
    }
}
