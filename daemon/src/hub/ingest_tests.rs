//! Group commit and key bounds of the apply path, on a real sled store.

use passerelle_proto::datasets::Dataset;
use passerelle_proto::identity::{PeerId, Role};
use passerelle_proto::v1::{Batch, Change, SharedNeed, Structure, change};

use super::*;
use crate::tls::Peer;

const SIRET: &str = "73282932000074";

fn peer() -> Peer {
    Peer { id: PeerId { role: Role::Node, id: SIRET.into() }, serial: None, network: Some("coorace".into()) }
}

/// A hub with `SIRET` admitted, and a push session of it.
fn hub_and_session(dir: &std::path::Path, session_id: u64) -> anyhow::Result<(Hub, PushSession)> {
    let hub = Hub::for_tests(dir);
    let structure = Structure { siret: SIRET.into(), kind: 1, name: "S".into(), departement: "49".into() };
    hub.admit(&peer(), Some(structure))?;
    Ok((hub, PushSession::for_tests(peer(), vec![1; 16], &[Dataset::Needs], session_id)))
}

fn need(key: &str, version: u64, rome_code: &str) -> Change {
    Change {
        dataset: "needs".into(),
        key: key.into(),
        version,
        payload: Some(change::Payload::Need(SharedNeed {
            origin_siret: SIRET.into(),
            need_id: key.into(),
            origin_version: version,
            rome_code: rome_code.into(),
            contract_type: 1,
            open_positions: 1,
            hours_per_week: 24,
            departement: "49".into(),
            start_date: "2027-01-04".into(),
            status: 1,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn batch(seq: u64, changes: Vec<Change>) -> Batch {
    Batch { seq, changes, head_seq: seq, ..Default::default() }
}

/// Version of each record held (live or not), by key.
fn held(hub: &Hub) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    Ok(hub.records_of(SIRET, Dataset::Needs)?.into_iter().map(|(k, r)| (k, r.version)).collect())
}

fn key(n: u8) -> String {
    format!("01920000-0000-7000-8000-0000000000{n:02x}")
}

/// [good, bad, good] in one group: both good batches are applied and durable (the store is
/// reopened), the bad one is refused with its own status and nothing of it is written, not even
/// its valid first change.
#[test]
fn a_bad_batch_in_a_group_is_refused_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let (hub, session) = hub_and_session(dir.path(), 1)?;
        let good = batch(1, vec![need(&key(1), 1, "K2204"), need(&key(2), 1, "K2204")]);
        let bad = batch(2, vec![need(&key(3), 1, "K2204"), need(&key(4), 1, "not-a-rome-code")]);
        let also_good = batch(3, vec![need(&key(5), 1, "K2204"), need(&key(1), 2, "K2204")]);
        let outcomes = hub.apply_batches(&session, vec![good, bad, also_good]);
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
        assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
        match &outcomes[1] {
            Err(e @ Error::Invalid(_)) => assert!(e.to_string().contains("rome_code"), "{e}"),
            other => panic!("the bad batch must be refused as invalid, naming the field: {other:?}"),
        }
        let member = hub.member_for(&peer())?;
        assert_eq!((member.records_held, member.last_acked_seq), (3, 3));
    }
    // Reopened: what was acknowledged is on disk.
    let hub = Hub::for_tests(dir.path());
    let expected: std::collections::BTreeMap<String, u64> =
        [(key(1), 2), (key(2), 1), (key(5), 1)].into_iter().collect();
    assert_eq!(held(&hub)?, expected, "the good batches, whole; nothing of the bad one");
    Ok(())
}

/// Last writer wins across a restart: an older version of the highest key the hub holds is still
/// refused after the hub reopens its store (the bound is read from the store, not remembered),
/// and keys above it are applied without a read.
#[test]
fn key_bounds_keep_last_writer_wins_across_a_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let (hub, session) = hub_and_session(dir.path(), 1)?;
        hub.apply_batch(&session, batch(1, vec![need(&key(1), 1, "K2204"), need(&key(2), 3, "K2204")]))?;
        // In the same process, an older version of the highest key.
        hub.apply_batch(&session, batch(2, vec![need(&key(2), 2, "A1101")]))?;
        assert_eq!(held(&hub)?.get(&key(2)), Some(&3));
    }
    let hub = Hub::for_tests(dir.path());
    let session = PushSession::for_tests(peer(), vec![1; 16], &[Dataset::Needs], 2);
    hub.apply_batch(
        &session,
        batch(3, vec![need(&key(2), 1, "A1101"), need(&key(1), 1, "A1101"), need(&key(9), 1, "K2204")]),
    )?;
    let expected: std::collections::BTreeMap<String, u64> =
        [(key(1), 1), (key(2), 3), (key(9), 1)].into_iter().collect();
    assert_eq!(held(&hub)?, expected);
    let rome = |k: &str| -> anyhow::Result<String> {
        let record = hub.load_record(&RecordKey::new(SIRET, Dataset::Needs, k).encode())?;
        Ok(record.and_then(|r| r.need).map(|n| n.rome_code).unwrap_or_default())
    };
    assert_eq!(rome(&key(2))?, "K2204", "the older version changed nothing");
    assert_eq!(rome(&key(1))?, "K2204", "the same version again changed nothing");
    Ok(())
}

/// The bound is the greatest key of the origin's dataset in the store, whatever other origins
/// and datasets hold.
#[test]
fn key_bounds_are_per_origin_and_dataset() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (hub, session) = hub_and_session(dir.path(), 1)?;
    hub.apply_batch(&session, batch(1, vec![need(&key(3), 1, "K2204")]))?;
    let mut bounds = KeyBounds::default();
    let rk = |n: u8| RecordKey::new(SIRET, Dataset::Needs, key(n)).encode();
    assert!(!bounds.above(&hub, Tree::Records, SIRET, Dataset::Needs, &rk(2))?);
    assert!(!bounds.above(&hub, Tree::Records, SIRET, Dataset::Needs, &rk(3))?);
    assert!(bounds.above(&hub, Tree::Records, SIRET, Dataset::Needs, &rk(4))?);
    let other = RecordKey::new("44306184100047", Dataset::Needs, key(1)).encode();
    assert!(bounds.above(&hub, Tree::Records, "44306184100047", Dataset::Needs, &other)?);
    let report = RecordKey::new(SIRET, Dataset::Indicators, "2026-01").encode();
    assert!(bounds.above(&hub, Tree::Records, SIRET, Dataset::Indicators, &report)?);
    Ok(())
}
