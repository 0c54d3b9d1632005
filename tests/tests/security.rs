//! Identity and security through the real path: certificates made by `passerelle pki`'s library,
//! real hubs and nodes on loopback, mutual TLS, the role matrix cell by cell, membership,
//! revocation, and limits.

use passerelle_client::{Error, HubClient, NodeClient, TlsFiles};
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{Structure, StructureKind};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, cli_async};
use std::time::Duration;

use tonic::Code;

fn structure(siret: &str) -> Structure {
    Structure {
        siret: siret.into(),
        kind: StructureKind::Aci as i32,
        name: "Atelier du Bocage".into(),
        departement: "85".into(),
    }
}

fn code_of<T: std::fmt::Debug>(result: &Result<T, Error>) -> Option<Code> {
    match result {
        Ok(_) => None,
        Err(e) => Some(e.code().unwrap_or(Code::Unavailable)),
    }
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, Error>, needle: &str) {
    match result {
        Err(Error::Status(status)) => {
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
            assert!(status.message().contains(needle), "{:?} does not contain {needle:?}", status.message());
        }
        other => panic!("expected PERMISSION_DENIED ({needle}), got {other:?}"),
    }
}

/// Every role against every hub method, and every role against the node API served over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn role_matrix_cell_by_cell() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "", "")?).await?;
    let operator_local = HubClient::connect(&hub.endpoint, None).await?;
    operator_local.accept(SIRETS[0]).await?;
    operator_local.accept("fas-pdl").await?;

    let identities: Vec<(Role, TlsFiles)> = vec![
        (Role::Node, pki.issue(Role::Node, SIRETS[0])?),
        (Role::Hub, pki.issue(Role::Hub, "fas-pdl")?),
        (Role::Consumer, pki.issue(Role::Consumer, "dreets-52")?),
        (Role::Operator, pki.issue(Role::Operator, "ops-coorace")?),
    ];
    for (role, files) in &identities {
        let client = HubClient::connect(&hub.hub_endpoint(), Some(files)).await?;
        let hello = client.hello((*role == Role::Node).then(|| structure(SIRETS[0]))).await;
        let tables = client.tables().await;
        let members = client.members().await;
        let info = client.info().await;
        let accept = client.accept(SIRETS[4]).await;
        let reload = client.reload().await;
        let cells = [
            ("/passerelle.v1.HubSync/Hello", code_of(&hello), matches!(role, Role::Node | Role::Hub)),
            ("/passerelle.v1.StatisticsService/ListTables", code_of(&tables), *role == Role::Consumer),
            ("/passerelle.v1.HubAdmin/ListMembers", code_of(&members), *role == Role::Operator),
            ("/passerelle.v1.HubAdmin/GetHub", code_of(&info), *role == Role::Operator),
            ("/passerelle.v1.HubAdmin/AcceptMember", code_of(&accept), *role == Role::Operator),
        ];
        for (method, code, allowed) in cells {
            if allowed {
                assert_eq!(code, None, "{role} should be allowed {method}");
            } else {
                assert_eq!(code, Some(Code::PermissionDenied), "{role} should be refused {method}");
            }
        }
        // The message names the role and the method.
        if *role != Role::Operator {
            assert_denied(members, &format!("role {role} may not call /passerelle.v1.HubAdmin/ListMembers"));
        }
        // Reload is operator-only too (and this hub was started in memory, without a file).
        match role {
            Role::Operator => assert_eq!(code_of(&reload), None),
            _ => assert_eq!(code_of(&reload), Some(Code::PermissionDenied)),
        }
    }

    // The node's own API, served over TLS off the plaintext default: only operators.
    let node_dir = dir.path().join("node");
    std::fs::create_dir_all(&node_dir)?;
    let api = pki.issue(Role::Node, SIRETS[1])?;
    let node_config = node_dir.join("node.toml");
    std::fs::write(
        &node_config,
        format!(
            "data_dir = \"data\"\n[node]\nsiret = \"{}\"\nkind = \"ei\"\nname = \"Envie\"\ndepartement = \"44\"\n[api]\nlisten = \"127.0.0.1:0\"\n[api.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_cas = [\"{}\"]\n",
            SIRETS[1],
            api.cert.display(),
            api.key.display(),
            pki.ca_pem().display()
        ),
    )?;
    let node = InProcessDaemon::start_config(&node_config).await?;
    let node_tls_endpoint = node.endpoint.replace("http://127.0.0.1", "https://localhost");
    for (role, files) in &identities {
        let mut client = NodeClient::connect(&node_tls_endpoint, Some(files)).await?;
        let listed = client.needs(None).await;
        if *role == Role::Operator {
            assert!(listed.is_ok(), "operator reads the node API: {listed:?}");
        } else {
            assert_denied(
                listed,
                &format!("role {role} may not call /passerelle.v1.StructureService/ListNeeds"),
            );
        }
    }
    let plaintext = NodeClient::connect(&node.endpoint, None).await;
    match plaintext {
        Ok(mut c) => assert!(c.needs(None).await.is_err(), "a TLS API has no plaintext access"),
        Err(e) => assert!(matches!(e, Error::Unreachable { .. }), "{e:?}"),
    }
    node.stop().await?;
    hub.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_cannot_act_as_another_siret() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub =
        InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?)
            .await?;
    let a = HubClient::connect(&hub.hub_endpoint(), Some(&pki.issue(Role::Node, SIRETS[0])?)).await?;
    assert_denied(
        a.hello(Some(structure(SIRETS[1]))).await,
        &format!("node certificate for SIRET {} cannot act as SIRET {}", SIRETS[0], SIRETS[1]),
    );
    assert!(a.hello(Some(structure(SIRETS[0]))).await.is_ok());
    let members = HubClient::connect(&hub.endpoint, None).await?.members().await?;
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec![SIRETS[0]], "the impersonated SIRET was never recorded");
    hub.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_member_is_refused_until_an_operator_accepts_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "", "")?).await?;
    let node = HubClient::connect(&hub.hub_endpoint(), Some(&pki.issue(Role::Node, SIRETS[2])?)).await?;
    let pending = format!("structure {} is pending approval on hub coorace-pdl", SIRETS[2]);
    assert_denied(node.hello(Some(structure(SIRETS[2]))).await, &pending);
    assert_denied(node.hello(Some(structure(SIRETS[2]))).await, &pending);

    let members = cli_async(&hub.endpoint, &["--format", "json", "hub", "members"]).await.ok()?.json()?;
    assert_eq!(members[0]["id"], SIRETS[2]);
    assert_eq!(members[0]["state"], "pending");
    assert_eq!(members[0]["name"], "Atelier du Bocage");

    let accepted =
        cli_async(&hub.endpoint, &["--format", "json", "hub", "accept", SIRETS[2]]).await.ok()?.json()?;
    assert_eq!(accepted["state"], "accepted");
    let hello = node.hello(Some(structure(SIRETS[2]))).await?;
    assert_eq!((hello.hub_id.as_str(), hello.region.as_str()), ("coorace-pdl", "52"));

    let removed =
        cli_async(&hub.endpoint, &["--format", "json", "hub", "remove", SIRETS[2]]).await.ok()?.json()?;
    assert_eq!(removed["id"], SIRETS[2]);
    assert_denied(node.hello(Some(structure(SIRETS[2]))).await, &pending);
    let bad = cli_async(&hub.endpoint, &["hub", "accept", "12345678901234"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("Luhn"), "{bad:?}");
    hub.stop().await
}

