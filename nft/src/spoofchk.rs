//! Bridge MAC spoof check: frames entering the bridge from a guarded port must carry the container's MAC.
//!
//! ```text
//! table bridge tether-<network> {
//!     set ports   { type ifname; elements = { "veth1234" comment "<containerID>/<ifname>" } }
//!     set allowed { type ifname . ether_addr; elements = { "veth1234" . 02:00:00:00:00:01 comment "..." } }
//!     map owners  { type ifname : ifname . ether_addr; elements = { "3fa9c0d1e2b4/00" comment "..." : "veth1234" . ... } }
//!     chain prerouting {
//!         type filter hook prerouting priority -300; policy accept;
//!         iifname != @ports return
//!         iifname . ether saddr != @allowed drop
//!         ether type arp iifname . arp saddr ether != @allowed drop
//!     }
//! }
//! ```
//!
//! The reference (`pkg/link/spoofcheck.go`) adds two chains and a jump rule per container in `bridge nat` and
//! checks the Ethernet source address only. Here the rules are fixed per network and the per-container state is
//! two set elements. The ARP rule also checks the sender hardware address inside ARP, so a container cannot
//! poison its neighbours' ARP caches with another MAC while using its own as the frame source.
//!
//! `owners` records each attachment's `allowed` element (and so its port) under a key derived from the owner (see
//! [`crate::owners`]), for CHECK and DEL to find them by key.

use crate::by_owner::Lookup;
use crate::names;
use crate::netlink::{Batch, Commit};
use crate::objects::{
    self, base, datatype, meta_key, reg, verdict, BaseChain, Elem, Expr, Family, MapData, SetSpec, Table,
    BYTEORDER_HOST_ENDIAN,
};
use crate::owners::{self, OwnerMap};
use crate::state::{backoff, push_creation, table_existed, MAX_ATTEMPTS};
use crate::{NftError, Session};

const CHAIN: &str = "prerouting";
/// NF_BR_PRE_ROUTING, and the priority the reference uses (NF_BR_PRI_NAT_DST_BRIDGED).
const HOOK_PREROUTING: u32 = 0;
const PRIORITY: i32 = -300;
const PORTS: &str = "ports";
const ALLOWED: &str = "allowed";
const OWNERS: &str = "owners";
/// The looked-up sets, and the owner map: an entry's data is the `allowed` key, which starts with the `ports` key.
const SETS: [&str; 2] = [PORTS, ALLOWED];
const OWNER_MAPS: [OwnerMap; 1] = [OwnerMap {
    name: OWNERS,
    targets: |data| vec![(PORTS, data[..IFNAMSIZ.min(data.len())].to_vec()), (ALLOWED, data.to_vec())],
}];
/// IFNAMSIZ: an interface name in a register or key is 16 bytes, NUL-padded.
const IFNAMSIZ: usize = 16;
const ETH_P_ARP: [u8; 2] = [0x08, 0x06];

fn table(op: &'static str, network: &str) -> Result<Table, NftError> {
    Ok(Table { family: Family::Bridge, name: names::table_name(op, network)? })
}

fn table_contents(t: &Table, batch: &mut Batch) {
    let chain = BaseChain { name: CHAIN, kind: "filter", hook: HOOK_PREROUTING, priority: PRIORITY };
    let sets = [
        SetSpec {
            name: PORTS,
            key_type: datatype::IFNAME,
            key_len: IFNAMSIZ as u32,
            flags: 0,
            key_byteorder: BYTEORDER_HOST_ENDIAN,
            data: None,
        },
        SetSpec {
            name: ALLOWED,
            key_type: datatype::concat(&[datatype::IFNAME, datatype::ETHERADDR]),
            // each component of a concatenation takes whole 4-byte registers: 16 + 8
            key_len: (IFNAMSIZ + 8) as u32,
            flags: 0,
            key_byteorder: BYTEORDER_HOST_ENDIAN,
            data: None,
        },
        owners::map_spec(
            OWNERS,
            MapData {
                data_type: datatype::concat(&[datatype::IFNAME, datatype::ETHERADDR]),
                len: (IFNAMSIZ + 8) as u32,
                byteorder: BYTEORDER_HOST_ENDIAN,
            },
        ),
    ];
    objects::push_contents(batch, t, &chain, &sets, &rules());
}

