//! Push messages as they go on the wire, with batches whose changes are already encoded.
//!
//! Why: a node keeps each change of its outbox as every hub receives it, encoded
//! (`node/outbox.rs`), and a catch-up decoded each one with prost (a `String` or `Vec` per
//! field, about 15 allocations) only to encode it again (issue 18). An [`EncodedBatch`] writes
//! those bytes as they are. On the wire it is exactly the `Batch` prost writes for the same
//! changes (fields in tag order, defaults omitted; tested below), so a hub cannot tell them
//! apart and decodes them with the same codec and the same bounds.

use bytes::BufMut;
use passerelle_proto::v1::{PushMessage, push_message};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// `PushMessage.batch`.
const PUSH_BATCH: u32 = 2;
/// `Batch.seq`.
const BATCH_SEQ: u32 = 1;
/// `Batch.changes`.
const BATCH_CHANGES: u32 = 2;
/// `Batch.head_seq`.
const BATCH_HEAD_SEQ: u32 = 3;

/// Encoded changes, each written as an element of `Batch.changes` (key, length, bytes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct EncodedChanges {
    bytes: Vec<u8>,
    count: usize,
}

impl EncodedChanges {
    /// Room for `bytes` of framed changes.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self { bytes: Vec::with_capacity(bytes), count: 0 }
    }

    /// Adds one change, given as its prost encoding (a `Change` message without length prefix).
    pub(crate) fn push(&mut self, change: &[u8]) {
        encode_key(BATCH_CHANGES, WireType::LengthDelimited, &mut self.bytes);
        encode_varint(change.len() as u64, &mut self.bytes);
        self.bytes.extend_from_slice(change);
        self.count += 1;
    }

    /// How many changes.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A `Batch` of a node (no `certificates`: those are a relay's) whose changes are encoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct EncodedBatch {
    /// `Batch.seq`.
    pub seq: u64,
    /// `Batch.changes`.
    pub changes: EncodedChanges,
    /// `Batch.head_seq`.
    pub head_seq: u64,
}

impl EncodedBatch {
    /// The length of the `Batch` message, as prost's `encoded_len` says it.
    fn len(&self) -> usize {
        let varint =
            |tag: u32, value: u64| if value == 0 { 0 } else { key_len(tag) + encoded_len_varint(value) };
        varint(BATCH_SEQ, self.seq) + self.changes.bytes.len() + varint(BATCH_HEAD_SEQ, self.head_seq)
    }

    /// The `Batch` message, fields in tag order as prost writes them.
    fn encode(&self, buf: &mut impl BufMut) {
        if self.seq != 0 {
            encode_key(BATCH_SEQ, WireType::Varint, buf);
            encode_varint(self.seq, buf);
        }
        buf.put_slice(&self.changes.bytes);
        if self.head_seq != 0 {
            encode_key(BATCH_HEAD_SEQ, WireType::Varint, buf);
            encode_varint(self.head_seq, buf);
        }
    }
}

/// What a push stream sends: a message prost encodes, or a batch of encoded changes. Only ever
/// encoded (the hub decodes a `PushMessage`); its `Message` implementation exists for the codec.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WirePush {
    /// A message built as a struct (open, full resends, relays, end of a resend).
    Message(PushMessage),
    /// A batch whose changes are already encoded.
    Batch(EncodedBatch),
}

impl WirePush {
    /// The number of changes, for a batch; `None` otherwise.
    pub(crate) fn changes(&self) -> Option<usize> {
        match self {
            Self::Message(PushMessage { kind: Some(push_message::Kind::Batch(batch)) }) => {
                Some(batch.changes.len())
            }
            Self::Message(_) => None,
            Self::Batch(batch) => Some(batch.changes.len()),
        }
    }
}

impl Default for WirePush {
    fn default() -> Self {
        Self::Message(PushMessage::default())
    }
}

impl From<push_message::Kind> for WirePush {
    fn from(kind: push_message::Kind) -> Self {
        Self::Message(PushMessage { kind: Some(kind) })
    }
}

