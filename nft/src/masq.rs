//! IP masquerade for a network's containers: one table per network, containers as set elements.
//!
//! ```text
//! table inet tether-<network> {
//!     set masq4 { type ipv4_addr; elements = { 198.18.1.2 comment "<containerID>/<ifname>" } }
//!     set masq6 { type ipv6_addr; ... }
//!     set nets4 { type ipv4_addr; flags interval; elements = { 198.18.1.0/24 } }
//!     set nets6 { type ipv6_addr; flags interval; ... }
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip daddr @nets4 return
//!         ip daddr 224.0.0.0/4 return
//!         ip saddr @masq4 masquerade
//!         ip6 daddr @nets6 return
//!         ip6 daddr ff00::/8 return
//!         ip6 saddr @masq6 masquerade
//!     }
//! }
//! ```
//!
//! This is the reference's behaviour (masquerade a container's traffic unless it goes to the network's subnet or
//! to multicast) with six rules per network however many containers there are. The subnets are shared by the
//! network's containers and stay while the table exists; the DEL or GC that removes the last container drops the
//! table (and the network's isolation element).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::names;
use crate::netlink::{Batch, Commit};
use crate::objects::{
    self, base, datatype, meta_key, reg, verdict, BaseChain, Elem, Expr, Family, SetSpec, Table, BYTEORDER_BIG_ENDIAN,
    NFT_SET_ELEM_INTERVAL_END, NFT_SET_INTERVAL,
};
use crate::state::{backoff, push_elems, Ctx, MAX_ATTEMPTS};
use crate::NftError;

/// One address of a container to masquerade, with the subnet it belongs to (traffic to the subnet is not
/// masqueraded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasqEntry {
    /// The container's address (the source to masquerade).
    pub addr: IpAddr,
    /// The subnet it belongs to; destinations inside it are not masqueraded. Host bits are ignored.
    pub subnet: IpNet,
}

const CHAIN: &str = "postrouting";
/// NF_INET_POST_ROUTING, and the srcnat priority.
const HOOK_POSTROUTING: u32 = 4;
const PRIO_SRCNAT: i32 = 100;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// Per-family names and header offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    Four,
    Six,
}

impl V {
    fn of(a: &IpAddr) -> V {
        if a.is_ipv4() {
            V::Four
        } else {
            V::Six
        }
    }
    fn masq_set(self) -> &'static str {
        match self {
            V::Four => "masq4",
            V::Six => "masq6",
        }
    }
    fn nets_set(self) -> &'static str {
        match self {
            V::Four => "nets4",
            V::Six => "nets6",
        }
    }
    fn key_len(self) -> usize {
        match self {
            V::Four => 4,
            V::Six => 16,
        }
    }
}

fn key_of(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn addr_of(key: &[u8]) -> Option<IpAddr> {
    match key.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(key).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(key).ok()?)),
        _ => None,
    }
}

fn table(op: &'static str, network: &str) -> Result<Table, NftError> {
    Ok(Table { family: Family::Inet, name: names::table_name(op, network)? })
}

/// The chains, sets and rules of a masquerade table (the table message itself comes from `ensure_table`).
fn table_contents(t: &Table, batch: &mut Batch) {
    let chain = BaseChain { name: CHAIN, kind: "nat", hook: HOOK_POSTROUTING, priority: PRIO_SRCNAT };
    let sets = [
        SetSpec {
            name: "masq4",
            key_type: datatype::IPADDR,
            key_len: 4,
            flags: 0,
            key_byteorder: BYTEORDER_BIG_ENDIAN,
        },
        SetSpec {
            name: "masq6",
            key_type: datatype::IP6ADDR,
            key_len: 16,
            flags: 0,
            key_byteorder: BYTEORDER_BIG_ENDIAN,
        },
        SetSpec {
            name: "nets4",
            key_type: datatype::IPADDR,
            key_len: 4,
            flags: NFT_SET_INTERVAL,
            key_byteorder: BYTEORDER_BIG_ENDIAN,
        },
        SetSpec {
            name: "nets6",
            key_type: datatype::IP6ADDR,
            key_len: 16,
            flags: NFT_SET_INTERVAL,
            key_byteorder: BYTEORDER_BIG_ENDIAN,
        },
    ];
    objects::push_contents(batch, t, &chain, &sets, &rules());
}

