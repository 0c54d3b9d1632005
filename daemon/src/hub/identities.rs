//! Members as (network, role, id): which identities share an id, which network an operator means,
//! and the migration of stores whose members were keyed by role and id only.
//!
//! Why the network is part of the identity: a hub trusts several networks' CAs, and any of them
//! can mint a certificate naming any id. The anchor that issued a certificate (see
//! `tls::trust`) is the only thing that says which network vouches for the id, so a member is
//! bound to it. Records stay keyed by id (the origin SIRET, the relaying hub id), which is why at
//! most one identity per role and id is accepted at a time.

use passerelle_proto::identity::Role;
use passerelle_proto::v1::{Member, MemberState};
use passerelle_proto::validate::{self, FieldError};
use prost::Message;

use super::{Hub, key_of};
use crate::error::{Error, Result};
use crate::store::keys::MemberKey;
use crate::store::{StoreError, Tree, WriteBatch};

impl Hub {
    /// Every identity with `role` and `id`, whatever its network, by network.
    pub(super) fn namesakes(&self, role: Role, id: &str) -> Result<Vec<Member>> {
        let prefix = MemberKey::prefix(role, id);
        let end = crate::store::keys::prefix_end(&prefix);
        self.store
            .scan(Tree::Members, &prefix, end.as_deref(), usize::MAX)?
            .into_iter()
            .map(|(_, raw)| {
                Member::decode(raw.as_slice())
                    .map_err(|e| Error::Store(StoreError(format!("corrupt member: {e}"))))
            })
            .collect()
    }

    /// The accepted identity with `role` and `id`, if any (at most one is).
    pub(super) fn accepted_member(&self, role: Role, id: &str) -> Result<Option<Member>> {
        Ok(self.namesakes(role, id)?.into_iter().find(|m| m.state == MemberState::Accepted as i32))
    }

    /// The networks whose anchors may vouch for `role` here, in config order.
    fn vouching_networks(&self, role: Role) -> Vec<&str> {
        let mut networks: Vec<&str> = Vec::new();
        for anchor in self.config.tls.trust.iter().filter(|a| a.roles.contains(&role)) {
            if !networks.contains(&anchor.network.as_str()) {
                networks.push(&anchor.network);
            }
        }
        networks
    }

    /// The network an operator means for `role`/`id`: the one given (which, to accept, must be
    /// able to vouch for the role here), else the only one holding that id, else — when pre-accepting an id
    /// never seen — the only network whose anchors may vouch for the role. Anything ambiguous is
    /// `INVALID_ARGUMENT` listing the choices.
    pub(super) fn resolve_network(
        &self,
        role: Role,
        id: &str,
        network: Option<&str>,
        accepting: bool,
    ) -> Result<String> {
        let vouching = self.vouching_networks(role);
        if let Some(network) = network.filter(|n| !n.is_empty()) {
            validate::hub_id("network", network)?;
            // Removing stays possible after the network's anchor left the config.
            if accepting && !vouching.contains(&network) {
                return Err(FieldError::new(
                    "network",
                    network,
                    format!("no trust anchor of this hub vouches for a {role} of this network"),
                )
                .into());
            }
            return Ok(network.to_string());
        }
        let known: Vec<String> = self.namesakes(role, id)?.into_iter().map(|m| m.network).collect();
        match (known.as_slice(), vouching.as_slice()) {
            ([one], _) => Ok(one.clone()),
            ([], [one]) if accepting => Ok((*one).to_string()),
            ([], _) if !accepting => Err(Error::NotFound { what: "member", id: id.to_string() }),
            ([], several) => Err(FieldError::rule(
                "network",
                format!(
                    "required: {id} was never seen here, and networks {} may vouch for a {role}",
                    several.join(", ")
                ),
            )
            .into()),
            (several, _) => Err(FieldError::rule(
                "network",
                format!("required: {id} is known here from networks {}", several.join(", ")),
            )
            .into()),
        }
    }

    /// The network a member recorded before identities had one is bound to: the only network
    /// whose anchors may vouch for its role; else the only such network its id starts with
    /// (`fas-pdl` → `fas`, hub ids being `NETWORK-…` by convention); else the hub's own. A wrong
    /// guess fails closed: the member's next certificate is another, pending identity, which
    /// `passerelle hub accept ID --network NETWORK` accepts in its place, records kept.
    fn legacy_network(&self, role: Role, id: &str) -> String {
        let vouching = self.vouching_networks(role);
        if let [one] = vouching.as_slice() {
            return (*one).to_string();
        }
        let prefixed: Vec<&&str> = vouching
            .iter()
            .filter(|n| id.strip_prefix(**n).is_some_and(|rest| rest.starts_with('-')))
            .collect();
        match prefixed.as_slice() {
            [one] => (**one).to_string(),
            _ => self.config.network.clone(),
        }
    }