/// Certificates the hub must refuse at the handshake, and clients without TLS or without a
/// certificate. The hub keeps serving legitimate peers throughout.
#[tokio::test(flavor = "multi_thread")]
async fn untrusted_clients_are_refused_and_the_hub_keeps_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub =
        InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?)
            .await?;
    let endpoint = hub.hub_endpoint();

    let refused = [
        ("foreign CA", pki.issue_foreign(Role::Node, SIRETS[0])?),
        ("expired", pki.issue_expired(Role::Node, SIRETS[0])?),
        ("no passerelle identity", pki.issue_without_identity()?),
    ];
    for (what, files) in &refused {
        let outcome = match HubClient::connect(&endpoint, Some(files)).await {
            Ok(client) => client.hello(Some(structure(SIRETS[0]))).await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(
            matches!(outcome, Err(Error::Unreachable { .. })),
            "{what}: expected the handshake to fail, got {outcome:?}"
        );
    }

    // No client certificate at all: TLS with the right CA, but nothing to present.
    let ca = tonic::transport::Certificate::from_pem(std::fs::read(pki.ca_pem())?);
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())?
        .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca).domain_name("localhost"))?
        .connect()
        .await;
    if let Ok(channel) = channel {
        let mut client =
            passerelle_proto::v1::statistics_service_client::StatisticsServiceClient::new(channel);
        assert!(
            client.list_tables(passerelle_proto::v1::ListTablesRequest {}).await.is_err(),
            "no certificate, no answer"
        );
    }

    // Plaintext gRPC against the TLS port.
    let plain = endpoint.replace("https://localhost", "http://127.0.0.1");
    let outcome = match HubClient::connect(&plain, None).await {
        Ok(client) => client.tables().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(matches!(outcome, Err(Error::Unreachable { .. })), "plaintext refused: {outcome:?}");
    let cli = cli_async(&plain, &["hub", "members"]).await;
    assert_eq!(cli.code, 1, "{cli:?}");
    assert!(cli.stderr.contains("is this a TLS port?"), "{cli:?}");

    // Still serving.
    let good = HubClient::connect(&endpoint, Some(&pki.issue(Role::Node, SIRETS[0])?)).await?;
    good.hello(Some(structure(SIRETS[0]))).await?;
    hub.stop().await
}

