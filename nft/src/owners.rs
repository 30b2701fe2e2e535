//! Owner maps: how CHECK, DEL and GC find an attachment's elements by key, without listing whole sets.
//!
//! ```text
//! map owners4 { type ifname : ipv4_addr; elements = { "3fa9c0d1e2b4/00" comment "c1/eth0" : 198.18.1.2 } }
//! ```
//!
//! Each per-network table has, beside the sets the rules look up, one owner map per such set (`owners4` and
//! `owners6` for masquerade, `owners` for the spoof check). An attachment's every element in those sets has an
//! entry, written in the same transaction as the element:
//!
//! * key `<digest>/<slot>`: 48 bits of FNV-1a of the owner comment (`<containerID>/<ifname>`) in hex, and a slot
//!   number in hex, NUL-padded to 16 bytes (so `nft` prints it as a string);
//! * data: the element's key in the looked-up set (an address; a port name and MAC);
//! * comment: the owner.
//!
//! An owner's entries sit at slots 0, 1, ... of its digest with no hole: one `NFT_MSG_GETSETELEM` (not a dump)
//! asks for slots 0..31 and the kernel answers those present up to the first absent one (`nf_tables_getsetelem`
//! stops at the first key it cannot find, with ENOENT). The elements the entries name are then fetched by key too,
//! and only those whose comment is the owner's are touched: a digest collision, or an element taken over by
//! another attachment since, cannot make a DEL remove someone else's state. Owners whose digests collide share
//! one run of slots; removing one owner's entries moves the survivors above into the freed slots, so no hole is
//! left for the lookup to stop at.

use crate::objects::{datatype, Elem, MapData, SetSpec, BYTEORDER_HOST_ENDIAN};

/// Slots per digest: two hex digits.
pub(crate) const MAX_SLOTS: usize = 256;
/// IFNAMSIZ: the key is an `ifname`-typed string.
const KEY_LEN: usize = 16;

/// The digest of an owner comment: 48 bits of FNV-1a, the twelve hex digits of the key.
pub(crate) fn digest(owner: &str) -> u64 {
    conf::hash::fnv1a64(owner.bytes()) & 0xffff_ffff_ffff
}

/// The key of `slot` of `digest`: `"<12 hex digits>/<2 hex digits>"`, NUL-padded.
pub(crate) fn slot_key(digest: u64, slot: usize) -> Vec<u8> {
    let mut k = format!("{:012x}/{:02x}", digest & 0xffff_ffff_ffff, slot % MAX_SLOTS).into_bytes();
    k.resize(KEY_LEN, 0);
    k
}

/// The (digest, slot) of an entry's key, if it is one.
pub(crate) fn parse_key(key: &[u8]) -> Option<(u64, usize)> {
    let text = std::str::from_utf8(key.get(..15)?).ok()?;
    let (digest, slot) = text.split_once('/')?;
    Some((u64::from_str_radix(digest, 16).ok()?, usize::from_str_radix(slot, 16).ok()?))
}

/// The spec of an owner map named `name` whose values are `data`.
pub(crate) fn map_spec(name: &'static str, data: MapData) -> SetSpec {
    SetSpec {
        name,
        key_type: datatype::IFNAME,
        key_len: KEY_LEN as u32,
        flags: 0,
        key_byteorder: BYTEORDER_HOST_ENDIAN,
        data: Some(data),
    }
}

/// The elements an owner-map entry stands for: (set, key) pairs derived from the entry's data.
pub(crate) type Targets = fn(&[u8]) -> Vec<(&'static str, Vec<u8>)>;

/// An owner map of a table and the elements its entries stand for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnerMap {
    /// The map's name.
    pub(crate) name: &'static str,
    /// The (set, key) pairs an entry's data names.
    pub(crate) targets: Targets,
}

/// Changes to a run of entries, deletions first.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RunChange {
    pub(crate) del: Vec<Elem>,
    pub(crate) add: Vec<Elem>,
}

impl RunChange {
    /// Whether the change moves entries it keeps (only when digests collide): then it must be computed from a
    /// consistent read, and bound to the generation it read.
    pub(crate) fn moves(&self) -> bool {
        !self.add.is_empty()
    }
}

/// Remove the entries of `run` (the entries of one digest, any order) for which `gone` holds; the survivors take
/// slots 0, 1, ... in their order, so the run has no hole.
pub(crate) fn shrink(run: &[Elem], gone: impl Fn(&Elem) -> bool) -> RunChange {
    let mut sorted: Vec<(u64, usize, &Elem)> =
        run.iter().filter_map(|e| parse_key(&e.key).map(|(d, s)| (d, s, e))).collect();
    sorted.sort_by_key(|(_, slot, _)| *slot);
    let mut change = RunChange::default();
    let mut next = 0;
    for (digest, slot, e) in sorted {
        if gone(e) {
            change.del.push(Elem::new(e.key.clone(), None));
            continue;
        }
        if slot != next {
            change.del.push(Elem::new(e.key.clone(), None));
            change.add.push(Elem { key: slot_key(digest, next), ..e.clone() });
        }
        next += 1;
    }
    change
}