    /// Migrates a store whose members are keyed `role/id` to `role/id/network` (see
    /// [`Hub::legacy_network`]), in one commit. Idempotent: a migrated store has no legacy key.
    /// Returns how many members moved.
    pub(super) fn bind_members_to_networks(&self) -> Result<usize> {
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        let mut moved = 0;
        for (key, raw) in self.store.scan(Tree::Members, &[], None, usize::MAX)? {
            if MemberKey::decode(&key).is_some() {
                continue;
            }
            let Some((role, id)) = MemberKey::decode_legacy(&key) else { continue };
            let mut member = Member::decode(raw.as_slice())
                .map_err(|e| Error::Store(StoreError(format!("corrupt member: {e}"))))?;
            member.network = self.legacy_network(role, &id);
            tracing::info!(%role, id, network = %member.network, "member bound to the network of its certificate's issuer");
            batch.delete(Tree::Members, key);
            batch.put(Tree::Members, key_of(&member), member.encode_to_vec());
            moved += 1;
        }
        if moved > 0 {
            self.store.commit(batch)?;
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use passerelle_proto::identity::PeerId;

    use super::*;
    use crate::tls::{Peer, TrustAnchor};

    const SIRET: &str = "73282932000074";

    fn consolidation(dir: &std::path::Path) -> Hub {
        let mut hub = Hub::for_tests(dir);
        let anchor = |network: &str, roles: &[Role]| TrustAnchor {
            ca: std::path::PathBuf::new(),
            network: network.into(),
            roles: roles.to_vec(),
        };
        hub.config.network = "dreets".into();
        hub.config.tls.trust = vec![
            anchor("dreets", &Role::ALL),
            anchor("fas", &[Role::Node, Role::Hub]),
            anchor("coorace", &[Role::Node, Role::Hub]),
        ];
        hub
    }

    /// A store from before identities had a network: its members are bound at open, once, and
    /// keep their state and history.
    #[test]
    fn legacy_members_are_bound_to_a_network_once() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hub = consolidation(dir.path());
        let legacy = |role: &str, id: &str, state: MemberState| Member {
            role: role.into(),
            id: id.into(),
            state: state as i32,
            last_acked_seq: 42,
            ..Default::default()
        };
        let mut batch = WriteBatch::new();
        for member in [
            legacy("hub", "fas-pdl", MemberState::Accepted),
            legacy("hub", "coorace-bzh", MemberState::Pending),
            legacy("hub", "iae-pdl", MemberState::Accepted),
            legacy("node", SIRET, MemberState::Accepted),
        ] {
            batch.put(
                Tree::Members,
                format!("{}/{}", member.role, member.id).into_bytes(),
                member.encode_to_vec(),
            );
        }
        hub.store.commit(batch)?;
        // Opening the store again migrates it, as a new binary opening an old store does.
        let config = hub.config.clone();
        drop(hub);
        let hub = Hub::open(dir.path(), config.clone(), crate::tls::DenyList::default())?;
        assert_eq!(hub.bind_members_to_networks()?, 0, "migrated at open, idempotent");
        drop(hub);
        let hub = Hub::open(dir.path(), config, crate::tls::DenyList::default())?;
        let bound: Vec<(String, String, String, i32, u64)> = hub
            .list_members()?
            .into_iter()
            .map(|m| (m.role, m.id, m.network, m.state, m.last_acked_seq))
            .collect();
        let accepted = MemberState::Accepted as i32;
        assert_eq!(
            bound,
            vec![
                ("hub".into(), "coorace-bzh".into(), "coorace".into(), MemberState::Pending as i32, 42),
                ("hub".into(), "fas-pdl".into(), "fas".into(), accepted, 42),
                ("hub".into(), "iae-pdl".into(), "dreets".into(), accepted, 42),
                ("node".into(), SIRET.into(), "dreets".into(), accepted, 42),
            ]
        );
        // The bound member is the one its network's certificate finds.
        let fas = Peer::certified("fas", PeerId::new(Role::Hub, "fas-pdl")?, None);
        assert!(hub.require_member(&fas).is_ok());
        let coorace = Peer::certified("coorace", PeerId::new(Role::Hub, "fas-pdl")?, None);
        assert!(hub.require_member(&coorace).is_err());
        Ok(())
    }

    /// Accepting one network's identity puts another network's accepted namesake back to pending;
    /// removing a pending namesake leaves the accepted one's records alone.
    #[test]
    fn one_identity_per_id_is_accepted() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hub = consolidation(dir.path());
        let fas = Peer::certified("fas", PeerId::new(Role::Hub, "fas-pdl")?, None);
        let coorace = Peer::certified("coorace", PeerId::new(Role::Hub, "fas-pdl")?, None);
        assert!(hub.admit(&fas, None).is_ok(), "auto_accept, first of its id");
        assert!(hub.admit(&coorace, None).is_err(), "a namesake is never auto-accepted");
        let err = hub.accept_member("fas-pdl", None).expect_err("ambiguous");
        assert!(
            err.to_string().contains("required: fas-pdl is known here from networks coorace, fas"),
            "{err}"
        );
        let err = hub.accept_member("fas-pdl", Some("iae")).expect_err("no such anchor");
        assert!(
            err.to_string().contains("no trust anchor of this hub vouches for a hub of this network"),
            "{err}"
        );
        hub.accept_member("fas-pdl", Some("coorace"))?;
        assert!(hub.require_member(&coorace).is_ok());
        assert!(hub.require_member(&fas).is_err(), "the other network's identity is pending again");
        let removed = hub.remove_member("fas-pdl", Some("fas"))?;
        assert_eq!((removed.network.as_str(), removed.state), ("fas", MemberState::Pending as i32));
        assert!(hub.require_member(&coorace).is_ok());
        let err = hub.accept_member("iae-pdl", None).expect_err("never seen, several networks");
        assert!(err.to_string().contains("networks dreets, fas, coorace may vouch for a hub"), "{err}");
        Ok(())
    }
}