/// A revoked serial is refused at the next handshake and, on a connection opened before the
/// revocation, at the next call.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_serial_is_refused_after_reload() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config("coorace-pdl", "auto_accept = true\ndenied_serials = []", "")?;
    let hub = InProcessDaemon::start_config(&config).await?;
    let victim = pki.issue(Role::Node, SIRETS[3])?;
    let serial = TestPki::serial(&victim)?;

    let before = HubClient::connect(&hub.hub_endpoint(), Some(&victim)).await?;
    before.hello(Some(structure(SIRETS[3]))).await?;

    let text = std::fs::read_to_string(&config)?;
    // Written the way a person copies it from `pki show`, in upper case with colons.
    let pretty: String = serial
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    std::fs::write(
        &config,
        text.replace("denied_serials = []", &format!("denied_serials = [\"{pretty}\"]")),
    )?;
    let reloaded = cli_async(&hub.endpoint, &["--format", "json", "hub", "reload"]).await.ok()?.json()?;
    assert_eq!(reloaded["denied_serials"][0], serial.as_str());

    assert_denied(before.hello(Some(structure(SIRETS[3]))).await, &format!("certificate serial {serial}"));
    let after = match HubClient::connect(&hub.hub_endpoint(), Some(&victim)).await {
        Ok(client) => client.hello(Some(structure(SIRETS[3]))).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(matches!(after, Err(Error::Unreachable { .. })), "refused at the handshake: {after:?}");

    // Others are unaffected.
    let other = HubClient::connect(&hub.hub_endpoint(), Some(&pki.issue(Role::Node, SIRETS[4])?)).await?;
    other.hello(Some(structure(SIRETS[4]))).await?;

    // A broken config is refused and keeps the list in force.
    std::fs::write(&config, "this is not toml")?;
    let broken = cli_async(&hub.endpoint, &["hub", "reload"]).await;
    assert_eq!(broken.code, 2, "{broken:?}");
    assert!(broken.stderr.contains("reload refused"), "{broken:?}");
    let info = HubClient::connect(&hub.endpoint, None).await?.info().await?;
    assert_eq!(info.denied_serials, vec![serial]);
    hub.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_is_resource_exhausted_and_harmless() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config =
        pki.write_hub_config("coorace-pdl", "auto_accept = true", "[limits]\nmax_message_bytes = 1024\n")?;
    let hub = InProcessDaemon::start_config(&config).await?;
    let node = HubClient::connect(&hub.hub_endpoint(), Some(&pki.issue(Role::Node, SIRETS[0])?)).await?;
    let mut big = structure(SIRETS[0]);
    big.name = "x".repeat(4096);
    match node.hello(Some(big)).await {
        Err(Error::Status(status)) => {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            assert!(status.message().contains("exceeds the limit of 1024 bytes"), "{status:?}");
        }
        other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
    }
    // Same connection, same daemon: still fine.
    node.hello(Some(structure(SIRETS[0]))).await?;
    hub.stop().await
}

