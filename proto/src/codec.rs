//! The gRPC codec of every Passerelle service: prost, plus element-count bounds checked on the
//! encoded bytes *before* decoding.
//!
//! Why: the message-size limit bounds bytes, not allocations. An empty `Change` is 2 bytes on the
//! wire and a few hundred in memory, so one 4 MiB `Batch` of them decodes into two million structs
//! (a hub went from 36 MB to 742 MB). Counting the repeated fields a peer controls is a linear scan
//! of the wire format that allocates nothing; a message over a bound is refused with
//! `RESOURCE_EXHAUSTED` naming the field, and never decoded.

use std::any::TypeId;
use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::v1::{GetTableRequest, PushMessage};

/// Most changes in one `Batch`. A node sends at most 1,000; a relaying hub sends about 500 feed
/// lines plus the records of the last feed entry it read (a member's batch, or a removal).
pub const MAX_CHANGES_PER_BATCH: usize = 10_000;
/// Most datasets (and digests) a `PushOpen` may name: there are three today.
pub const MAX_DATASETS_PER_OPEN: usize = 16;
/// Most certificates a `PushOpen` may carry (a node's current one and those it renewed from).
pub const MAX_CERTIFICATES_PER_OPEN: usize = 16;
/// Most dimensions a `GetTableRequest` may name (tables have at most two; the rest is refused
/// by the table's own check, this only bounds what is decoded).
pub const MAX_DIMENSIONS: usize = 16;
/// Most top-level fields in any message: far above any legitimate message (a view batch
/// holds a feed entry's needs, at most a batch's 1,000 changes; an import message 500 rows), far below what 4 MiB of empty fields would make.
pub const MAX_FIELDS: usize = 100_000;

/// Bytes a stream's encode buffer starts with (tonic's default is 8 KiB). tonic keeps one per
/// open stream for its whole life, and a hub holds one per member's view `Subscribe`: 4,000 of
/// them at 8 KiB were 32 MB for nothing; [`ExactEncoder`] reserves what each message needs.
pub const ENCODE_BUFFER_BYTES: usize = 1024;
/// Encoded bytes after which a stream hands what it has to HTTP/2 rather than encoding the next
/// ready message into the same buffer (tonic's default is 32 KiB). One byte: every message is
/// handed over alone. With 8 KiB, two or three view pages shared one buffer that grew to 16 KiB
/// and stayed that size for the stream's life (60 MB over a hub's 4,000 idle subscriptions, in a
/// heap profile); handed over alone, a stream keeps at most its last message's allocation.
pub const ENCODE_YIELD_BYTES: usize = 1;
/// Bytes a stream's decode buffer starts with (tonic's default is 8 KiB): a hub decodes a push
/// stream per member at first contact; a message needing more grows it.
pub const DECODE_BUFFER_BYTES: usize = 1024;

/// [`tonic_prost::ProstCodec`] with the bounds of this module on decoding, and small buffers.
#[derive(Debug, Clone, Copy)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ExactEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ExactEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(PhantomData)
    }
}

/// Encodes with prost into a buffer grown to the message's exact size first.
///
/// Why: prost writes field by field, and the buffer doubles as it goes (1 KiB, 2, 4, 8), so a
/// 4.1 kB view page ended in an 8 KiB allocation; while HTTP/2 still holds the previous message,
/// tonic cannot reuse the buffer and allocates again. Reserving `encoded_len` makes the one
/// allocation the message's size.
#[derive(Debug, Clone, Copy)]
pub struct ExactEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ExactEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        // `encode` would compute `encoded_len` again only to check the space reserved here.
        item.encode_raw(buf);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(ENCODE_BUFFER_BYTES, ENCODE_YIELD_BYTES)
    }
}

/// Checks [`check_bounds`], then decodes with prost.
#[derive(Debug, Clone, Copy)]
pub struct BoundedDecoder<U>(PhantomData<U>);

impl<U: Message + Default + 'static> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        check_bounds::<U>(bytes::Buf::chunk(buf)).map_err(|e| Status::resource_exhausted(e.to_string()))?;
        U::decode(buf).map(Some).map_err(|e| Status::internal(e.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(DECODE_BUFFER_BYTES, ENCODE_YIELD_BYTES)
    }
}

/// A bound a message breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooMany {
    /// The repeated field, as the proto names it.
    pub field: &'static str,
    /// Its bound.
    pub max: usize,
}

impl std::fmt::Display for TooMany {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: at most {} per message", self.field, self.max)
    }
}

