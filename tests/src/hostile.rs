//! A hostile peer speaking the wire protocol directly, for the attack tests: what a member hub
//! holding a valid certificate can send, whatever the honest code would.

use passerelle_client::TlsFiles;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::push_message::Kind;
use passerelle_proto::v1::{Batch, Change, HelloRequest, PushMessage, PushOpen, push_reply};

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