/// SIGHUP on a real hub process re-reads the revocation list.
#[test]
fn sighup_reloads_the_revocation_list() -> anyhow::Result<()> {
    use passerelle_tests::{ChildDaemon, cli};
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config("coorace-pdl", "denied_serials = []", "")?;
    let hub = ChildDaemon::spawn(&config)?;
    let victim = pki.issue(Role::Node, SIRETS[1])?;
    let serial = TestPki::serial(&victim)?;
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        text.replace("denied_serials = []", &format!("denied_serials = [\"{serial}\"]")),
    )?;
    let status = std::process::Command::new("kill").args(["-HUP", &hub.child.id().to_string()]).status()?;
    assert!(status.success());
    // The reload happens on the daemon's own schedule: poll its state, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let info = cli(&hub.endpoint, &["--format", "json", "hub", "info"]).ok()?.json()?;
        if info["denied_serials"][0] == serial.as_str() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "SIGHUP did not reload: {info}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    hub.kill9()
}

/// A client that opens a TCP connection and never speaks TLS is dropped after the handshake
/// timeout; unfinished handshakes beyond their budget evict the oldest one at once; neither stops
/// the hub from serving.
#[tokio::test(flavor = "multi_thread")]
async fn silent_and_excess_connections_are_dropped() -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        "[limits]\nhandshake_timeout_secs = 1\nmax_connections = 2\nmax_handshakes = 2\n",
    )?;
    let hub = InProcessDaemon::start_config(&config).await?;
    let addr = hub.hub_addr.ok_or_else(|| anyhow::anyhow!("hub address"))?;

    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(addr).await?;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "closed by the hub: {read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "after ~1 s: {waited:?}"
    );

    // Two silent connections fill the handshake budget; each further one evicts the oldest at
    // once, long before the handshake timeout.
    let mut oldest = tokio::net::TcpStream::connect(addr).await?;
    let _b = tokio::net::TcpStream::connect(addr).await?;
    let started = std::time::Instant::now();
    let _c = tokio::net::TcpStream::connect(addr).await?;
    let read = tokio::time::timeout(Duration::from_secs(5), oldest.read(&mut buf)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "the oldest is closed: {read:?}");
    assert!(started.elapsed() < Duration::from_millis(700), "evicted at once: {:?}", started.elapsed());

    // A real client is served while silent connections hold the budget.
    let node = HubClient::connect(&hub.hub_endpoint(), Some(&pki.issue(Role::Node, SIRETS[0])?)).await?;
    node.hello(Some(structure(SIRETS[0]))).await?;
    hub.stop().await
}

/// 1,100 silent sockets (more than the default handshake budget, from one address as a NAT
/// would show them) do not stop a consumer from being served: unfinished handshakes have their
/// own budget and the oldest give way.
#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_is_served_while_1100_silent_sockets_are_open() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&config).await?;
    let addr = hub.hub_addr.ok_or_else(|| anyhow::anyhow!("hub address"))?;
    let mut silent = Vec::new();
    for _ in 0..1_100 {
        silent.push(tokio::net::TcpStream::connect(addr).await?);
    }
    let consumer =
        HubClient::connect(&hub.hub_endpoint(), Some(&pki.issue(Role::Consumer, "dreets-52")?)).await?;
    let started = std::time::Instant::now();
    let tables = tokio::time::timeout(Duration::from_secs(5), consumer.tables()).await??;
    assert!(!tables.tables.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2), "served promptly: {:?}", started.elapsed());
    drop(silent);
    hub.stop().await
}