fn rules() -> Vec<Vec<Expr>> {
    let proto = |p: u8| {
        [Expr::Meta { key: meta_key::NFPROTO, dreg: reg::R1 }, Expr::Cmp { sreg: reg::R1, eq: true, data: vec![p] }]
    };
    let load = |offset, len| Expr::Payload { base: base::NETWORK, offset, len, dreg: reg::R1 };
    let lookup = |set| Expr::Lookup { sreg: reg::R1, set, invert: false };
    let ret = Expr::Verdict(verdict::RETURN);
    let rule = |p, rest: Vec<Expr>| proto(p).into_iter().chain(rest).collect::<Vec<_>>();
    vec![
        // ip daddr @nets4 return
        rule(NFPROTO_IPV4, vec![load(16, 4), lookup("nets4"), ret.clone()]),
        // ip daddr 224.0.0.0/4 return
        rule(
            NFPROTO_IPV4,
            vec![
                load(16, 4),
                Expr::Mask { reg: reg::R1, mask: vec![0xf0, 0, 0, 0] },
                Expr::Cmp { sreg: reg::R1, eq: true, data: vec![0xe0, 0, 0, 0] },
                ret.clone(),
            ],
        ),
        // ip saddr @masq4 masquerade
        rule(NFPROTO_IPV4, vec![load(12, 4), lookup("masq4"), Expr::Masquerade]),
        // ip6 daddr @nets6 return
        rule(NFPROTO_IPV6, vec![load(24, 16), lookup("nets6"), ret.clone()]),
        // ip6 daddr ff00::/8 return
        rule(NFPROTO_IPV6, vec![load(24, 1), Expr::Cmp { sreg: reg::R1, eq: true, data: vec![0xff] }, ret]),
        // ip6 saddr @masq6 masquerade
        rule(NFPROTO_IPV6, vec![load(8, 16), lookup("masq6"), Expr::Masquerade]),
    ]
}

/// An interval `[start, end)` of addresses as integers; `end` None reaches the top of the address space.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    start: u128,
    end: Option<u128>,
}

impl Interval {
    fn of(net: &IpNet) -> Interval {
        let (start, last, max) = match net {
            IpNet::V4(n) => {
                (u128::from(u32::from(n.network())), u128::from(u32::from(n.broadcast())), u128::from(u32::MAX))
            }
            IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast()), u128::MAX),
        };
        Interval { start, end: if last == max { None } else { Some(last + 1) } }
    }

    fn contains(&self, o: &Interval) -> bool {
        self.start <= o.start && end_le(o.end, self.end)
    }

    fn overlaps(&self, o: &Interval) -> bool {
        end_gt(self.end, o.start) && end_gt(o.end, self.start)
    }

    /// The set elements for this interval: the start, and the end flagged NFT_SET_ELEM_INTERVAL_END (none when
    /// the interval reaches the top of the address space).
    fn elems(&self, v: V) -> Vec<Elem> {
        let key = |x: u128| x.to_be_bytes()[16 - v.key_len()..].to_vec();
        let mut out = vec![Elem::new(key(self.start), None)];
        if let Some(end) = self.end {
            out.push(Elem { key: key(end), flags: NFT_SET_ELEM_INTERVAL_END, comment: None });
        }
        out
    }
}

/// `a <= b` for exclusive ends where None is "past the top".
fn end_le(a: Option<u128>, b: Option<u128>) -> bool {
    match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => a <= b,
    }
}

/// `end > x` for an exclusive end where None is "past the top".
fn end_gt(end: Option<u128>, x: u128) -> bool {
    end.is_none_or(|e| e > x)
}

