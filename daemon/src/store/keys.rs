//! Big-endian key encodings, so that byte order is the domain's order.

use passerelle_proto::date::Month;
use uuid::Uuid;

/// The key of a record identified by a UUID: its 16 bytes. UUIDv7 ids sort by creation time.
pub(crate) fn id(id: &Uuid) -> [u8; 16] {
    *id.as_bytes()
}

/// The key of an index entry `parent ++ child`.
pub(crate) fn pair(parent: &Uuid, child: &Uuid) -> [u8; 32] {
    let mut key = [0; 32];
    key[..16].copy_from_slice(parent.as_bytes());
    key[16..].copy_from_slice(child.as_bytes());
    key
}

/// The key of a month: its ordinal as a big-endian `u32`.
pub(crate) fn month(month: Month) -> [u8; 4] {
    month.ordinal().to_be_bytes()
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn month_keys_sort_chronologically() {
        let dec = Month::parse("2025-12").map(month).expect("valid");
        let jan = Month::parse("2026-01").map(month).expect("valid");
        assert!(dec < jan);
    }
}