/// Checks the encoded bytes of a `U` against the bounds above. Bytes that are not valid protobuf
/// pass (prost's decoding refuses them right after, with its own error).
pub fn check_bounds<U: 'static>(bytes: &[u8]) -> Result<(), TooMany> {
    let Some(top) = count(bytes, |_| true) else { return Ok(()) };
    if top > MAX_FIELDS {
        return Err(TooMany { field: "fields", max: MAX_FIELDS });
    }
    let id = TypeId::of::<U>();
    if id == TypeId::of::<PushMessage>() {
        // PushMessage { open = 1, batch = 2 }; PushOpen { datasets = 3, digests = 4 };
        // PushOpen { certificates = 7 }; Batch { changes = 2, certificates = 4 }. A oneof may be
        // repeated on the wire: every occurrence counts.
        let (mut opens, mut open_certificates) = (0, 0);
        let (mut changes, mut certificates) = (0, 0);
        each_nested(bytes, 1, |open| {
            opens = opens.max(count(open, |f| f == 3).unwrap_or(0)).max(count(open, |f| f == 4).unwrap_or(0));
            open_certificates += count(open, |f| f == 7).unwrap_or(0);
        });
        each_nested(bytes, 2, |batch| {
            changes += count(batch, |f| f == 2).unwrap_or(0);
            certificates += count(batch, |f| f == 4).unwrap_or(0);
        });
        if opens > MAX_DATASETS_PER_OPEN {
            return Err(TooMany { field: "datasets", max: MAX_DATASETS_PER_OPEN });
        }
        if open_certificates > MAX_CERTIFICATES_PER_OPEN {
            return Err(TooMany { field: "certificates", max: MAX_CERTIFICATES_PER_OPEN });
        }
        if changes > MAX_CHANGES_PER_BATCH {
            return Err(TooMany { field: "changes", max: MAX_CHANGES_PER_BATCH });
        }
        if certificates > MAX_CHANGES_PER_BATCH {
            return Err(TooMany { field: "certificates", max: MAX_CHANGES_PER_BATCH });
        }
    } else if id == TypeId::of::<GetTableRequest>() {
        // GetTableRequest { by = 2 }.
        if count(bytes, |f| f == 2).unwrap_or(0) > MAX_DIMENSIONS {
            return Err(TooMany { field: "by", max: MAX_DIMENSIONS });
        }
    }
    Ok(())
}

/// One top-level field: its number, and its bytes when length-delimited.
fn fields(mut bytes: &[u8], mut each: impl FnMut(u32, Option<&[u8]>)) -> Option<()> {
    while !bytes.is_empty() {
        let tag = varint(&mut bytes)?;
        let field = u32::try_from(tag >> 3).ok()?;
        match tag & 7 {
            0 => {
                varint(&mut bytes)?;
                each(field, None);
            }
            1 => {
                bytes = bytes.get(8..)?;
                each(field, None);
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                let (payload, rest) = (bytes.get(..len)?, bytes.get(len..)?);
                each(field, Some(payload));
                bytes = rest;
            }
            5 => {
                bytes = bytes.get(4..)?;
                each(field, None);
            }
            _ => return None,
        }
    }
    Some(())
}

/// How many top-level fields `only` keeps; `None` if the bytes are not protobuf.
fn count(bytes: &[u8], only: impl Fn(u32) -> bool) -> Option<usize> {
    let mut n = 0;
    fields(bytes, |field, _| {
        if only(field) {
            n += 1;
        }
    })?;
    Some(n)
}

/// Calls `each` with the bytes of every occurrence of length-delimited `field`.
fn each_nested(bytes: &[u8], field: u32, mut each: impl FnMut(&[u8])) {
    let _ = fields(bytes, |f, payload| {
        if let (true, Some(payload)) = (f == field, payload) {
            each(payload);
        }
    });
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{Batch, Change, PushOpen, push_message};

    fn batch_of(n: usize) -> Vec<u8> {
        PushMessage {
            kind: Some(push_message::Kind::Batch(Batch {
                changes: vec![Change::default(); n],
                ..Default::default()
            })),
        }
        .encode_to_vec()
    }

    #[test]
    fn a_batch_is_bounded_in_changes_before_decoding() {
        assert_eq!(check_bounds::<PushMessage>(&batch_of(MAX_CHANGES_PER_BATCH)), Ok(()));
        let too_many = batch_of(MAX_CHANGES_PER_BATCH + 1);
        assert!(too_many.len() < 30_000, "empty changes are 2 bytes each: {}", too_many.len());
        assert_eq!(
            check_bounds::<PushMessage>(&too_many),
            Err(TooMany { field: "changes", max: MAX_CHANGES_PER_BATCH })
        );
        // Split over two occurrences of the oneof, they still add up.
        let mut twice = batch_of(MAX_CHANGES_PER_BATCH / 2 + 1);
        twice.extend(batch_of(MAX_CHANGES_PER_BATCH / 2 + 1));
        assert!(check_bounds::<PushMessage>(&twice).is_err());
    }

    #[test]
    fn open_get_table_and_any_message_are_bounded() {
        let open = |n: usize| {
            PushMessage {
                kind: Some(push_message::Kind::Open(PushOpen {
                    datasets: vec!["needs".into(); n],
                    ..Default::default()
                })),
            }
            .encode_to_vec()
        };
        assert_eq!(check_bounds::<PushMessage>(&open(3)), Ok(()));
        assert_eq!(check_bounds::<PushMessage>(&open(17)).map_err(|e| e.field), Err("datasets"));
        let table =
            |n: usize| GetTableRequest { by: vec![String::new(); n], ..Default::default() }.encode_to_vec();
        assert_eq!(check_bounds::<GetTableRequest>(&table(2)), Ok(()));
        assert_eq!(check_bounds::<GetTableRequest>(&table(17)).map_err(|e| e.field), Err("by"));
        let huge = crate::v1::ListMembersResponse { members: vec![Default::default(); MAX_FIELDS + 1] };
        assert_eq!(
            check_bounds::<crate::v1::ListMembersResponse>(&huge.encode_to_vec()).map_err(|e| e.field),
            Err("fields")
        );
        assert_eq!(check_bounds::<PushMessage>(&[0xff, 0xff]), Ok(()), "not protobuf: prost's error");
    }
}
