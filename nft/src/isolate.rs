//! Isolation between tether networks: traffic the node forwards from one network's node-side interfaces to
//! another network's is dropped.
//!
//! ```text
//! table inet tether {
//!     set same { type devgroup . devgroup; elements = { G1 . G1 comment "net1", G2 . G2 comment "net2" } }
//!     chain forward {
//!         type filter hook forward priority filter; policy accept;
//!         iifgroup & 0xff000000 == 0x7e000000 oifgroup & 0xff000000 == 0x7e000000 iifgroup . oifgroup != @same drop
//!     }
//! }
//! ```
//!
//! Every node-side interface of network N (a ptp node end; a bridge, its ports, a VLAN gateway) carries the link
//! group `G(N)` = [`ISOLATION_TAG`] | 24 bits of a hash of N ([`isolation_group`]); the plugin sets it in the
//! creation message. A forwarded packet between two tagged interfaces passes only when both carry the same
//! group. Traffic to or from untagged interfaces (the uplink, the node itself, masqueraded return traffic) is
//! never matched. One hook and one rule serve all networks; the check is a hash lookup whatever their number.
//!
//! Only networks that ask for isolation take part: the plugin leaves other networks' interfaces in group 0, which
//! the rule never matches. The table is shared; each isolated network's element is added on its every ADD
//! (idempotent) and removed with the network's masquerade table on its last DEL, or by a GC that lists no
//! attachment of it; the last element takes the table with it. A missing element fails closed: the network's own routed traffic would be dropped too,
//! which CHECK reports ([`isolate_check`]). Two networks whose hashes collide (about n²/2²⁵ for n networks) would
//! share a group and not be isolated from each other, so [`isolate_add`] refuses the second one.

use crate::names;
use crate::netlink::{Batch, Commit};
use crate::objects::{
    self, datatype, meta_key, reg, verdict, BaseChain, Elem, Expr, Family, SetSpec, Table, BYTEORDER_HOST_ENDIAN,
};
use crate::state::{backoff, push_creation, table_existed, Companion, MAX_ATTEMPTS};
use crate::{NftError, Session};

/// The top byte shared by every tether isolation group.
pub const ISOLATION_TAG: u32 = 0x7e00_0000;
/// The bits of a link group that hold [`ISOLATION_TAG`].
pub const ISOLATION_MASK: u32 = 0xff00_0000;

/// The shared table: `tether` cannot collide with a network's `tether-<network>`.
const TABLE: &str = "tether";
const CHAIN: &str = "forward";
const SAME: &str = "same";
/// NF_INET_FORWARD, at the filter priority.
const HOOK_FORWARD: u32 = 2;
const PRIO_FILTER: i32 = 0;

fn table() -> Table {
    Table { family: Family::Inet, name: TABLE.to_owned() }
}

/// The link group of `network`'s node-side interfaces: [`ISOLATION_TAG`] and 24 bits of a stable hash of the
/// name (FNV-1a folded; the same on every node and release, so DEL and CHECK of another version agree).
pub fn isolation_group(network: &str) -> Result<u32, NftError> {
    names::table_name("isolation_group", network)?; // validates the name
    let h = conf::hash::fnv1a64(network.bytes());
    let folded = (h ^ (h >> 24) ^ (h >> 48)) as u32 & !ISOLATION_MASK;
    Ok(ISOLATION_TAG | folded)
}

fn key(group: u32) -> Vec<u8> {
    // A devgroup is a host-endian u32 in its register; the concatenation is two 4-byte registers.
    let mut k = group.to_ne_bytes().to_vec();
    k.extend_from_slice(&group.to_ne_bytes());
    k
}

fn table_contents(t: &Table, batch: &mut Batch) {
    let chain = BaseChain { name: CHAIN, kind: "filter", hook: HOOK_FORWARD, priority: PRIO_FILTER };
    let set = SetSpec {
        name: SAME,
        key_type: datatype::concat(&[datatype::DEVGROUP, datatype::DEVGROUP]),
        key_len: 8,
        flags: 0,
        key_byteorder: BYTEORDER_HOST_ENDIAN,
        data: None,
    };
    objects::push_contents(batch, t, &chain, &[set], &[rule()]);
}

fn rule() -> Vec<Expr> {
    let tagged = |key| {
        [
            Expr::Meta { key, dreg: reg::R1 },
            Expr::Mask { reg: reg::R1, mask: ISOLATION_MASK.to_ne_bytes().to_vec() },
            Expr::Cmp { sreg: reg::R1, eq: true, data: ISOLATION_TAG.to_ne_bytes().to_vec() },
        ]
    };
    let mut exprs: Vec<Expr> = Vec::new();
    exprs.extend(tagged(meta_key::IIFGROUP));
    exprs.extend(tagged(meta_key::OIFGROUP));
    exprs.extend([
        Expr::Meta { key: meta_key::IIFGROUP, dreg: reg::R32_00 },
        Expr::Meta { key: meta_key::OIFGROUP, dreg: reg::R32_01 },
        Expr::Lookup { sreg: reg::R32_00, set: SAME, invert: true },
        Expr::Verdict(verdict::DROP),
    ]);
    exprs
}

/// The network's isolation element, as what goes with its masquerade table on its last DEL.
pub(crate) fn companion(network: &str) -> Result<Companion, NftError> {
    let group = isolation_group(network)?;
    Ok(Companion { table: table(), set: SAME, key: key(group), comment: names::network_comment(network) })
}