impl prost::Message for WirePush {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            Self::Message(message) => message.encode_raw(buf),
            Self::Batch(batch) => {
                encode_key(PUSH_BATCH, WireType::LengthDelimited, buf);
                encode_varint(batch.len() as u64, buf);
                batch.encode(buf);
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Never decoded: what arrives on a push stream is a `PushMessage`.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Message(message) => message.encoded_len(),
            Self::Batch(batch) => {
                let len = batch.len();
                key_len(PUSH_BATCH) + encoded_len_varint(len as u64) + len
            }
        }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// One top-level field of an encoded message, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    /// The field number.
    pub number: u32,
    /// Its value: a varint's value, or a length-delimited field's bytes.
    pub value: FieldValue<'a>,
    /// Where the field (key included) starts and ends in the message.
    pub span: (usize, usize),
}

/// The value of a [`Field`]: only the wire types Passerelle's messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValue<'a> {
    /// A varint, and whether it was written in its shortest form (as prost writes them).
    Varint(u64, bool),
    /// Length-delimited bytes (a string, bytes, or a message).
    Bytes(&'a [u8]),
}

/// Calls `each` with every top-level field of `message`, in order, until it returns `false`.
/// Returns `false` if it did, or if the bytes are not protobuf of varint and length-delimited
/// fields only, or if a key or a length is not in its shortest form (prost never writes one, and
/// re-encoding would shorten it: the bytes would no longer be prost's): a caller then decodes
/// them with prost instead.
pub(crate) fn each_field<'a>(message: &'a [u8], mut each: impl FnMut(Field<'a>) -> bool) -> bool {
    let mut rest = message;
    while !rest.is_empty() {
        let start = message.len() - rest.len();
        let Some((key, true)) = varint(&mut rest) else { return false };
        let Ok(number) = u32::try_from(key >> 3) else { return false };
        let value = match key & 7 {
            0 => match varint(&mut rest) {
                Some((value, shortest)) => FieldValue::Varint(value, shortest),
                None => return false,
            },
            2 => {
                let Some(len) = varint(&mut rest)
                    .and_then(|(len, shortest)| usize::try_from(len).ok().filter(|_| shortest))
                else {
                    return false;
                };
                let Some((bytes, after)) = rest.split_at_checked(len) else { return false };
                rest = after;
                FieldValue::Bytes(bytes)
            }
            _ => return false,
        };
        if number == 0 || !each(Field { number, value, span: (start, message.len() - rest.len()) }) {
            return false;
        }
    }
    true
}

