//! A hostile peer speaking the wire protocol directly, for the attack tests: what a member hub
//! holding a valid certificate can send, whatever the honest code would.

use passerelle_client::TlsFiles;
use passerelle_daemon::tls::signing::RecordSigner;
use passerelle_proto::signed::{Origin, Signed, signed_bytes};
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::push_message::Kind;
use passerelle_proto::v1::{
    Batch, Change, HelloRequest, IndicatorReport, PushMessage, PushOpen, Structure, StructureKind, change,
    push_reply,
};

use crate::fixtures::report;

/// Relays `changes` with `certificates` to the hub at `endpoint` as the hub whose certificate is
/// `tls`, in one push session: `Ok` if acknowledged, the refusal otherwise.
pub async fn relay_as(
    tls: &TlsFiles,
    endpoint: &str,
    changes: Vec<Change>,
    certificates: &[Vec<u8>],
) -> anyhow::Result<Result<(), tonic::Status>> {
    let channel = passerelle_client::connect(endpoint, Some(tls), "hub").await?;
    let mut client = HubSyncClient::new(channel);
    if let Err(status) = client.hello(HelloRequest { structure: None }).await {
        return Ok(Err(status));
    }
    let open = PushMessage {
        kind: Some(Kind::Open(PushOpen {
            epoch: vec![0xe1; 16],
            datasets: vec!["indicators".into(), "needs".into()],
            epoch_created_at_ms: 1,
            head_seq: 1,
            ..Default::default()
        })),
    };
    let batch = PushMessage {
        kind: Some(Kind::Batch(Batch { seq: 1, changes, head_seq: 1, certificates: certificates.to_vec() })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(open).await?;
    tx.send(batch).await?;
    let mut replies = match client.push(tokio_stream::wrappers::ReceiverStream::new(rx)).await {
        Ok(replies) => replies.into_inner(),
        Err(status) => return Ok(Err(status)),
    };
    loop {
        match replies.message().await {
            Ok(Some(reply)) => {
                if let Some(push_reply::Kind::Ack(ack)) = reply.kind
                    && ack.seq == 1
                {
                    return Ok(Ok(()));
                }
            }
            Ok(None) => anyhow::bail!("the push stream ended without an answer"),
            Err(status) => return Ok(Err(status)),
        }
    }
}

/// The origin structure the forged records name (an ACI in 49).
pub fn structure(siret: &str) -> Structure {
    Structure {
        siret: siret.into(),
        kind: StructureKind::Aci as i32,
        name: "S".into(),
        departement: "49".into(),
    }
}

/// A July report of `siret` signed with the key of `node` (a node certificate and its key), as
/// its relayed form: the change and the signing certificate (DER).
pub fn signed_report(
    node: &TlsFiles,
    siret: &str,
    epoch: &[u8],
    epoch_at_ms: i64,
    version: u64,
    hires: u32,
) -> anyhow::Result<(Change, Vec<u8>)> {
    signed_report_for(node, "2026-07", siret, epoch, epoch_at_ms, version, hires)
}

/// The report of `period`, as [`signed_report`].
pub fn signed_report_for(
    node: &TlsFiles,
    period: &str,
    siret: &str,
    epoch: &[u8],
    epoch_at_ms: i64,
    version: u64,
    hires: u32,
) -> anyhow::Result<(Change, Vec<u8>)> {
    let signer = RecordSigner::load(&node.cert, &node.key)?;
    let mut fields = report(period);
    fields.hires = hires;
    let report = IndicatorReport { siret: siret.into(), fields: Some(fields), version, submitted_at_ms: 1 };
    let origin = structure(siret);
    let bytes = signed_bytes(
        Origin { structure: &origin, epoch, epoch_created_at_ms: epoch_at_ms },
        "indicators",
        period,
        version,
        Signed::Indicators(&report),
    );
    let change = Change {
        dataset: "indicators".into(),
        key: period.into(),
        version,
        payload: Some(change::Payload::Indicators(report)),
        origin: Some(origin),
        origin_epoch: epoch.to_vec(),
        origin_epoch_created_at_ms: epoch_at_ms,
        signature: signer.sign(&bytes)?,
        certificate_fingerprint: signer.fingerprint().to_vec(),
    };
    Ok((change, signer.certificate().to_vec()))
}