/// The entries to add so that `owner` (of `digest`) has one for each of `data`, after the entries of `run` (the
/// run of `digest` as read, slots 0..run.len()): those already there are skipped.
pub(crate) fn append(run: &[Elem], owner: &str, digest: u64, data: &[Vec<u8>]) -> Vec<Elem> {
    let have = |d: &Vec<u8>| run.iter().any(|e| e.comment.as_deref() == Some(owner) && e.data.as_ref() == Some(d));
    data.iter()
        .filter(|d| !have(d))
        .enumerate()
        .map(|(i, d)| Elem::mapping(slot_key(digest, run.len() + i), d.clone(), owner))
        .collect()
}

/// The entries of a fresh attachment, assuming nobody else uses its digest (slots 0..data.len()).
pub(crate) fn fresh(owner: &str, digest: u64, data: &[Vec<u8>]) -> Vec<Elem> {
    append(&[], owner, digest, data)
}

/// Group the entries of a listed owner map by digest (GC).
pub(crate) fn runs(entries: Vec<Elem>) -> Vec<Vec<Elem>> {
    let mut by_digest: std::collections::BTreeMap<u64, Vec<Elem>> = std::collections::BTreeMap::new();
    for e in entries {
        let digest = parse_key(&e.key).map_or(u64::MAX, |(d, _)| d);
        by_digest.entry(digest).or_default().push(e);
    }
    by_digest.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: u64, slot: usize, owner: &str, data: u8) -> Elem {
        Elem::mapping(slot_key(digest, slot), vec![data], owner)
    }

    #[test]
    fn keys_round_trip_and_print_as_strings() {
        let k = slot_key(0x3fa9_c0d1_e2b4, 10);
        assert_eq!(&k[..15], b"3fa9c0d1e2b4/0a");
        assert_eq!(k.len(), 16);
        assert_eq!(k[15], 0);
        assert_eq!(parse_key(&k), Some((0x3fa9_c0d1_e2b4, 10)));
        assert_eq!(parse_key(b"veth1\0\0\0\0\0\0\0\0\0\0\0"), None);
        assert!(digest("c1/eth0") < 1 << 48);
        assert_ne!(digest("c1/eth0"), digest("c1/eth1"));
    }

    #[test]
    fn shrinking_a_run_of_one_owner_only_deletes() {
        let run = [entry(7, 0, "a", 1), entry(7, 1, "a", 2)];
        let change = shrink(&run, |e| e.comment.as_deref() == Some("a"));
        assert_eq!(change.del.len(), 2);
        assert!(!change.moves());
    }

    #[test]
    fn shrinking_a_shared_run_moves_the_survivors_down() {
        // a and b collide: a holds slots 0 and 2, b slots 1 and 3.
        let run = [entry(7, 3, "b", 4), entry(7, 0, "a", 1), entry(7, 1, "b", 2), entry(7, 2, "a", 3)];
        let change = shrink(&run, |e| e.comment.as_deref() == Some("a"));
        let keys = |v: &[Elem]| v.iter().map(|e| parse_key(&e.key).unwrap().1).collect::<Vec<_>>();
        assert_eq!(keys(&change.del), [0, 1, 2, 3]);
        assert_eq!(keys(&change.add), [0, 1]);
        assert_eq!(change.add.iter().map(|e| e.data.clone().unwrap()[0]).collect::<Vec<_>>(), [2, 4]);
        assert!(change.add.iter().all(|e| e.comment.as_deref() == Some("b")));
        // b removed instead: a's entries at 0 stays, 2 moves to 1
        let change = shrink(&run, |e| e.comment.as_deref() == Some("b"));
        assert_eq!(keys(&change.add), [1]);
        assert_eq!(change.add[0].data, Some(vec![3]));
    }

    #[test]
    fn appending_skips_what_the_owner_has() {
        let run = [entry(7, 0, "b", 1), entry(7, 1, "a", 2)];
        let add = append(&run, "a", 7, &[vec![2], vec![3]]);
        assert_eq!(add.len(), 1);
        assert_eq!(parse_key(&add[0].key), Some((7, 2)));
        assert_eq!(add[0].data, Some(vec![3]));
        assert_eq!(fresh("a", 7, &[vec![1]])[0].key, slot_key(7, 0));
    }
}
