//! IP masquerade for a network's containers: one table per network, containers as set elements.
//!
//! ```text
//! table inet tether-<network> {
//!     set masq4 { type ipv4_addr; elements = { 198.18.1.2 comment "<containerID>/<ifname>" } }
//!     set masq6 { type ipv6_addr; ... }
//!     set nets4 { type ipv4_addr; flags interval; elements = { 198.18.1.0/24 } }
//!     set nets6 { type ipv6_addr; flags interval; ... }
//!     set nomasq4 { type ipv4_addr; flags interval; elements = { 198.18.0.0/16 } }
//!     set nomasq6 { type ipv6_addr; flags interval; ... }
//!     map owners4 { type ifname : ipv4_addr; elements = { "3fa9c0d1e2b4/00" comment "..." : 198.18.1.2 } }
//!     map owners6 { type ifname : ipv6_addr; ... }
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip daddr @nets4 return
//!         ip daddr 224.0.0.0/4 return
//!         ip daddr @nomasq4 return
//!         ip saddr @masq4 masquerade
//!         ip6 daddr @nets6 return
//!         ip6 daddr ff00::/8 return
//!         ip6 daddr @nomasq6 return
//!         ip6 saddr @masq6 masquerade
//!     }
//! }
//! ```
//!
//! This is the reference's behaviour (masquerade a container's traffic unless it goes to the network's subnet or
//! to multicast) with eight rules per network however many containers there are. The subnets are shared by the
//! network's containers and stay while the table exists; the DEL or GC that removes the last container drops the
//! table (and the network's isolation element).
//!
//! `nomasq4`/`nomasq6` hold the network's excluded destinations (the plugin's `nonMasqueradeCIDRs`, ip-masq-agent's
//! and kubenet's name): traffic to them keeps the container's source address, as pod-to-pod traffic between the
//! nodes of a cluster must. They are network state, not an attachment's: every ADD makes them exactly its list
//! (merged into disjoint intervals), in the same transaction as its addresses, so the network's newest
//! configuration applies to all its containers; a DEL leaves them to the other containers, and they go with the
//! table.
//!
//! `owners4`/`owners6` record, for each address in `masq4`/`masq6`, its owner under a key derived from the owner
//! (see [`crate::owners`]): CHECK and DEL find an attachment's addresses by key lookups, never by listing.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::by_owner::Lookup;
use crate::interval::{intervals, merged, Interval};
use crate::names;
use crate::netlink::{Batch, Commit};
use crate::objects::{
    self, base, datatype, meta_key, reg, verdict, BaseChain, Elem, Expr, Family, MapData, SetSpec, Table,
    BYTEORDER_BIG_ENDIAN, NFT_SET_INTERVAL,
};
use crate::owners::{self, OwnerMap};
use crate::state::{backoff, push_creation, push_elems, table_existed, Ctx, MAX_ATTEMPTS};
use crate::{NftError, Session};

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
    fn owner_map(self) -> &'static str {
        match self {
            V::Four => "owners4",
            V::Six => "owners6",
        }
    }
    fn excluded_set(self) -> &'static str {
        match self {
            V::Four => "nomasq4",
            V::Six => "nomasq6",
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

/// An address set of family `v` (`interval` for prefixes).
fn set_spec(name: &'static str, v: V, interval: bool) -> SetSpec {
    let (key_type, key_len) = match v {
        V::Four => (datatype::IPADDR, 4),
        V::Six => (datatype::IP6ADDR, 16),
    };
    let flags = if interval { NFT_SET_INTERVAL } else { 0 };
    SetSpec { name, key_type, key_len, flags, key_byteorder: BYTEORDER_BIG_ENDIAN, data: None }
}

/// The sets holding the containers' addresses, and the owner maps that record them.
const MASQ_SETS: [&str; 2] = ["masq4", "masq6"];
const OWNER_MAPS: [OwnerMap; 2] = [
    OwnerMap { name: "owners4", targets: |data| vec![("masq4", data.to_vec())] },
    OwnerMap { name: "owners6", targets: |data| vec![("masq6", data.to_vec())] },
];

/// An owner map of family `v`: values are addresses of that family.
fn owner_map_spec(v: V) -> SetSpec {
    let (data_type, len) = match v {
        V::Four => (datatype::IPADDR, 4),
        V::Six => (datatype::IP6ADDR, 16),
    };
    owners::map_spec(v.owner_map(), MapData { data_type, len, byteorder: BYTEORDER_BIG_ENDIAN })
}

const CHAIN_SPEC: BaseChain<'static> =
    BaseChain { name: CHAIN, kind: "nat", hook: HOOK_POSTROUTING, priority: PRIO_SRCNAT };

/// The chains, sets and rules of a masquerade table (the table message itself comes from `ensure_table`).
fn table_contents(t: &Table, batch: &mut Batch) {
    let sets = [
        set_spec("masq4", V::Four, false),
        set_spec("masq6", V::Six, false),
        set_spec("nets4", V::Four, true),
        set_spec("nets6", V::Six, true),
        set_spec("nomasq4", V::Four, true),
        set_spec("nomasq6", V::Six, true),
        owner_map_spec(V::Four),
        owner_map_spec(V::Six),
    ];
    objects::push_contents(batch, t, &CHAIN_SPEC, &sets, &rules());
}

fn proto(v: V) -> [Expr; 2] {
    let p = match v {
        V::Four => NFPROTO_IPV4,
        V::Six => NFPROTO_IPV6,
    };
    [Expr::Meta { key: meta_key::NFPROTO, dreg: reg::R1 }, Expr::Cmp { sreg: reg::R1, eq: true, data: vec![p] }]
}

/// `ip daddr @<set> return` / `ip6 daddr @<set> return`.
fn daddr_in_returns(v: V, set: &'static str) -> Vec<Expr> {
    let (offset, len) = match v {
        V::Four => (16, 4),
        V::Six => (24, 16),
    };
    let mut rule = proto(v).to_vec();
    rule.extend([
        Expr::Payload { base: base::NETWORK, offset, len, dreg: reg::R1 },
        Expr::Lookup { sreg: reg::R1, set, invert: false },
        Expr::Verdict(verdict::RETURN),
    ]);
    rule
}

fn rules() -> Vec<Vec<Expr>> {
    let load = |offset, len| Expr::Payload { base: base::NETWORK, offset, len, dreg: reg::R1 };
    let lookup = |set| Expr::Lookup { sreg: reg::R1, set, invert: false };
    let ret = Expr::Verdict(verdict::RETURN);
    let rule = |v, rest: Vec<Expr>| proto(v).into_iter().chain(rest).collect::<Vec<_>>();
    vec![
        daddr_in_returns(V::Four, "nets4"),
        // ip daddr 224.0.0.0/4 return
        rule(
            V::Four,
            vec![
                load(16, 4),
                Expr::Mask { reg: reg::R1, mask: vec![0xf0, 0, 0, 0] },
                Expr::Cmp { sreg: reg::R1, eq: true, data: vec![0xe0, 0, 0, 0] },
                ret.clone(),
            ],
        ),
        daddr_in_returns(V::Four, "nomasq4"),
        // ip saddr @masq4 masquerade
        rule(V::Four, vec![load(12, 4), lookup("masq4"), Expr::Masquerade]),
        daddr_in_returns(V::Six, "nets6"),
        // ip6 daddr ff00::/8 return
        rule(V::Six, vec![load(24, 1), Expr::Cmp { sreg: reg::R1, eq: true, data: vec![0xff] }, ret]),
        daddr_in_returns(V::Six, "nomasq6"),
        // ip6 saddr @masq6 masquerade
        rule(V::Six, vec![load(8, 16), lookup("masq6"), Expr::Masquerade]),
    ]
}

/// A table made before the exclusions existed lacks `nomasq4`/`nomasq6` and their rules (a node upgraded while
/// the network had containers): add them. Race-free: the sets are created exclusively in the transaction that adds
/// the rules, so when another process (or a table of the current layout) has them, the whole transaction fails
/// with EEXIST and nothing is duplicated. The rules go first in the chain: like every rule before the masquerade
/// rules they only return, so their place among those does not matter.
fn ensure_excluded_sets(ctx: &mut Ctx, t: &Table) -> Result<(), NftError> {
    let mut batch = Batch::new();
    for (id, v) in [V::Four, V::Six].into_iter().enumerate() {
        let spec = set_spec(v.excluded_set(), v, true);
        batch.push(objects::new_set_exclusive(t, &spec, id as u32 + 1), t.set(spec.name).describe());
        let chain = format!("chain {} {} {CHAIN}", t.family.name(), t.name);
        batch.push(objects::insert_rule(t, CHAIN, &daddr_in_returns(v, v.excluded_set())), format!("rule in {chain}"));
    }
    match ctx.commit(&batch, &t.describe())? {
        Commit::Done => {
            log::info!("{}: added the masquerade exclusion sets to {}", ctx.op, t.describe());
            Ok(())
        }
        Commit::Failed(fs) if fs.iter().any(|f| f.errno == libc::EEXIST) => Ok(()),
        // The table went meanwhile (GC): the caller's next attempt recreates it whole.
        Commit::Failed(fs) if fs.iter().all(|f| f.errno == libc::ENOENT) => Ok(()),
        Commit::Failed(fs) => Err(ctx.failure(&batch, &fs[0])),
        Commit::Rejected { errno, detail } => Err(NftError::errno(ctx.op, t.describe(), errno, detail)),
    }
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
                del.extend(h.elems(v.key_len()));
            }
        }
        add.extend(want.elems(v.key_len()));
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