fn rules() -> Vec<Vec<Expr>> {
    let iifname = |dreg| Expr::Meta { key: meta_key::IIFNAME, dreg };
    let not_allowed = Expr::Lookup { sreg: reg::R32_00, set: ALLOWED, invert: true };
    vec![
        // iifname != @ports return
        vec![
            iifname(reg::R1),
            Expr::Lookup { sreg: reg::R1, set: PORTS, invert: true },
            Expr::Verdict(verdict::RETURN),
        ],
        // iifname . ether saddr != @allowed drop
        vec![
            iifname(reg::R32_00),
            Expr::Payload { base: base::LL, offset: 6, len: 6, dreg: reg::R32_04 },
            not_allowed.clone(),
            Expr::Verdict(verdict::DROP),
        ],
        // ether type arp iifname . arp saddr ether != @allowed drop
        vec![
            Expr::Payload { base: base::LL, offset: 12, len: 2, dreg: reg::R1 },
            Expr::Cmp { sreg: reg::R1, eq: true, data: ETH_P_ARP.to_vec() },
            iifname(reg::R32_00),
            Expr::Payload { base: base::NETWORK, offset: 8, len: 6, dreg: reg::R32_04 },
            not_allowed,
            Expr::Verdict(verdict::DROP),
        ],
    ]
}

fn port_key(port: &str) -> Vec<u8> {
    let mut k = port.as_bytes().to_vec();
    k.resize(IFNAMSIZ, 0);
    k
}

fn allowed_key(port: &str, mac: &[u8; 6]) -> Vec<u8> {
    let mut k = port_key(port);
    k.extend_from_slice(mac);
    k.extend_from_slice(&[0, 0]); // the MAC's register is zero-padded to 8 bytes
    k
}

fn port_of(key: &[u8]) -> Option<String> {
    let name = key.get(..IFNAMSIZ)?;
    let end = name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
    String::from_utf8(name[..end].to_vec()).ok()
}

fn mac_of(key: &[u8]) -> Option<[u8; 6]> {
    key.get(IFNAMSIZ..IFNAMSIZ + 6)?.try_into().ok()
}

fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl Session {
    /// Bridge MAC spoof check: frames entering the bridge from `host_port` (the node end of the veth) are dropped
    /// unless their source MAC (and, for ARP, the sender hardware address) is `mac`. Keyed by (network, container
    /// ID, ifname) for removal. Idempotent; state left on `host_port` by another attachment is replaced.
    pub fn spoofchk_add(
        &mut self,
        network: &str,
        container_id: &str,
        ifname: &str,
        host_port: &str,
        mac: [u8; 6],
    ) -> Result<(), NftError> {
        const OP: &str = "spoofchk_add";
        let table = table(OP, network)?;
        let owner = names::owner(OP, container_id, ifname)?;
        names::check_ifname(OP, "host port", host_port)?;
        let port_elem = Elem::new(port_key(host_port), Some(&owner));
        let allowed_elem = Elem::new(allowed_key(host_port, &mac), Some(&owner));
        let (ports, allowed) = (table.set(PORTS), table.set(ALLOWED));
        let what = format!("{host_port} . {} in {}", fmt_mac(&mac), allowed.describe());

        let mut ctx = self.ctx(OP);
        let digest = (ctx.digest)(&owner);
        let owners_map = table.set(OWNERS);
        // Fast path: neither element exists yet (the usual ADD), nor the owner entry (slot 0 of the owner's
        // digest). Exclusive adds, so anything present shows up as EEXIST and is handled below against a
        // consistent read. A missing table (the network's first port, or after GC) is created in the same
        // transaction; a table without owner map (an earlier release's) ends in the slow path.
        let fast = |batch: &mut Batch| {
            batch.push(
                objects::add_elems(ports, std::slice::from_ref(&port_elem), true),
                format!("{host_port} in {}", ports.describe()),
            );
            batch.push(objects::add_elems(allowed, std::slice::from_ref(&allowed_elem), true), what.clone());
            batch.push(
                objects::add_elems(
                    owners_map,
                    &owners::fresh(&owner, digest, std::slice::from_ref(&allowed_elem.key)),
                    true,
                ),
                format!("entry of {owner} in {}", owners_map.describe()),
            );
        };
        // A fast batch was refused with ENOENT: the table went meanwhile (a concurrent last DEL), or it lacks a set.
        let mut missing = false;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt);
            // One GETTABLE: whether this transaction must create the table.
            let absent_since = ctx.absent_since(&table)?;
            if missing && absent_since.is_none() {
                break; // the table is there without the set the batch named: an earlier release's
            }
            let mut batch = match absent_since {
                Some(genid) => Batch::new().if_generation(genid),
                None => Batch::new(),
            };
            if absent_since.is_some() {
                push_creation(&mut batch, &table, |b| table_contents(&table, b));
            }
            fast(&mut batch);
            match ctx.commit(&batch, &table.describe())? {
                Commit::Done => return Ok(()),
                // The ruleset changed since the table was seen absent (any commit in the namespace moves the
                // generation), or a concurrent ADD made the table: look again.
                Commit::Rejected { errno: libc::ERESTART, .. } => {}
                Commit::Failed(fs) if absent_since.is_some() && table_existed(&fs) => {}
                // A concurrent last DEL dropped the table since we looked, or it lacks a set: look again.
                Commit::Failed(fs) if absent_since.is_none() && fs.iter().all(|f| f.errno == libc::ENOENT) => {
                    missing = true;
                }
                Commit::Failed(fs) if fs.iter().all(|f| matches!(f.errno, libc::EEXIST | libc::ENOENT)) => break,
                Commit::Failed(fs) => return Err(ctx.failure(&batch, &fs[0])),
                Commit::Rejected { errno, detail } => return Err(NftError::errno(OP, table.describe(), errno, detail)),
            }
        }

        // Slow path: read both sets and rewrite this port's state in one generation-checked transaction.
        let mut last: Option<NftError> = None;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt);
            let genid = ctx.generation()?;
            let (Some(have_ports), Some(have_allowed)) = (ctx.read_set(ports)?, ctx.read_set(allowed)?) else {
                ctx.ensure_table(&table, |b| table_contents(&table, b))?;
                continue;
            };
            let mut batch = Batch::new().if_generation(genid);
            // The port: ours stays; another owner's is replaced.
            match have_ports.iter().find(|e| e.key == port_elem.key) {
                Some(e) if e.comment == port_elem.comment => {}
                found => {
                    if let Some(e) = found {
                        log::info!("{OP}: port {host_port} belonged to {:?}; taking it over for {owner}", e.comment);
                        batch.push(
                            objects::del_elems(ports, std::slice::from_ref(e)),
                            format!("{host_port} in {}", ports.describe()),
                        );
                    }
                    batch.push(
                        objects::add_elems(ports, std::slice::from_ref(&port_elem), true),
                        format!("{host_port} in {}", ports.describe()),
                    );
                }
            }
            // Allowed MACs on the port: exactly ours.
            let on_port: Vec<&Elem> = have_allowed.iter().filter(|e| e.key.starts_with(&port_elem.key)).collect();
            let mut have_ours = false;
            for e in on_port {
                if *e == allowed_elem {
                    have_ours = true;
                } else {
                    batch.push(objects::del_elems(allowed, std::slice::from_ref(e)), what.clone());
                }
            }
            if !have_ours {
                batch.push(objects::add_elems(allowed, std::slice::from_ref(&allowed_elem), true), what.clone());
            }
            // The owner entry: ours names exactly this element (a stale one, for an earlier MAC, is rewritten in
            // place, so the run keeps no hole). None in a table of a release before owner maps.
            if ctx.has_set(owners_map)? {
                let run = ctx.owner_run(owners_map, digest)?;
                let ours: Vec<&Elem> = run.iter().filter(|e| e.comment.as_deref() == Some(owner.as_str())).collect();
                if !ours.iter().any(|e| e.data.as_ref() == Some(&allowed_elem.key)) {
                    let entry = match ours.first() {
                        Some(stale) => {
                            batch.push(
                                objects::del_elems(owners_map, &[Elem::new(stale.key.clone(), None)]),
                                owners_map.describe(),
                            );
                            Elem::mapping(stale.key.clone(), allowed_elem.key.clone(), &owner)
                        }
                        None => Elem::mapping(owners::slot_key(digest, run.len()), allowed_elem.key.clone(), &owner),
                    };
                    batch.push(objects::add_elems(owners_map, &[entry], true), owners_map.describe());
                }
            }
            if batch.is_empty() {
                return Ok(());
            }
            match ctx.commit(&batch, &table.describe())? {
                Commit::Done => return Ok(()),
                Commit::Rejected { errno: libc::ERESTART, .. } => {}
                Commit::Failed(fs) if fs.iter().all(|f| matches!(f.errno, libc::EEXIST | libc::ENOENT)) => {
                    last = Some(ctx.failure(&batch, &fs[0]));
                }
                Commit::Failed(fs) => return Err(ctx.failure(&batch, &fs[0])),
                Commit::Rejected { errno, detail } => return Err(NftError::errno(OP, table.describe(), errno, detail)),
            }
        }
        Err(last.unwrap_or_else(|| NftError::gave_up(OP, table.describe())))
    }

    /// Remove this attachment's spoof-check state, found by (network, container ID, ifname). Ok when absent. The
    /// table goes with its last guarded port, race-free against a concurrent ADD.
    pub fn spoofchk_del(&mut self, network: &str, container_id: &str, ifname: &str) -> Result<(), NftError> {
        const OP: &str = "spoofchk_del";
        let table = table(OP, network)?;
        let owner = names::owner(OP, container_id, ifname)?;
        self.ctx(OP).remove_attachment(&table, &OWNER_MAPS, &SETS, &owner, None)?;
        Ok(())
    }

    /// The (host port, MAC) pairs guarded for this attachment (for CHECK). Empty when absent.
    pub fn spoofchk_list(
        &mut self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Vec<(String, [u8; 6])>, NftError> {
        const OP: &str = "spoofchk_list";
        let table = table(OP, network)?;
        let owner = names::owner(OP, container_id, ifname)?;
        let mut ctx = self.ctx(OP);
        let elems: Vec<Elem> = match ctx.holdings(&table, &OWNER_MAPS, &SETS, &owner)?.0 {
            Lookup::Found(h) => h.elems.into_iter().filter(|(set, _)| *set == ALLOWED).map(|(_, e)| e).collect(),
            Lookup::NoTable => Vec::new(),
            // A table of a release before owner maps: list the set.
            Lookup::Legacy => ctx
                .read_set_consistent(table.set(ALLOWED))?
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e.comment.as_deref() == Some(owner.as_str()))
                .collect(),
        };
        let mut out: Vec<(String, [u8; 6])> =
            elems.iter().filter_map(|e| Some((port_of(&e.key)?, mac_of(&e.key)?))).collect();
        out.sort();
        Ok(out)
    }

    /// Remove the spoof-check state of every attachment of `network` not in `valid` ((container ID, ifname) pairs).
    pub fn spoofchk_gc(&mut self, network: &str, valid: &[(String, String)]) -> Result<(), NftError> {
        const OP: &str = "spoofchk_gc";
        let table = table(OP, network)?;
        self.ctx(OP).remove_owners_not_in(&table, &SETS, &OWNER_MAPS, valid, "spoof-check", None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let mac = [0x02, 0, 0, 0, 0, 0x01];
        let k = allowed_key("veth1", &mac);
        assert_eq!(k.len(), 24);
        assert_eq!(&k[..6], b"veth1\0");
        assert_eq!(port_of(&k).as_deref(), Some("veth1"));
        assert_eq!(mac_of(&k), Some(mac));
        assert_eq!(&k[22..], &[0, 0]);
        assert!(k.starts_with(&port_key("veth1")));
        assert!(!allowed_key("veth10", &mac).starts_with(&port_key("veth1")), "port prefix includes the NUL padding");
        assert_eq!(port_of(&port_key("abcdefghijklmno")).as_deref(), Some("abcdefghijklmno"));
        assert_eq!(fmt_mac(&mac), "02:00:00:00:00:01");
    }

    #[test]
    fn rules_drop_or_return() {
        let r = rules();
        assert_eq!(r.len(), 3);
        assert!(matches!(r[0].last(), Some(Expr::Verdict(verdict::RETURN))));
        assert!(matches!(r[1].last(), Some(Expr::Verdict(verdict::DROP))));
        assert!(matches!(r[2].last(), Some(Expr::Verdict(verdict::DROP))));
    }

    #[test]
    fn invalid_input() {
        let mut s = Session::open().unwrap();
        assert!(s.spoofchk_add("n", "c", "eth0", "", [0; 6]).unwrap_err().is_invalid_input());
        assert!(s.spoofchk_add("n", "c", "eth0", "0123456789abcdef", [0; 6]).unwrap_err().is_invalid_input());
        assert!(s.spoofchk_del("", "c", "eth0").unwrap_err().is_invalid_input());
    }
}