fn int_of(key: &[u8]) -> u128 {
    key.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

/// The intervals in an interval set's elements: each start paired with the next end above it.
fn intervals(elems: &[Elem]) -> Vec<Interval> {
    let mut points: Vec<(u128, bool)> =
        elems.iter().map(|e| (int_of(&e.key), e.flags & NFT_SET_ELEM_INTERVAL_END != 0)).collect();
    // Ends sort before starts at the same point: [a, b) and [b, c) are adjacent, not overlapping.
    points.sort_by_key(|&(x, is_end)| (x, !is_end));
    let mut out: Vec<Interval> = Vec::new();
    let mut open: Option<u128> = None;
    for (x, is_end) in points {
        match (is_end, open) {
            (false, None) => open = Some(x),
            (false, Some(start)) => {
                // A start while one is open: the open interval reached the top (no end element).
                out.push(Interval { start, end: None });
                open = Some(x);
            }
            (true, Some(start)) => {
                out.push(Interval { start, end: Some(x) });
                open = None;
            }
            (true, None) => {} // a stray end: nothing to pair
        }
    }
    if let Some(start) = open {
        out.push(Interval { start, end: None });
    }
    out
}

/// What to change in a nets set so it covers every `wanted` subnet: subnets already covered are skipped, and
/// intervals inside a wanted subnet are replaced by it. Prefixes nest or are disjoint, so anything else (a
/// partial overlap) means someone else edited the set.
fn plan_nets(existing: &[Elem], wanted: &[IpNet], v: V) -> Result<(Vec<Elem>, Vec<Elem>), String> {
    let have = intervals(existing);
    let (mut add, mut del) = (Vec::new(), Vec::new());
    let mut deleted: Vec<&Interval> = Vec::new();
    for net in wanted {
        let want = Interval::of(net);
        if have.iter().any(|h| h.contains(&want)) {
            continue;
        }
        for h in have.iter().filter(|h| h.overlaps(&want)) {
            if !want.contains(h) {
                return Err(format!("subnet {net} partially overlaps an existing interval"));
            }
            if !deleted.contains(&h) {
                deleted.push(h);
                del.extend(h.elems(v));
            }
        }
        add.extend(want.elems(v));
    }
    Ok((add, del))
}

/// One container address to add, and what we learnt about it.
#[derive(Debug)]
struct AddrPlan {
    addr: IpAddr,
    /// The key is taken by another owner (a leak): delete it and add ours in the same transaction.
    replace: bool,
    /// Already present with our comment.
    done: bool,
}

/// The subnets to add to one family's nets set, and intervals they replace.
#[derive(Debug, Default)]
struct NetsPlan {
    wanted: Vec<IpNet>,
    add: Vec<Elem>,
    del: Vec<Elem>,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Nets(V),
    AddrDel(usize),
    AddrAdd(usize),
}

/// Masquerade traffic from `entries` (the container's addresses) that leaves their subnets.
///
/// Idempotent; creates the network's table, chain, sets and rules race-free if missing. An address already
/// present for another attachment (leaked state) is taken over, so its comment names the new owner.
pub fn masq_add(network: &str, container_id: &str, ifname: &str, entries: &[MasqEntry]) -> Result<(), NftError> {
    const OP: &str = "masq_add";
    let table = table(OP, network)?;
    let owner = names::owner(OP, container_id, ifname)?;
    for e in entries {
        if e.addr.is_ipv4() != e.subnet.addr().is_ipv4() {
            return Err(NftError::invalid(
                OP,
                format!("address {}", e.addr),
                format!("not in the family of {}", e.subnet),
            ));
        }
    }
    if entries.is_empty() {
        return Ok(());
    }
    let mut addrs: Vec<AddrPlan> = Vec::new();
    let mut nets: [NetsPlan; 2] = Default::default();
    for e in entries {
        if !addrs.iter().any(|a| a.addr == e.addr) {
            addrs.push(AddrPlan { addr: e.addr, replace: false, done: false });
        }
        let plan = &mut nets[V::of(&e.addr) as usize];
        let net = e.subnet.trunc();
        if !plan.wanted.contains(&net) {
            plan.wanted.push(net);
            plan.add.extend(Interval::of(&net).elems(V::of(&e.addr)));
        }
    }

    let mut ctx = Ctx::open(OP)?;
    let mut last: Option<NftError> = None;
    for attempt in 0..MAX_ATTEMPTS {
        backoff(attempt);
        let mut batch = Batch::new();
        let mut roles: Vec<Role> = Vec::new();
        for v in [V::Four, V::Six] {
            let plan = &nets[v as usize];
            let set = table.set(v.nets_set());
            let deletes = push_elems(&mut batch, set, &plan.del, objects::del_elems);
            // Not exclusive: an identical interval already present is fine.
            let adds = push_elems(&mut batch, set, &plan.add, |s, c| objects::add_elems(s, c, false));
            roles.extend(std::iter::repeat_n(Role::Nets(v), deletes + adds));
        }
        for (i, a) in addrs.iter().enumerate().filter(|(_, a)| !a.done) {
            let set = table.set(V::of(&a.addr).masq_set());
            let elem = Elem::new(key_of(&a.addr), Some(&owner));
            if a.replace {
                batch.push(
                    objects::del_elems(set, std::slice::from_ref(&elem)),
                    format!("element {} of {}", a.addr, set.describe()),
                );
                roles.push(Role::AddrDel(i));
            }
            batch.push(objects::add_elems(set, &[elem], true), format!("element {} of {}", a.addr, set.describe()));
            roles.push(Role::AddrAdd(i));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let failures = match ctx.commit(&batch, &table.describe())? {
            Commit::Done => return Ok(()),
            Commit::Rejected { errno, detail } => return Err(NftError::errno(OP, table.describe(), errno, detail)),
            Commit::Failed(fs) => fs,
        };
        let (mut create_table, mut replan_nets) = (false, [false; 2]);
        for f in &failures {
            last = Some(ctx.failure(&batch, f));
            match (roles[f.index], f.errno) {
                (Role::AddrAdd(i), libc::EEXIST) => {
                    let a = &mut addrs[i];
                    let set = table.set(V::of(&a.addr).masq_set());
                    match ctx.get_elem(set, &key_of(&a.addr))? {
                        Some(e) if e.comment.as_deref() == Some(owner.as_str()) => a.done = true,
                        Some(e) => {
                            log::info!(
                                "{OP}: {} in {} belonged to {:?}; taking it over for {owner}",
                                a.addr,
                                set.describe(),
                                e.comment
                            );
                            a.replace = true;
                        }
                        None => {} // removed meanwhile: add it again
                    }
                }
                (Role::AddrAdd(_), libc::ENOENT) => create_table = true,
                (Role::AddrDel(i), libc::ENOENT) => addrs[i].replace = false, // its owner removed it meanwhile
                (Role::Nets(v), libc::ENOENT) => {
                    create_table = true;
                    replan_nets[v as usize] = true;
                }
                // EEXIST / ENOTEMPTY / EBUSY: the interval clashes with one present; plan against what is there.
                (Role::Nets(v), _) => replan_nets[v as usize] = true,
                _ => return Err(ctx.failure(&batch, f)),
            }
        }
        if create_table {
            ctx.ensure_table(&table, |b| table_contents(&table, b))?;
        }
        for v in [V::Four, V::Six] {
            let plan = &mut nets[v as usize];
            if !replan_nets[v as usize] || plan.wanted.is_empty() {
                continue;
            }
            let existing = ctx.read_set(table.set(v.nets_set()))?.unwrap_or_default();
            let (add, del) = plan_nets(&existing, &plan.wanted, v)
                .map_err(|why| NftError::invalid(OP, table.set(v.nets_set()).describe(), why))?;
            plan.add = add;
            plan.del = del;
        }
    }
    Err(last.unwrap_or_else(|| NftError::gave_up(OP, table.describe())))
}

/// Remove this attachment's masquerade state, found by (network, container ID, ifname), not by address or live
/// interface. Ok when the table or the elements are absent. When its last container goes, the network's table
/// goes too, with the network's isolation element in the shared table (race-free against a concurrent ADD).
pub fn masq_del(network: &str, container_id: &str, ifname: &str) -> Result<(), NftError> {
    const OP: &str = "masq_del";
    let table = table(OP, network)?;
    let owner = names::owner(OP, container_id, ifname)?;
    let companion = crate::isolate::companion(network)?;
    Ctx::open(OP)?.remove_owner(&table, &["masq4", "masq6"], &owner, Some(&companion))?;
    Ok(())
}

/// The addresses masqueraded for this attachment (for CHECK). Empty when the table is absent.
pub fn masq_list(network: &str, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, NftError> {
    const OP: &str = "masq_list";
    let table = table(OP, network)?;
    let owner = names::owner(OP, container_id, ifname)?;
    let mut ctx = Ctx::open(OP)?;
    let mut out = Vec::new();
    for v in [V::Four, V::Six] {
        let elems = ctx.read_set_consistent(table.set(v.masq_set()))?.unwrap_or_default();
        out.extend(
            elems.iter().filter(|e| e.comment.as_deref() == Some(owner.as_str())).filter_map(|e| addr_of(&e.key)),
        );
    }
    out.sort();
    Ok(out)
}

/// Remove the masquerade state of every attachment of `network` not in `valid` ((container ID, ifname) pairs).
pub fn masq_gc(network: &str, valid: &[(String, String)]) -> Result<(), NftError> {
    const OP: &str = "masq_gc";
    let table = table(OP, network)?;
    let companion = crate::isolate::companion(network)?;
    Ctx::open(OP)?.remove_owners_not_in(&table, &["masq4", "masq6"], valid, "masquerade", Some(&companion))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn interval_elements() {
        let e = Interval::of(&net("198.18.1.0/24")).elems(V::Four);
        assert_eq!(e[0], Elem::new(vec![198, 18, 1, 0], None));
        assert_eq!(e[1], Elem { key: vec![198, 18, 2, 0], flags: NFT_SET_ELEM_INTERVAL_END, comment: None });
        // reaching the top of the space: no end element
        assert_eq!(Interval::of(&net("255.255.255.0/24")).elems(V::Four).len(), 1);
        assert_eq!(Interval::of(&net("0.0.0.0/0")).elems(V::Four).len(), 1);
        let e6 = Interval::of(&net("fd7e:7e7e::/64")).elems(V::Six);
        assert_eq!(e6[1].key, key_of(&"fd7e:7e7e:0:1::".parse().unwrap()));
    }

    #[test]
    fn intervals_are_recovered_from_elements() {
        let mut elems = Interval::of(&net("198.18.1.0/24")).elems(V::Four);
        elems.extend(Interval::of(&net("198.18.2.0/24")).elems(V::Four)); // adjacent
        elems.extend(Interval::of(&net("255.0.0.0/8")).elems(V::Four)); // open-ended
        elems.reverse(); // the kernel dumps in its own order
        let iv = intervals(&elems);
        assert_eq!(
            iv,
            vec![
                Interval::of(&net("198.18.1.0/24")),
                Interval::of(&net("198.18.2.0/24")),
                Interval::of(&net("255.0.0.0/8"))
            ]
        );
    }

    #[test]
    fn nets_plan_skips_covered_and_replaces_contained() {
        let existing = Interval::of(&net("198.18.1.0/24")).elems(V::Four);
        // covered: nothing to do
        let (add, del) = plan_nets(&existing, &[net("198.18.1.0/25")], V::Four).unwrap();
        assert!(add.is_empty() && del.is_empty());
        // same: nothing to do
        let (add, del) = plan_nets(&existing, &[net("198.18.1.0/24")], V::Four).unwrap();
        assert!(add.is_empty() && del.is_empty());
        // wider: replaces
        let (add, del) = plan_nets(&existing, &[net("198.18.0.0/16")], V::Four).unwrap();
        assert_eq!(add, Interval::of(&net("198.18.0.0/16")).elems(V::Four));
        assert_eq!(del, existing);
        // disjoint: added
        let (add, del) = plan_nets(&existing, &[net("198.18.2.0/24")], V::Four).unwrap();
        assert_eq!(add.len(), 2);
        assert!(del.is_empty());
        // partial overlap with a non-prefix interval is refused
        let odd = vec![
            Elem::new(vec![198, 18, 1, 128], None),
            Elem { key: vec![198, 18, 2, 128], flags: NFT_SET_ELEM_INTERVAL_END, comment: None },
        ];
        assert!(plan_nets(&odd, &[net("198.18.1.0/24")], V::Four).is_err());
    }

    #[test]
    fn addr_keys_round_trip() {
        for a in ["198.18.1.2", "fd7e:7e7e::2"] {
            let a: IpAddr = a.parse().unwrap();
            assert_eq!(addr_of(&key_of(&a)), Some(a));
        }
        assert_eq!(addr_of(&[1, 2, 3]), None);
    }

    #[test]
    fn six_rules_ending_in_a_verdict_or_masquerade() {
        let r = rules();
        assert_eq!(r.len(), 6);
        for rule in &r {
            assert!(matches!(rule.last(), Some(Expr::Verdict(verdict::RETURN)) | Some(Expr::Masquerade)));
        }
    }

    #[test]
    fn invalid_input_is_refused_before_any_socket() {
        let e = masq_add("bad/name", "c", "eth0", &[]).unwrap_err();
        assert!(e.is_invalid_input());
        let mixed = MasqEntry { addr: "198.18.1.2".parse().unwrap(), subnet: net("fd7e:7e7e::/64") };
        let e = masq_add("n", "c", "eth0", &[mixed]).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
        assert!(masq_del("n", "c/d", "eth0").unwrap_err().is_invalid_input());
    }
}
