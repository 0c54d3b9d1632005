//! Who may call what: the role matrix, enforced in one place for every listener.
//!
//! Every connection carries a [`Peer`] (defined in `tls`, which extracts it at the handshake). [`AuthzLayer`] runs before any
//! handler: it refuses calls whose service the peer's role may not use, and calls from a
//! certificate revoked since the connection was opened, with `PERMISSION_DENIED` naming the role
//! and the method. Handlers then read the [`Peer`] from the request (see [`peer`]) to act *as* it —
//! a node only ever for its own SIRET.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use passerelle_proto::identity::Role;
use passerelle_proto::v1::{
    hub_admin_server, hub_sync_server, statistics_service_server, structure_service_server,
};
use tonic::Status;
use tonic_health::pb::health_server;
use tonic_reflection::pb::v1::server_reflection_server as reflection_v1;
use tonic_reflection::pb::v1alpha::server_reflection_server as reflection_v1alpha;

use crate::tls::incoming::ConnInfo;
use crate::tls::{DenyList, Peer};

/// The roles that may call a gRPC service. This table is the role matrix. Services are named by
/// the constants generated with their servers (the names `NamedService::NAME` gives), so a renamed
/// service cannot silently fall to "nobody may call it".
pub(crate) fn roles_allowed(service: &str) -> &'static [Role] {
    match service {
        hub_sync_server::SERVICE_NAME => &[Role::Node, Role::Hub],
        statistics_service_server::SERVICE_NAME => &[Role::Consumer],
        hub_admin_server::SERVICE_NAME | structure_service_server::SERVICE_NAME => &[Role::Operator],
        // Standard probes (health, reflection) reveal nothing and help every party.
        health_server::SERVICE_NAME | reflection_v1::SERVICE_NAME | reflection_v1alpha::SERVICE_NAME => {
            &Role::ALL
        }
        _ => &[],
    }
}

/// Decides a call to `path` (`/package.Service/Method`) on a connection.
pub(crate) fn authorize(path: &str, conn: Option<&ConnInfo>, denied: &DenyList) -> Result<Peer, Status> {
    let Some(conn) = conn else {
        // Every listener attaches a peer; a request without one is refused, never assumed.
        return Err(Status::unauthenticated("no authenticated peer on this connection"));
    };
    let peer = &conn.peer;
    if let Some(at) = conn.expires_at_s
        && at < passerelle_proto::date::now_unix_ms() / 1000
    {
        return Err(Status::unauthenticated(format!("certificate of {} expired", peer.id)));
    }
    if let Some(serial) = &peer.serial {
        let revoked = denied.read().map(|d| d.contains(serial)).unwrap_or(true);
        if revoked {
            return Err(Status::permission_denied(format!(
                "certificate serial {serial} of {} is revoked",
                peer.id
            )));
        }
    }
    // The identity is only as good as the anchor that vouched for it: a network's CA trusted for
    // its members cannot mint this hub's operators (or consumers).
    if let Some(issuer) = &conn.issuer
        && !issuer.vouches_for(peer.id.role)
    {
        return Err(Status::permission_denied(format!(
            "certificate of {} was issued by the CA of network {}, which may not vouch for role {} here",
            peer.id, issuer.network, peer.id.role
        )));
    }
    let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    if !roles_allowed(service).contains(&peer.id.role) {
        return Err(Status::permission_denied(format!("role {} may not call {path}", peer.id.role)));
    }
    Ok(peer.clone())
}

/// The authenticated peer of a request that passed [`AuthzLayer`].
pub(crate) fn peer<T>(request: &tonic::Request<T>) -> Result<Peer, Status> {
    request
        .extensions()
        .get::<Peer>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated peer"))
}

/// When the certificate of the request's connection expires, seconds since the Unix epoch
/// (`None`: the local operator, or no connection information).
pub(crate) fn expires_at_s<T>(request: &tonic::Request<T>) -> Option<i64> {
    request.extensions().get::<ConnInfo>().and_then(|c| c.expires_at_s)
}

/// The certificate chain of the request's connection, as its handshake verified it.
pub(crate) fn chain<T>(request: &tonic::Request<T>) -> Vec<Vec<u8>> {
    request.extensions().get::<ConnInfo>().map(|c| c.chain.to_vec()).unwrap_or_default()
}

/// Tower layer applying [`authorize`] to every request.
#[derive(Debug, Clone)]
pub(crate) struct AuthzLayer {
    denied: DenyList,
}

