//! Properties of allocation, through the plugin and its store on disk: for random range sets and
//! random sequences of ADD and DEL, no address is handed out twice, none outside its range set's
//! ranges, none that is a subnet's network or IPv4 broadcast address or a gateway of the set; a
//! repeated ADD answers what the attachment holds; and the store read back by host-local's rules
//! (a file per address holding `<containerID>\r\n<ifname>`, `last_reserved_ip.<set>`) is exactly
//! what is held.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ipnet::IpNet;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One range of a set: subnet index (distinct subnets never overlap), prefix, and offsets of
/// rangeStart/rangeEnd/gateway from the network address, each optional.
#[derive(Debug, Clone)]
struct RangeSpec {
    v6: bool,
    index: u8,
    prefix_room: u8,
    start: Option<u8>,
    end: Option<u8>,
    gateway: Option<u8>,
}

impl RangeSpec {
    fn subnet(&self) -> IpNet {
        let host_bits = 2 + self.prefix_room % 3; // /30../28 or /126../124: small, so sets fill up
        let base: IpAddr = if self.v6 {
            IpAddr::from([0xfd7e, 0x7e7e, 0, u16::from(self.index), 0, 0, 0, 0])
        } else {
            IpAddr::from([198, 18, self.index, 0])
        };
        let bits = if self.v6 { 128 } else { 32 };
        IpNet::new(base, bits - host_bits).unwrap()
    }

    fn at(&self, offset: u8) -> IpAddr {
        let size = 1u128 << (2 + self.prefix_room % 3);
        let n = u128::from(offset) % size;
        match self.subnet().network() {
            IpAddr::V4(a) => IpAddr::V4(std::net::Ipv4Addr::from((u128::from(u32::from(a)) + n) as u32)),
            IpAddr::V6(a) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) + n)),
        }
    }

    fn json(&self) -> Value {
        let mut r = json!({"subnet": self.subnet().to_string()});
        if let Some(s) = self.start {
            r["rangeStart"] = json!(self.at(s).to_string());
        }
        if let Some(e) = self.end {
            r["rangeEnd"] = json!(self.at(e).to_string());
        }
        if let Some(g) = self.gateway {
            r["gateway"] = json!(self.at(g).to_string());
        }
        r
    }
}

fn range_spec(v6: bool, index: u8) -> impl Strategy<Value = RangeSpec> {
    (
        any::<u8>(),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(move |(prefix_room, start, end, gateway)| RangeSpec {
            v6,
            index,
            prefix_room,
            start,
            end,
            gateway,
        })
}

/// One or two range sets (one per family), each of one or two ranges in distinct subnets.
fn range_sets() -> impl Strategy<Value = Vec<Vec<RangeSpec>>> {
    let set = |v6: bool| {
        (range_spec(v6, 1), proptest::option::of(range_spec(v6, 2)))
            .prop_map(|(a, b)| std::iter::once(a).chain(b).collect::<Vec<_>>())
    };
    prop_oneof![
        set(false).prop_map(|s| vec![s]),
        set(true).prop_map(|s| vec![s]),
        (set(false), set(true)).prop_map(|(a, b)| vec![a, b]),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Del(u8),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(prop_oneof![3 => (0u8..10).prop_map(Op::Add), 1 => (0u8..10).prop_map(Op::Del)], 1..40)
}

fn addresses(doc: &Value) -> Vec<IpAddr> {
    doc["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap().parse::<IpNet>().unwrap().addr())
        .collect()
}

/// Whether `ip` may be handed out from the set `ranges` (as validated: the config was accepted).
fn allowed(ranges: &[RangeSpec], ip: IpAddr) -> bool {
    let gateways: Vec<IpAddr> = ranges.iter().map(|r| r.gateway.map_or_else(|| r.at(1), |g| r.at(g))).collect();
    if gateways.contains(&ip) {
        return false;
    }
    ranges.iter().any(|r| {
        let subnet = r.subnet();
        let broadcast = subnet.addr().is_ipv4() && ip == subnet.broadcast();
        let start = r.start.map_or(subnet.network(), |s| r.at(s));
        let end = r.end.map_or(subnet.broadcast(), |e| r.at(e));
        subnet.contains(&ip) && ip != subnet.network() && !broadcast && start <= ip && ip <= end
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn allocation_is_unique_in_range_and_on_disk_as_host_local_reads_it(sets in range_sets(), ops in ops()) {
        let d = DataDir::new("props");
        let ranges: Vec<Vec<Value>> = sets.iter().map(|s| s.iter().map(RangeSpec::json).collect()).collect();
        let c = conf("1.1.0", "net1", &d.0, json!({"ranges": ranges}));
        // A configuration the plugin refuses (a gateway outside rangeStart..rangeEnd, ...) is
        // code 7 for every ADD; nothing to check beyond that.
        let probe = add(TETHER_IPAM, "probe", &c);
        if probe.code() == Some(7) {
            return Ok(());
        }
        prop_assert!(probe.ok || probe.code() == Some(104), "{:?}", probe);
        if probe.ok {
            prop_assert!(del(TETHER_IPAM, "probe", &c).ok);
        }
        let mut held: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Add(n) => {
                    let id = format!("c{n}");
                    let r = add(TETHER_IPAM, &id, &c);
                    if !r.ok {
                        prop_assert_eq!(r.code(), Some(104), "only exhaustion may fail an ADD: {:?}", r);
                        prop_assert!(!held.contains_key(&id), "a repeated ADD failed: {:?}", r);
                        continue;
                    }
                    let got = addresses(r.doc.as_ref().unwrap());
                    prop_assert_eq!(got.len(), sets.len(), "one address per range set");
                    for (ip, set) in got.iter().zip(&sets) {
                        prop_assert!(allowed(set, *ip), "{} is not allowed by {:?}", ip, set);
                        let owner = held.iter().find(|(other, ips)| **other != id && ips.contains(ip));
                        prop_assert!(owner.is_none(), "{} handed out twice ({:?})", ip, owner);
                    }
                    if let Some(before) = held.get(&id) {
                        prop_assert_eq!(before, &got, "a repeated ADD answers what it holds");
                    }
                    held.insert(id, got);
                }
                Op::Del(n) => {
                    let id = format!("c{n}");
                    prop_assert!(del(TETHER_IPAM, &id, &c).ok);
                    held.remove(&id);
                }
            }
            // The store, as host-local reads it.
            let want: BTreeSet<String> = held.values().flatten().map(ToString::to_string).collect();
            let files: BTreeSet<String> = d.reservations("net1").into_iter().collect();
            prop_assert_eq!(&files, &want);
            for (id, ips) in &held {
                for ip in ips {
                    prop_assert_eq!(d.read("net1", &ip.to_string()), format!("{id}\r\neth0"));
                }
            }
            for (i, set) in sets.iter().enumerate() {
                if let Ok(last) = std::fs::read_to_string(d.store("net1").join(format!("last_reserved_ip.{i}"))) {
                    let last: IpAddr = last.trim().parse().unwrap();
                    prop_assert!(allowed(set, last), "last_reserved_ip.{} = {} is outside its set", i, last);
                }
            }
        }
    }
}