/// A varint at the start of `bytes`, and whether it is in its shortest form; advances past it.
/// `None` if it does not fit in 64 bits (a tenth byte above 1, which prost refuses to decode).
fn varint(bytes: &mut &[u8]) -> Option<(u64, bool)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        if i == 9 && *byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // A last byte of zero adds nothing: a longer form than needed (prost never writes it).
            let shortest = i == 0 || *byte != 0;
            *bytes = &bytes[i + 1..];
            return Some((value, shortest));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_proto::v1::{Batch, Change, SharedNeed, Structure, Tombstone, change};
    use prost::Message;

    fn changes() -> Vec<Change> {
        let need = Change {
            dataset: "needs".into(),
            key: "0192a0b0-0000-7000-8000-000000000001".into(),
            version: 300,
            payload: Some(change::Payload::Need(SharedNeed {
                origin_siret: "73282932000074".into(),
                rome_code: "K2204".into(),
                open_positions: 2,
                ..Default::default()
            })),
            origin: Some(Structure { siret: "73282932000074".into(), ..Default::default() }),
            signature: vec![7; 64],
            certificate_fingerprint: vec![9; 32],
            ..Default::default()
        };
        let big = Change { key: "k".repeat(300), ..need.clone() };
        let tombstone = Change {
            dataset: "needs".into(),
            key: "x".into(),
            version: 1,
            payload: Some(change::Payload::Tombstone(Tombstone {
                origin_siret: "73282932000074".into(),
                hub_id: "coorace-pdl".into(),
                reason: "deleted".into(),
            })),
            ..Default::default()
        };
        vec![need, big, tombstone, Change::default()]
    }

    /// The bytes a hub receives are prost's `PushMessage { batch }`, byte for byte, whatever
    /// the sequence numbers (zero ones are omitted) and however many changes (none included).
    #[test]
    fn an_encoded_batch_is_the_batch_prost_writes() {
        for (seq, head_seq) in [(0, 0), (1, 0), (0, 5), (1000, 50_000), (u64::MAX, 300)] {
            for n in 0..=4 {
                let changes: Vec<Change> = changes().into_iter().take(n).collect();
                let batch = Batch { seq, changes: changes.clone(), head_seq, ..Default::default() };
                let expected = PushMessage { kind: Some(push_message::Kind::Batch(batch)) }.encode_to_vec();
                let mut encoded = EncodedChanges::with_capacity(0);
                for change in &changes {
                    encoded.push(&change.encode_to_vec());
                }
                let wire = WirePush::Batch(EncodedBatch { seq, changes: encoded, head_seq });
                let bytes = wire.encode_to_vec();
                assert_eq!(bytes, expected, "seq {seq}, head {head_seq}, {n} changes");
                assert_eq!(wire.encoded_len(), expected.len());
                assert_eq!(wire.changes(), Some(n));
                let decoded = PushMessage::decode(bytes.as_slice()).expect("decodes");
                let Some(push_message::Kind::Batch(decoded)) = decoded.kind else { panic!("a batch") };
                assert_eq!(decoded.changes, changes);
            }
        }
    }

    #[test]
    fn fields_are_walked_with_their_spans() {
        let change = changes().remove(0);
        let bytes = change.encode_to_vec();
        let mut seen = Vec::new();
        assert!(each_field(&bytes, |f| {
            seen.push((f.number, f.span));
            true
        }));
        let numbers: Vec<u32> = seen.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 8, 11, 12]);
        assert_eq!(seen.first().map(|(_, s)| s.0), Some(0));
        assert_eq!(seen.last().map(|(_, s)| s.1), Some(bytes.len()));
        assert!(seen.windows(2).all(|w| w[0].1.1 == w[1].1.0), "contiguous");
        let mut version = None;
        each_field(&bytes, |f| {
            if f.number == 3 {
                version = Some(f.value);
            }
            true
        });
        assert_eq!(version, Some(FieldValue::Varint(300, true)));
        // Not the shortest form of 1 (prost never writes it), then a truncated message, then a
        // fixed-width field: told apart, not misread.
        assert!(each_field(&[0x18, 0x81, 0x00], |f| f.value == FieldValue::Varint(1, false)));
        assert!(!each_field(&bytes[..bytes.len() - 1], |_| true));
        assert!(!each_field(&[0x0d, 1, 2, 3, 4], |_| true));
        assert!(!each_field(&bytes, |f| f.number < 4), "stopped by the caller");
        // A key or a length in a longer form than prost writes, and a varint beyond 64 bits
        // (prost refuses it): not prost's bytes, left to prost.
        assert!(!each_field(&[0x98, 0x00, 0x01], |_| true), "long key");
        assert!(!each_field(&[0x0a, 0x81, 0x00, b'x'], |_| true), "long length");
        let mut beyond = vec![0x18];
        beyond.extend([0xff; 9]);
        beyond.push(0x02);
        assert!(!each_field(&beyond, |_| true), "beyond 64 bits");
        let mut max = vec![0x18];
        max.extend([0xff; 9]);
        max.push(0x01);
        assert!(each_field(&max, |f| f.value == FieldValue::Varint(u64::MAX, true)), "u64::MAX");
    }

    /// A message built as a struct is written as prost writes it.
    #[test]
    fn a_message_is_written_as_prost_writes_it() {
        let batch = Batch { seq: 3, changes: changes(), head_seq: 9, certificates: vec![vec![1, 2, 3]] };
        let message = PushMessage { kind: Some(push_message::Kind::Batch(batch)) };
        let wire = WirePush::Message(message.clone());
        assert_eq!(wire.encode_to_vec(), message.encode_to_vec());
        assert_eq!(wire.changes(), Some(4));
        assert_eq!(WirePush::from(push_message::Kind::SnapshotDone(Default::default())).changes(), None);
    }
}