/// Health checking and reflection answer on every listener to any authenticated role (a consumer
/// on the hub's mutual-TLS port, the local operator on a node's loopback API), and list exactly
/// the services the daemon serves.
#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_are_served_to_every_role() -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServiceResponse};

    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "", "")?).await?;
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[("coorace-pdl", hub.hub_endpoint(), &["needs"][..])],
    )?)
    .await?;
    let consumer = pki.issue(Role::Consumer, "dreets-52")?;
    let probes = [
        (hub.hub_endpoint(), Some(consumer), "passerelle.v1.StatisticsService"),
        (node.endpoint.clone(), None, "passerelle.v1.StructureService"),
    ];
    for (endpoint, tls, service) in probes {
        let channel = passerelle_client::connect(&endpoint, tls.as_ref(), "server").await?;
        let mut health = HealthClient::new(channel.clone());
        for name in ["", service] {
            let status = health.check(HealthCheckRequest { service: name.into() }).await?.into_inner().status;
            assert_eq!(status, ServingStatus::Serving as i32, "{endpoint} {name:?}");
        }
        let unknown = health.check(HealthCheckRequest { service: "passerelle.v1.Nope".into() }).await;
        assert_eq!(unknown.err().map(|s| s.code()), Some(Code::NotFound), "{endpoint}");

        let mut reflection = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers =
            reflection.server_reflection_info(tokio_stream::iter([request])).await?.into_inner();
        let answer = answers.message().await?.and_then(|a| a.message_response);
        let Some(MessageResponse::ListServicesResponse(list)) = answer else {
            anyhow::bail!("{endpoint}: no service list: {answer:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|ServiceResponse { name }| name).collect();
        assert!(names.iter().any(|n| n == service), "{endpoint}: {names:?}");
        assert!(names.iter().any(|n| n == "grpc.health.v1.Health"), "{endpoint}: {names:?}");
        // A node's API does not pretend to be a hub.
        if service == "passerelle.v1.StructureService" {
            assert!(!names.iter().any(|n| n.contains("HubSync")), "{names:?}");
        }
    }
    node.stop().await?;
    hub.stop().await
}

/// A health `Watch` (what a load balancer keeps open) sees NOT_SERVING when shutdown starts, then
/// its stream ends: it does not hold the graceful shutdown open.
#[tokio::test(flavor = "multi_thread")]
async fn health_watchers_see_not_serving_and_do_not_block_shutdown() -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "", "")?).await?;
    let consumer = pki.issue(Role::Consumer, "dreets-52")?;
    let channel = passerelle_client::connect(&hub.hub_endpoint(), Some(&consumer), "hub").await?;
    let mut watch =
        HealthClient::new(channel).watch(HealthCheckRequest { service: String::new() }).await?.into_inner();
    let first = watch.message().await?.map(|r| r.status);
    assert_eq!(first, Some(ServingStatus::Serving as i32));

    let stopping = tokio::spawn(hub.stop());
    let next = watch.message().await?.map(|r| r.status);
    assert_eq!(next, Some(ServingStatus::NotServing as i32));
    // The stream ends (cleanly, or with the connection's close), and the hub stops.
    let end = tokio::time::timeout(Duration::from_secs(5), watch.message()).await?;
    assert!(!matches!(end, Ok(Some(_))), "the watch stream should end: {end:?}");
    tokio::time::timeout(Duration::from_secs(5), stopping).await???;
    Ok(())
}

