//! Identities bound to the CA that issued them (issue 12, point 2), through the real path: a
//! consolidation hub `dreets-52` with its own (state) CA trusts the CAs of two networks, `fas` and
//! `coorace`; hostile clients hold valid certificates from one of those CAs and try to pass for
//! what another CA vouches for.

use std::path::{Path, PathBuf};

use passerelle_client::{Error, HubClient, TlsFiles};
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{MemberState, Structure, StructureKind};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, cli_async};
use tonic::Code;

/// The state's CA (the consolidation hub's own) and two networks' CAs, each in its own directory.
struct Federation {
    state: TestPki,
    fas: TestPki,
    coorace: TestPki,
    dir: PathBuf,
}

impl Federation {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            state: TestPki::for_network(&dir.join("state"), "dreets")?,
            fas: TestPki::for_network(&dir.join("fas"), "fas")?,
            coorace: TestPki::for_network(&dir.join("coorace"), "coorace")?,
            dir: dir.to_path_buf(),
        })
    }

    /// A certificate of `pki` for `role`/`id`, set to verify the consolidation hub (state CA).
    fn client(&self, pki: &TestPki, role: Role, id: &str) -> anyhow::Result<TlsFiles> {
        Ok(TlsFiles { ca: self.state.ca_pem(), ..pki.issue(role, id)? })
    }

    /// The consolidation hub's config with `trust` as its trust section(s) (after `[hub.tls]`'s
    /// cert and key); `auto_accept` on, the hardest case for impersonation.
    fn hub_config(&self, trust: &str) -> anyhow::Result<PathBuf> {
        let own = self.state.issue(Role::Hub, "dreets-52")?;
        let path = self.dir.join("dreets-52.toml");
        std::fs::write(
            &path,
            format!(
                "data_dir = \"dreets-data\"\n\n[hub]\nid = \"dreets-52\"\nnetwork = \"dreets\"\nregion = \"52\"\nlisten = \"127.0.0.1:0\"\nauto_accept = true\n\n[hub.tls]\ncert = \"{}\"\nkey = \"{}\"\n{trust}\n[api]\nlisten = \"127.0.0.1:0\"\n",
                own.cert.display(),
                own.key.display(),
            ),
        )?;
        Ok(path)
    }

    /// The shorthand every existing config uses: the hub's own CA first, then the networks'.
    fn shorthand(&self) -> String {
        format!(
            "client_cas = [\"{}\", \"{}\", \"{}\"]\n",
            self.state.ca_pem().display(),
            self.fas.ca_pem().display(),
            self.coorace.ca_pem().display()
        )
    }

    /// The same trust written out as `[[hub.trust]]` anchors.
    fn anchors(&self) -> String {
        format!(
            "\n[[hub.trust]]\nca = \"{}\"\nnetwork = \"dreets\"\nroles = [\"node\", \"hub\", \"consumer\", \"operator\"]\n\n[[hub.trust]]\nca = \"{}\"\nnetwork = \"fas\"\nroles = [\"node\", \"hub\"]\n\n[[hub.trust]]\nca = \"{}\"\nnetwork = \"coorace\"\nroles = [\"node\", \"hub\"]\n",
            self.state.ca_pem().display(),
            self.fas.ca_pem().display(),
            self.coorace.ca_pem().display()
        )
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

/// A certificate `passerelle://hub/fas-pdl` minted by coorace's CA is not the accepted `fas-pdl`
/// of the fas network: it is another identity, pending even though the hub accepts newcomers,
/// and the genuine one keeps syncing. Both forms of the config bind identities the same way.
#[tokio::test(flavor = "multi_thread")]
async fn a_hub_id_minted_by_another_networks_ca_is_a_separate_pending_identity() -> anyhow::Result<()> {
    for form in ["shorthand", "anchors"] {
        let dir = tempfile::tempdir()?;
        let fed = Federation::new(dir.path())?;
        let trust = if form == "shorthand" { fed.shorthand() } else { fed.anchors() };
        let hub = InProcessDaemon::start_config(&fed.hub_config(&trust)?).await?;

        let genuine =
            HubClient::connect(&hub.hub_endpoint(), Some(&fed.client(&fed.fas, Role::Hub, "fas-pdl")?))
                .await?;
        genuine.hello(None).await?;
        let impostor =
            HubClient::connect(&hub.hub_endpoint(), Some(&fed.client(&fed.coorace, Role::Hub, "fas-pdl")?))
                .await?;
        assert_denied(
            impostor.hello(None).await,
            "hub fas-pdl is pending approval on hub dreets-52 (certificate of network coorace)",
        );
        assert_denied(impostor.hello(None).await, "pending approval");
        genuine.hello(None).await.map_err(|e| anyhow::anyhow!("{form}: the genuine hub is refused: {e}"))?;
        // The same holds for a structure's SIRET.
        let structure = || Structure {
            siret: SIRETS[0].into(),
            kind: StructureKind::Aci as i32,
            name: "Atelier du Bocage".into(),
            departement: "85".into(),
        };
        let node =
            HubClient::connect(&hub.hub_endpoint(), Some(&fed.client(&fed.fas, Role::Node, SIRETS[0])?))
                .await?;
        node.hello(Some(structure())).await?;
        let forged =
            HubClient::connect(&hub.hub_endpoint(), Some(&fed.client(&fed.coorace, Role::Node, SIRETS[0])?))
                .await?;
        assert_denied(
            forged.hello(Some(structure())).await,
            &format!(
                "structure {} is pending approval on hub dreets-52 (certificate of network coorace)",
                SIRETS[0]
            ),
        );
        node.hello(Some(structure())).await?;

        let operator = HubClient::connect(&hub.endpoint, None).await?;
        let members = operator.members().await?;
        let seen: Vec<(&str, &str, &str, MemberState)> =
            members.iter().map(|m| (m.network.as_str(), m.role.as_str(), m.id.as_str(), m.state())).collect();
        assert_eq!(
            seen,
            vec![
                ("coorace", "hub", "fas-pdl", MemberState::Pending),
                ("fas", "hub", "fas-pdl", MemberState::Accepted),
                ("coorace", "node", SIRETS[0], MemberState::Pending),
                ("fas", "node", SIRETS[0], MemberState::Accepted),
            ],
            "{form}"
        );

        // `hub members` shows the issuing network, in the table and in JSON.
        let json = cli_async(&hub.endpoint, &["--format", "json", "hub", "members"]).await.ok()?.json()?;
        assert_eq!(json[0]["network"], "coorace", "{json}");
        assert_eq!(json[1]["network"], "fas", "{json}");
        let table = cli_async(&hub.endpoint, &["hub", "members"]).await.ok()?;
        assert!(table.stdout.lines().next().is_some_and(|h| h.contains("NETWORK")), "{}", table.stdout);
        assert!(table.stdout.contains("coorace"), "{}", table.stdout);

        // An id held by two networks must be named with its network to be accepted or removed.
        let ambiguous = cli_async(&hub.endpoint, &["hub", "accept", "fas-pdl"]).await;
        assert_eq!(ambiguous.code, 2, "{ambiguous:?}");
        assert!(ambiguous.stderr.contains("networks coorace, fas"), "{ambiguous:?}");
        // Removing the impostor touches nothing of the genuine member.
        let removed = cli_async(
            &hub.endpoint,
            &["--format", "json", "hub", "remove", "fas-pdl", "--network", "coorace"],
        )
        .await
        .ok()?
        .json()?;
        assert_eq!(
            (removed["network"].as_str(), removed["state"].as_str()),
            (Some("coorace"), Some("pending"))
        );
        genuine.hello(None).await?;
        hub.stop().await?;
    }
    Ok(())
}

/// Operators only from an anchor that may vouch for operators (the hub's own CA): an operator
/// certificate minted by a network's CA is refused on every operator RPC, and a role its anchor
/// does not list (a consumer from the fas CA) is refused too, with a status that says why.
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_certificate_from_a_network_ca_is_refused() -> anyhow::Result<()> {
    for form in ["shorthand", "anchors"] {
        let dir = tempfile::tempdir()?;
        let fed = Federation::new(dir.path())?;
        let trust = if form == "shorthand" { fed.shorthand() } else { fed.anchors() };
        let hub = InProcessDaemon::start_config(&fed.hub_config(&trust)?).await?;

        let rogue = HubClient::connect(
            &hub.hub_endpoint(),
            Some(&fed.client(&fed.coorace, Role::Operator, "ops-coorace")?),
        )
        .await?;
        let refusal = "issued by the CA of network coorace, which may not vouch for role operator here";
        assert_denied(rogue.members().await, refusal);
        assert_denied(rogue.info().await, refusal);
        assert_denied(rogue.accept("fas-pdl").await, refusal);
        assert_denied(rogue.reload().await, refusal);
        assert_denied(rogue.remove("fas-pdl").await, refusal);

        let consumer = HubClient::connect(
            &hub.hub_endpoint(),
            Some(&fed.client(&fed.fas, Role::Consumer, "france-travail")?),
        )
        .await?;
        assert_denied(
            consumer.tables().await,
            "issued by the CA of network fas, which may not vouch for role consumer here",
        );

        // The hub's own operators and consumers are served.
        let own = HubClient::connect(
            &hub.hub_endpoint(),
            Some(&fed.client(&fed.state, Role::Operator, "ops-dreets")?),
        )
        .await?;
        own.members().await.map_err(|e| anyhow::anyhow!("{form}: own operator refused: {e}"))?;
        let state_consumer = HubClient::connect(
            &hub.hub_endpoint(),
            Some(&fed.client(&fed.state, Role::Consumer, "dreets-52")?),
        )
        .await?;
        state_consumer.tables().await?;
        hub.stop().await?;
    }
    Ok(())
}