impl AuthzLayer {
    /// Checks calls against the role matrix and `denied`.
    pub(crate) fn new(denied: DenyList) -> Self {
        Self { denied }
    }
}

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Authz<S> {
        Authz { inner, denied: self.denied.clone() }
    }
}

/// The service made by [`AuthzLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Authz<S> {
    inner: S,
    denied: DenyList,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Authz<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().to_string();
        match authorize(&path, request.extensions().get::<ConnInfo>(), &self.denied) {
            Ok(peer) => {
                let id = peer.id.clone();
                request.extensions_mut().insert(peer);
                // Take the service that was made ready, leave a fresh clone for the next call.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                // Logged when polled, i.e. inside the call's `rpc` span (entered around the future
                // only, not around this synchronous `call`).
                Box::pin(async move {
                    tracing::Span::current().record("peer", tracing::field::display(&id));
                    tracing::debug!("call authorized");
                    ready.call(request).await
                })
            }
            Err(status) => Box::pin(async move {
                tracing::info!(%path, code = ?status.code(), reason = status.message(), "call refused");
                Ok(status.into_http())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use passerelle_proto::identity::PeerId;

    use super::*;
    use crate::tls::Issuer;

    fn conn(role: Role, id: &str, serial: Option<&str>) -> ConnInfo {
        ConnInfo {
            peer: Peer::certified("coorace", PeerId { role, id: id.into() }, serial.map(String::from)),
            expires_at_s: None,
            issuer: Some(Issuer { network: "coorace".into(), roles: Role::ALL.to_vec() }),
            chain: Default::default(),
        }
    }

    #[test]
    fn matrix_cells() {
        let denied = DenyList::default();
        let cases = [
            (Role::Node, "/passerelle.v1.HubSync/Hello", true),
            (Role::Hub, "/passerelle.v1.HubSync/Hello", true),
            (Role::Consumer, "/passerelle.v1.HubSync/Hello", false),
            (Role::Operator, "/passerelle.v1.HubSync/Hello", false),
            (Role::Consumer, "/passerelle.v1.StatisticsService/ListTables", true),
            (Role::Node, "/passerelle.v1.StatisticsService/ListTables", false),
            (Role::Operator, "/passerelle.v1.HubAdmin/ListMembers", true),
            (Role::Hub, "/passerelle.v1.HubAdmin/ListMembers", false),
            (Role::Operator, "/passerelle.v1.StructureService/ListNeeds", true),
            (Role::Node, "/passerelle.v1.StructureService/ListNeeds", false),
            (Role::Operator, "/unknown.Service/Method", false),
        ];
        for (role, path, allowed) in cases {
            let result = authorize(path, Some(&conn(role, "x1", Some("ab"))), &denied);
            assert_eq!(result.is_ok(), allowed, "{role} {path}");
            if let Err(status) = result {
                assert_eq!(status.code(), tonic::Code::PermissionDenied);
                assert_eq!(status.message(), format!("role {role} may not call {path}"));
            }
        }
    }

    #[test]
    fn a_role_its_anchor_does_not_vouch_for_is_refused() {
        let denied = DenyList::default();
        let mut operator = conn(Role::Operator, "ops-fas", Some("ab"));
        operator.issuer = Some(Issuer { network: "fas".into(), roles: vec![Role::Node, Role::Hub] });
        let err = authorize("/passerelle.v1.HubAdmin/ListMembers", Some(&operator), &denied)
            .expect_err("a network CA cannot vouch for an operator");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            err.message(),
            "certificate of operator ops-fas was issued by the CA of network fas, which may not vouch for role operator here"
        );
        let mut node = conn(Role::Node, "73282932000074", Some("ac"));
        node.issuer = operator.issuer.clone();
        assert!(authorize("/passerelle.v1.HubSync/Hello", Some(&node), &denied).is_ok());
    }

    #[test]
    fn revoked_serials_and_missing_peers_are_refused() {
        let denied = DenyList::default();
        denied.write().map(|mut d| d.insert("ab".into())).ok();
        let err =
            authorize("/passerelle.v1.HubSync/Hello", Some(&conn(Role::Node, "x1", Some("ab"))), &denied);
        assert_eq!(err.map_err(|s| s.code()), Err(tonic::Code::PermissionDenied));
        let err = authorize("/passerelle.v1.HubSync/Hello", None, &denied);
        assert_eq!(err.map_err(|s| s.code()), Err(tonic::Code::Unauthenticated));
    }
}