impl NetsPlan {
    /// Plan for an empty set: every wanted subnet, nothing to replace.
    fn replan_empty(&mut self, v: V) {
        self.add = self.wanted.iter().flat_map(|net| Interval::of(net).elems(v.key_len())).collect();
        self.del.clear();
    }
}

/// One family's excluded destinations: the intervals the set must hold exactly, and the change that gets it there
/// from what it held when last read.
#[derive(Debug, Default)]
struct ExcludedPlan {
    wanted: Vec<Interval>,
    add: Vec<Elem>,
    del: Vec<Elem>,
    /// The set must be read (again) before the next attempt.
    stale: bool,
}

impl ExcludedPlan {
    /// Plan against `existing` (None: the set does not exist yet, so everything is to add).
    fn replan(&mut self, existing: Option<&[Elem]>, v: V) {
        let have = existing.map(intervals).unwrap_or_default();
        self.del = have.iter().filter(|h| !self.wanted.contains(h)).flat_map(|h| h.elems(v.key_len())).collect();
        self.add = self.wanted.iter().filter(|w| !have.contains(w)).flat_map(|w| w.elems(v.key_len())).collect();
        self.stale = false;
    }

    fn changes(&self) -> bool {
        !self.add.is_empty() || !self.del.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
enum Role {
    /// The table and its chain, sets and rules, when the batch creates them.
    Table,
    Nets(V),
    Excluded(V),
    AddrDel(usize),
    AddrAdd(usize),
    OwnerAdd(V),
}

impl Session {
    /// Masquerade traffic from `entries` (the container's addresses) that leaves their subnets, except traffic to
    /// `excluded` (the network's non-masquerade destinations; host bits are ignored).
    ///
    /// Idempotent; creates the network's table, chain, sets and rules race-free if missing, in the same transaction
    /// as the addresses (a network's first ADD on a node is one transaction, as every other). An address already
    /// present for another attachment (leaked state) is taken over, so its comment names the new owner. The network's
    /// excluded destinations become exactly `excluded`, in the same transaction as the addresses: the last ADD's list
    /// is the network's list (its containers share one table), and a container's traffic is never masqueraded to a
    /// destination its ADD excluded.
    pub fn masq_add(
        &mut self,
        network: &str,
        container_id: &str,
        ifname: &str,
        entries: &[MasqEntry],
        excluded: &[IpNet],
    ) -> Result<(), NftError> {
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
            }
        }
        for v in [V::Four, V::Six] {
            nets[v as usize].replan_empty(v);
        }
        let mut exclusions: [ExcludedPlan; 2] = Default::default();
        for v in [V::Four, V::Six] {
            let of_family: Vec<IpNet> = excluded.iter().filter(|n| V::of(&n.addr()) == v).copied().collect();
            exclusions[v as usize] = ExcludedPlan { wanted: merged(&of_family), stale: true, ..Default::default() };
        }

        let mut ctx = self.ctx(OP);
        // The owner-map entries of the addresses, per family: assumed fresh (slots 0, 1, ... of the owner's digest)
        // until the kernel says a slot is taken; none in a table of a release before owner maps.
        let digest = (ctx.digest)(&owner);
        let owned: [Vec<Vec<u8>>; 2] =
            [V::Four, V::Six].map(|v| addrs.iter().filter(|a| V::of(&a.addr) == v).map(|a| key_of(&a.addr)).collect());
        let mut owner_adds: [Vec<Elem>; 2] =
            [V::Four, V::Six].map(|v| owners::fresh(&owner, digest, &owned[v as usize]));
        let mut legacy = false;
        // The table is known to be absent: the next batch creates it, with everything in it.
        let mut create = false;
        // Owner entries appended after a run of slots another owner (with the same digest) holds: their slots are
        // right only while that run is as read, so the transaction is bound to the generation read before it.
        let (mut owners_stale, mut appended) = ([false; 2], false);
        let mut last: Option<NftError> = None;
        let mut read_at = 0;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt);
            if exclusions.iter().any(|p| p.stale) || owners_stale.contains(&true) {
                // Both families from one snapshot, so the generation check below covers both.
                read_at = ctx.generation()?;
                if exclusions.iter().any(|p| p.stale) {
                    let existing = [
                        ctx.read_set(table.set(V::Four.excluded_set()))?,
                        ctx.read_set(table.set(V::Six.excluded_set()))?,
                    ];
                    // No exclusion set: no table (the network's first ADD on this node), a table made since the
                    // read (by a concurrent ADD: read again), or a table of a release before the exclusions, which
                    // gains them before anything is added to them.
                    create = existing.iter().any(Option::is_none) && !ctx.has_table(&table)?;
                    if existing.iter().any(Option::is_none) && !create {
                        let mut lacking = false;
                        for v in [V::Four, V::Six] {
                            lacking |= !ctx.has_set(table.set(v.excluded_set()))?;
                        }
                        if !lacking {
                            continue;
                        }
                        if exclusions.iter().any(|p| !p.wanted.is_empty()) {
                            ensure_excluded_sets(&mut ctx, &table)?;
                            continue;
                        }
                    }
                    for v in [V::Four, V::Six] {
                        exclusions[v as usize].replan(existing[v as usize].as_deref(), v);
                    }
                }
                if create {
                    // Everything goes into the table this batch makes: nothing there to replace, skip or append to.
                    legacy = false;
                    for v in [V::Four, V::Six] {
                        nets[v as usize].replan_empty(v);
                        owner_adds[v as usize] = owners::fresh(&owner, digest, &owned[v as usize]);
                        owners_stale[v as usize] = false;
                    }
                    addrs.iter_mut().for_each(|a| (a.replace, a.done) = (false, false));
                    appended = false;
                }
                for v in [V::Four, V::Six] {
                    if std::mem::take(&mut owners_stale[v as usize]) {
                        let run = ctx.owner_run(table.set(v.owner_map()), digest)?;
                        owner_adds[v as usize] = owners::append(&run, &owner, digest, &owned[v as usize]);
                        appended |= run.iter().any(|e| e.comment.as_deref() != Some(owner.as_str()));
                    }
                }
            }
            // Changing the exclusions commits only if nothing changed since they were read: two ADDs with different
            // lists must not leave one's IPv4 part beside the other's IPv6 part. When they already hold our list
            // (the steady state), nothing binds, so parallel ADDs of a network do not restart each other.
            //
            // A batch that creates the table is bound to the generation it was seen absent at: a concurrent
            // creator that commits first makes the kernel reject it whole (ERESTART), without an abort.
            let mut batch = if create || exclusions.iter().any(ExcludedPlan::changes) || appended {
                Batch::new().if_generation(read_at)
            } else {
                Batch::new()
            };
            let mut roles: Vec<Role> = Vec::new();
            if create {
                let n = push_creation(&mut batch, &table, |b| table_contents(&table, b));
                roles.extend(std::iter::repeat_n(Role::Table, n));
            }
            for v in [V::Four, V::Six] {
                let plan = &exclusions[v as usize];
                let set = table.set(v.excluded_set());
                let deletes = push_elems(&mut batch, set, &plan.del, objects::del_elems);
                let adds = push_elems(&mut batch, set, &plan.add, |s, c| objects::add_elems(s, c, false));
                roles.extend(std::iter::repeat_n(Role::Excluded(v), deletes + adds));
            }
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
            for v in [V::Four, V::Six].into_iter().filter(|_| !legacy) {
                // Exclusive: a slot someone else took (or we did, on an earlier ADD) shows up as EEXIST.
                let set = table.set(v.owner_map());
                let adds = push_elems(&mut batch, set, &owner_adds[v as usize], |s, c| objects::add_elems(s, c, true));
                roles.extend(std::iter::repeat_n(Role::OwnerAdd(v), adds));
            }
            if batch.is_empty() {
                return Ok(());
            }
            let failures = match ctx.commit(&batch, &table.describe())? {
                Commit::Done => return Ok(()),
                Commit::Rejected { errno: libc::ERESTART, .. } => {
                    // The ruleset changed since the exclusions (or a run of owner entries) were read: read again.
                    exclusions.iter_mut().for_each(|p| p.stale = true);
                    owners_stale = [appended; 2];
                    continue;
                }
                Commit::Rejected { errno, detail } => return Err(NftError::errno(OP, table.describe(), errno, detail)),
                Commit::Failed(fs) if create && table_existed(&fs) => {
                    // The table exists after all: made by a concurrent ADD, which the generation binding should have
                    // turned into ERESTART; the exclusive table message is the guard of last resort. Fill it as it is.
                    last = Some(ctx.failure(&batch, &fs[0]));
                    exclusions.iter_mut().for_each(|p| p.stale = true);
                    continue;
                }
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
                    (Role::OwnerAdd(v), libc::EEXIST) => owners_stale[v as usize] = true,
                    // No table, or one without owner maps (made by an earlier release): see below.
                    (Role::OwnerAdd(_), libc::ENOENT) => create_table = true,
                    (Role::Nets(v), libc::ENOENT) => {
                        create_table = true;
                        replan_nets[v as usize] = true;
                    }
                    // EEXIST / ENOTEMPTY / EBUSY: the interval clashes with one present; plan against what is there.
                    (Role::Nets(v), _) => replan_nets[v as usize] = true,
                    (Role::Excluded(v), errno) => {
                        create_table |= errno == libc::ENOENT;
                        // Another ADD changed the set meanwhile (or it is new): read it again.
                        exclusions[v as usize].stale = true;
                    }
                    _ => return Err(ctx.failure(&batch, f)),
                }
            }
            if create_table {
                // No table (a concurrent last DEL dropped it), or one without some of our sets: the next read tells
                // which, and recreates or completes it.
                exclusions.iter_mut().for_each(|p| p.stale = true);
                // A table of a release before owner maps: its DEL and CHECK list the sets, so add no entries. Only a
                // table seen without the map is one: a table dropped again meanwhile (a concurrent last DEL) is not.
                legacy = !ctx.has_set(table.set(V::Four.owner_map()))? && ctx.has_set(table.set(V::Four.masq_set()))?;
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
    pub fn masq_del(&mut self, network: &str, container_id: &str, ifname: &str) -> Result<(), NftError> {
        const OP: &str = "masq_del";
        let table = table(OP, network)?;
        let owner = names::owner(OP, container_id, ifname)?;
        let companion = crate::isolate::companion(network)?;
        self.ctx(OP).remove_attachment(&table, &OWNER_MAPS, &MASQ_SETS, &owner, Some(&companion))?;
        Ok(())
    }

    /// The addresses masqueraded for this attachment (for CHECK). Empty when the table is absent.
    pub fn masq_list(&mut self, network: &str, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, NftError> {
        const OP: &str = "masq_list";
        let table = table(OP, network)?;
        let owner = names::owner(OP, container_id, ifname)?;
        let mut ctx = self.ctx(OP);
        let mut out: Vec<IpAddr> = match ctx.holdings(&table, &OWNER_MAPS, &MASQ_SETS, &owner)?.0 {
            Lookup::Found(h) => h.elems.iter().filter_map(|(_, e)| addr_of(&e.key)).collect(),
            Lookup::NoTable => Vec::new(),
            // A table of a release before owner maps: list the sets.
            Lookup::Legacy => {
                let mut out = Vec::new();
                for v in [V::Four, V::Six] {
                    let elems = ctx.read_set_consistent(table.set(v.masq_set()))?.unwrap_or_default();
                    out.extend(
                        elems
                            .iter()
                            .filter(|e| e.comment.as_deref() == Some(owner.as_str()))
                            .filter_map(|e| addr_of(&e.key)),
                    );
                }
                out
            }
        };
        out.sort();
        Ok(out)
    }

    /// The network's excluded destinations as the fewest prefixes that cover them, IPv4 first, each family in
    /// ascending order (`ipnet::IpNet::aggregate` of the list given to [`masq_add`], sorted). Empty when the table is
    /// absent.
    pub fn masq_excluded(&mut self, network: &str) -> Result<Vec<IpNet>, NftError> {
        const OP: &str = "masq_excluded";
        let table = table(OP, network)?;
        let mut ctx = self.ctx(OP);
        let mut out = Vec::new();
        for v in [V::Four, V::Six] {
            let elems = ctx.read_set_consistent(table.set(v.excluded_set()))?.unwrap_or_default();
            out.extend(intervals(&elems).iter().flat_map(|i| i.prefixes(v == V::Four)));
        }
        Ok(out)
    }

    /// Remove the masquerade state of every attachment of `network` not in `valid` ((container ID, ifname) pairs).
    pub fn masq_gc(&mut self, network: &str, valid: &[(String, String)]) -> Result<(), NftError> {
        const OP: &str = "masq_gc";
        let table = table(OP, network)?;
        let companion = crate::isolate::companion(network)?;
        self.ctx(OP).remove_owners_not_in(&table, &MASQ_SETS, &OWNER_MAPS, valid, "masquerade", Some(&companion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn nets_plan_skips_covered_and_replaces_contained() {
        let existing = Interval::of(&net("198.18.1.0/24")).elems(4);
        // covered: nothing to do
        let (add, del) = plan_nets(&existing, &[net("198.18.1.0/25")], V::Four).unwrap();
        assert!(add.is_empty() && del.is_empty());
        // same: nothing to do
        let (add, del) = plan_nets(&existing, &[net("198.18.1.0/24")], V::Four).unwrap();
        assert!(add.is_empty() && del.is_empty());
        // wider: replaces
        let (add, del) = plan_nets(&existing, &[net("198.18.0.0/16")], V::Four).unwrap();
        assert_eq!(add, Interval::of(&net("198.18.0.0/16")).elems(4));
        assert_eq!(del, existing);
        // disjoint: added
        let (add, del) = plan_nets(&existing, &[net("198.18.2.0/24")], V::Four).unwrap();
        assert_eq!(add.len(), 2);
        assert!(del.is_empty());
        // partial overlap with a non-prefix interval is refused
        let odd = vec![Elem::new(vec![198, 18, 1, 128], None), Elem::interval_end(vec![198, 18, 2, 128])];
        assert!(plan_nets(&odd, &[net("198.18.1.0/24")], V::Four).is_err());
    }

    #[test]
    fn excluded_plan_changes_only_what_differs() {
        let iv = |s: &str| Interval::of(&net(s));
        let existing: Vec<Elem> = [iv("198.18.0.0/16"), iv("198.19.0.0/24")].iter().flat_map(|i| i.elems(4)).collect();
        let mut plan =
            ExcludedPlan { wanted: vec![iv("198.18.0.0/16"), iv("198.19.1.0/24")], stale: true, ..Default::default() };
        plan.replan(Some(&existing), V::Four);
        assert!(!plan.stale);
        assert_eq!(plan.del, iv("198.19.0.0/24").elems(4));
        assert_eq!(plan.add, iv("198.19.1.0/24").elems(4));
        // the same list again: nothing to do
        plan.wanted = vec![iv("198.18.0.0/16"), iv("198.19.0.0/24")];
        plan.replan(Some(&existing), V::Four);
        assert!(plan.add.is_empty() && plan.del.is_empty());
        // an empty list empties the set; a missing set gets everything
        plan.wanted.clear();
        plan.replan(Some(&existing), V::Four);
        assert_eq!(plan.del, existing);
        plan.wanted = vec![iv("198.18.0.0/16")];
        plan.replan(None, V::Four);
        assert_eq!((plan.add.len(), plan.del.len()), (2, 0));
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
    fn eight_rules_ending_in_a_verdict_or_masquerade() {
        let r = rules();
        assert_eq!(r.len(), 8);
        for rule in &r {
            assert!(matches!(rule.last(), Some(Expr::Verdict(verdict::RETURN)) | Some(Expr::Masquerade)));
        }
    }

    #[test]
    fn invalid_input_is_refused_before_any_message() {
        let mut s = Session::open().unwrap();
        let e = s.masq_add("bad/name", "c", "eth0", &[], &[]).unwrap_err();
        assert!(e.is_invalid_input());
        let mixed = MasqEntry { addr: "198.18.1.2".parse().unwrap(), subnet: net("fd7e:7e7e::/64") };
        let e = s.masq_add("n", "c", "eth0", &[mixed], &[]).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
        assert!(s.masq_del("n", "c/d", "eth0").unwrap_err().is_invalid_input());
    }
}