impl Session {
    /// Isolate `network` from every other tether network: make sure the shared table exists (created race-free) and
    /// holds the network's group. Returns the group to give the network's node-side interfaces. Idempotent: the usual
    /// call (element present) is one read; a network new to the node is one transaction, which also creates the
    /// table if it is the node's first.
    pub fn isolate_add(&mut self, network: &str) -> Result<u32, NftError> {
        const OP: &str = "isolate_add";
        let group = isolation_group(network)?;
        let comment = names::network_comment(network);
        let t = table();
        let set = t.set(SAME);
        let elem = Elem::new(key(group), Some(&comment));
        let mut ctx = self.ctx(OP);
        let mut last: Option<NftError> = None;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt);
            match ctx.get_elem(set, &elem.key)? {
                Some(e) if e.comment.as_deref() == Some(comment.as_str()) => return Ok(group),
                Some(e) => {
                    // Sharing a group would silently let the two networks reach each other.
                    return Err(NftError::invalid(
                        OP,
                        format!("network {network:?}"),
                        format!(
                            "its isolation group {group:#x} is held by network {:?} (a 24-bit hash collision): rename \
                         one of the two",
                            e.comment.as_deref().unwrap_or("?")
                        ),
                    ));
                }
                None => {}
            }
            // No table on the node's first isolated network: this transaction creates it with the element.
            let absent_since = ctx.absent_since(&t)?;
            let mut batch = match absent_since {
                Some(genid) => Batch::new().if_generation(genid),
                None => Batch::new(),
            };
            if absent_since.is_some() {
                push_creation(&mut batch, &t, |b| table_contents(&t, b));
            }
            batch.push(objects::add_elems(set, std::slice::from_ref(&elem), true), set.describe());
            match ctx.commit(&batch, &t.describe())? {
                Commit::Done => return Ok(group),
                // Read again: ERESTART, the ruleset moved since the table was seen absent (any commit moves it); a
                // table that exists, a concurrent ADD made it; ENOENT, a concurrent last DEL dropped it; EEXIST, a
                // concurrent ADD of the same network won.
                Commit::Rejected { errno: libc::ERESTART, .. } => {}
                Commit::Failed(fs) if absent_since.is_some() && table_existed(&fs) => {
                    last = Some(ctx.failure(&batch, &fs[0]))
                }
                Commit::Failed(fs) if absent_since.is_none() && fs.iter().all(|f| f.errno == libc::ENOENT) => {}
                Commit::Failed(fs) if fs.iter().all(|f| f.errno == libc::EEXIST) => {
                    last = Some(ctx.failure(&batch, &fs[0]))
                }
                Commit::Failed(fs) => return Err(ctx.failure(&batch, &fs[0])),
                Commit::Rejected { errno, detail } => return Err(NftError::errno(OP, t.describe(), errno, detail)),
            }
        }
        Err(last.unwrap_or_else(|| NftError::gave_up(OP, t.describe())))
    }

    /// Remove `network`'s isolation element if it holds one (GC, when no attachment of the network is left), and the
    /// shared table with it when it was the last one.
    pub fn isolate_del(&mut self, network: &str) -> Result<(), NftError> {
        const OP: &str = "isolate_del";
        let c = companion(network)?;
        let mut ctx = self.ctx(OP);
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt);
            let mut batch = Batch::new().if_generation(ctx.generation()?);
            ctx.push_companion_removal(&mut batch, &c)?;
            if batch.is_empty() {
                return Ok(());
            }
            match ctx.commit(&batch, &c.table.describe())? {
                Commit::Done => return Ok(()),
                Commit::Rejected { errno: libc::ERESTART, .. } => {}
                Commit::Failed(fs) => return Err(ctx.failure(&batch, &fs[0])),
                Commit::Rejected { errno, detail } => {
                    return Err(NftError::errno(OP, c.table.describe(), errno, detail))
                }
            }
        }
        Err(NftError::gave_up(OP, c.table.describe()))
    }

    /// Whether `network`'s group is in the shared set (for CHECK).
    pub fn isolate_check(&mut self, network: &str) -> Result<bool, NftError> {
        const OP: &str = "isolate_check";
        let group = isolation_group(network)?;
        let t = table();
        let mut ctx = self.ctx(OP);
        Ok(ctx.get_elem(t.set(SAME), &key(group))?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_tagged_stable_and_distinct() {
        let a = isolation_group("routed").unwrap();
        assert_eq!(a & ISOLATION_MASK, ISOLATION_TAG);
        assert_eq!(a, isolation_group("routed").unwrap());
        assert_ne!(a, isolation_group("isolated").unwrap());
        // Stable across releases: interfaces made by an older ADD keep matching.
        assert_eq!(isolation_group("a").unwrap(), 0x7edd_0f69);
        assert!(isolation_group("bad/name").unwrap_err().is_invalid_input());
    }

    #[test]
    fn few_collisions_among_many_names() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            seen.insert(isolation_group(&format!("net-{i}")).unwrap());
        }
        assert!(seen.len() >= 1999, "{} distinct groups for 2000 names", seen.len());
    }

    #[test]
    fn rule_ends_in_drop_and_keys_are_two_groups() {
        assert!(matches!(rule().last(), Some(Expr::Verdict(verdict::DROP))));
        assert_eq!(key(0x7e12_3456).len(), 8);
        assert_eq!(&key(0x7e12_3456)[..4], &0x7e12_3456u32.to_ne_bytes());
    }
}