/// A revoked member's streams opened before the revocation end within a second of the reload:
/// its open Push gets `PERMISSION_DENIED` (and nothing it sends afterwards is applied), its open
/// Subscribe ends with `PERMISSION_DENIED` instead of receiving others' needs. The same holds for
/// a member removed by the operator.
#[tokio::test(flavor = "multi_thread")]
async fn revocation_and_removal_end_open_streams() -> anyhow::Result<()> {
    use passerelle_proto::v1::hub_sync_client::HubSyncClient;
    use passerelle_proto::v1::{PushMessage, PushOpen, SubscribeRequest, push_message, push_reply};
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config("coorace-pdl", "auto_accept = true\ndenied_serials = []", "")?;
    let hub = InProcessDaemon::start_config(&config).await?;

    // Opens a Push (after Hello) and a Subscribe for `siret` on one connection.
    async fn open_streams(
        hub: &InProcessDaemon,
        tls: &TlsFiles,
        siret: &str,
    ) -> anyhow::Result<(
        tokio::sync::mpsc::Sender<PushMessage>,
        tonic::Streaming<passerelle_proto::v1::PushReply>,
        tonic::Streaming<passerelle_proto::v1::ViewBatch>,
    )> {
        let channel = passerelle_client::connect(&hub.hub_endpoint(), Some(tls), "hub").await?;
        let mut client = HubSyncClient::new(channel);
        client.hello(passerelle_proto::v1::HelloRequest { structure: Some(structure(siret)) }).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(PushMessage {
            kind: Some(push_message::Kind::Open(PushOpen {
                structure: Some(structure(siret)),
                epoch: vec![7; 16],
                datasets: vec!["needs".into()],
                ..Default::default()
            })),
        })
        .await?;
        let mut replies = client.push(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
        let accepted = replies.message().await?;
        assert!(matches!(accepted, Some(r) if matches!(r.kind, Some(push_reply::Kind::Accepted(_)))));
        let mut view = client.subscribe(SubscribeRequest::default()).await?.into_inner();
        view.message().await?; // the first (empty) view page
        Ok((tx, replies, view))
    }

    async fn ended_denied<T: std::fmt::Debug>(stream: &mut tonic::Streaming<T>) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(1), stream.message()).await {
                Err(_) => anyhow::bail!("still open a second later"),
                Ok(Err(status)) => {
                    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
                    assert!(started.elapsed() < Duration::from_secs(1));
                    return Ok(());
                }
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => anyhow::bail!("ended without a status"),
            }
        }
    }

    // Revocation by reload.
    let victim = pki.issue(Role::Node, SIRETS[3])?;
    let serial = TestPki::serial(&victim)?;
    let (push, mut replies, mut view) = open_streams(&hub, &victim, SIRETS[3]).await?;
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        text.replace("denied_serials = []", &format!("denied_serials = [\"{serial}\"]")),
    )?;
    cli_async(&hub.endpoint, &["hub", "reload"]).await.ok()?;
    ended_denied(&mut replies).await?;
    ended_denied(&mut view).await?;
    drop(push);

    // Removal by the operator.
    let member = pki.issue(Role::Node, SIRETS[4])?;
    let (_push, mut replies, mut view) = open_streams(&hub, &member, SIRETS[4]).await?;
    cli_async(&hub.endpoint, &["hub", "remove", SIRETS[4]]).await.ok()?;
    ended_denied(&mut replies).await?;
    ended_denied(&mut view).await?;
    hub.stop().await
}

/// A batch bounded in bytes but not in count (empty changes are 2 bytes each) is refused with
/// `RESOURCE_EXHAUSTED` naming `changes`, before the hub decodes it; the session's datasets and a
/// consumer's dimensions are bounded the same way.
#[tokio::test(flavor = "multi_thread")]
async fn messages_are_bounded_in_element_count() -> anyhow::Result<()> {
    use passerelle_proto::codec::MAX_CHANGES_PER_BATCH;
    use passerelle_proto::v1::hub_sync_client::HubSyncClient;
    use passerelle_proto::v1::{Batch, Change, PushMessage, PushOpen, push_message};
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&config).await?;
    let tls = pki.issue(Role::Node, SIRETS[0])?;
    let channel = passerelle_client::connect(&hub.hub_endpoint(), Some(&tls), "hub").await?;
    let mut client = HubSyncClient::new(channel);
    client.hello(passerelle_proto::v1::HelloRequest { structure: Some(structure(SIRETS[0])) }).await?;

    let open = PushMessage {
        kind: Some(push_message::Kind::Open(PushOpen {
            structure: Some(structure(SIRETS[0])),
            epoch: vec![7; 16],
            datasets: vec!["needs".into()],
            ..Default::default()
        })),
    };
    let flood = PushMessage {
        kind: Some(push_message::Kind::Batch(Batch {
            seq: 1,
            changes: vec![Change::default(); MAX_CHANGES_PER_BATCH + 1],
            head_seq: 1,
            ..Default::default()
        })),
    };
    let mut replies = client.push(tokio_stream::iter([open, flood])).await?.into_inner();
    let mut refused = None;
    while let Some(reply) = replies.message().await.transpose() {
        if let Err(status) = reply {
            refused = Some(status);
            break;
        }
    }
    let status = refused.ok_or_else(|| anyhow::anyhow!("the flood was not refused"))?;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("changes: at most 10000"), "{status:?}");

    let consumer =
        HubClient::connect(&hub.hub_endpoint(), Some(&pki.issue(Role::Consumer, "dreets-52")?)).await?;
    let many = consumer
        .table(passerelle_proto::v1::GetTableRequest {
            table: "needs".into(),
            by: vec!["rome".into(); 17],
            ..Default::default()
        })
        .await;
    assert!(matches!(&many, Err(e) if e.to_string().contains("by: at most 16")), "{many:?}");
    hub.stop().await
}
