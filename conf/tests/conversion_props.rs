//! Property: a result written in one version and read back holds exactly what that version can
//! carry, so converting between any two versions (up, down, down and up again) keeps everything
//! both can carry. What each layout carries is modelled here independently of `conf::result`:
//! 1.1.0 everything; 0.3.0 to 1.0.0 all but the 1.1 interface and route fields; 0.1.0/0.2.0 the
//! first address of each family (IPv4 first), its routes (by the family of their destination,
//! IPv4 first), no interfaces and no `interface` index, and the DNS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conf::{Dns, Interface, IpConfig, NetResult, Route, Version};
use ipnet::IpNet;
use proptest::prelude::*;
use std::net::IpAddr;

const VERSIONS: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 2]>().prop_map(|[a, b]| IpAddr::from([198, 18 + (a & 1), a, b])),
        any::<[u16; 2]>().prop_map(|[a, b]| IpAddr::from([0xfd7e, 0x7e7e, a, 0, 0, 0, 0, b])),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    (ip(), any::<u8>()).prop_map(|(ip, p)| IpNet::new(ip, p % if ip.is_ipv4() { 33 } else { 129 }).unwrap())
}

fn word() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}"
}

fn interface() -> impl Strategy<Value = Interface> {
    (
        word(),
        proptest::option::of("[0-9a-f]{2}(:[0-9a-f]{2}){5}"),
        proptest::option::of(68u32..9000),
        proptest::option::of(word().prop_map(|w| format!("/run/netns/{w}"))),
        proptest::option::of(word()),
        proptest::option::of(word()),
    )
        .prop_map(|(name, mac, mtu, sandbox, socket_path, pci_id)| Interface {
            name,
            mac,
            mtu,
            sandbox,
            socket_path,
            pci_id,
        })
}

fn route() -> impl Strategy<Value = Route> {
    (
        net(),
        proptest::option::of(ip()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(dst, gw, mtu, advmss, priority, table, scope)| Route {
            dst,
            gw,
            mtu,
            advmss,
            priority,
            table,
            scope,
        })
}

fn result() -> impl Strategy<Value = NetResult> {
    (
        proptest::collection::vec(interface(), 0..4),
        proptest::collection::vec((net(), proptest::option::of(ip()), proptest::option::of(0usize..4)), 0..5),
        proptest::collection::vec(route(), 0..5),
        (
            proptest::collection::vec(ip().prop_map(|i| i.to_string()), 0..3),
            proptest::option::of(word()),
            proptest::collection::vec(word(), 0..3),
            proptest::collection::vec(word(), 0..2),
        ),
    )
        .prop_map(|(interfaces, ips, routes, (nameservers, domain, search, options))| NetResult {
            interfaces,
            ips: ips
                .into_iter()
                .map(|(address, gateway, interface)| IpConfig { address, gateway, interface })
                .collect(),
            routes,
            dns: Dns { nameservers, domain, search, options },
        })
}

/// What a result written in `version` holds (the model; see the module documentation).
fn carried(r: &NetResult, version: &str) -> NetResult {
    let plain = |route: &Route| Route::new(route.dst, route.gw);
    match version {
        "1.1.0" => r.clone(),
        "0.3.0" | "0.3.1" | "0.4.0" | "1.0.0" => NetResult {
            interfaces: r
                .interfaces
                .iter()
                .map(|i| Interface {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    sandbox: i.sandbox.clone(),
                    ..Interface::default()
                })
                .collect(),
            ips: r.ips.clone(),
            routes: r.routes.iter().map(plain).collect(),
            dns: r.dns.clone(),
        },
        _ => {
            let mut out = NetResult { dns: r.dns.clone(), ..NetResult::default() };
            for v4 in [true, false] {
                if let Some(first) = r.ips.iter().find(|ip| ip.address.addr().is_ipv4() == v4) {
                    out.ips.push(IpConfig { interface: None, ..first.clone() });
                    out.routes.extend(r.routes.iter().filter(|rt| rt.dst.addr().is_ipv4() == v4).map(plain));
                }
            }
            out
        }
    }
}

/// Write `r` in `version` and read it back; `None` when the version cannot carry it at all.
fn through(r: &NetResult, version: &str) -> Option<NetResult> {
    let v = Version::parse(version).unwrap();
    let doc = r.to_json(v).ok()?;
    assert_eq!(doc["cniVersion"], version);
    Some(NetResult::from_json(&doc, v).unwrap_or_else(|e| panic!("{version} cannot read its own {doc}: {e}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn each_version_keeps_exactly_what_it_carries(r in result()) {
        for v in VERSIONS {
            let want = carried(&r, v);
            match through(&r, v) {
                Some(got) => prop_assert_eq!(got, want, "through {}", v),
                None => prop_assert!(want.ips.is_empty(), "{} refused a result it can carry", v),
            }
        }
    }

    #[test]
    fn converting_between_two_versions_keeps_what_both_carry(r in result(), a in 0usize..7, b in 0usize..7) {
        let (a, b) = (VERSIONS[a], VERSIONS[b]);
        let Some(in_a) = through(&r, a) else { return Ok(()) };
        let back = through(&in_a, b);
        let want = carried(&carried(&r, a), b);
        match &back {
            Some(got) => prop_assert_eq!(got, &want, "{} then {}", a, b),
            None => prop_assert!(want.ips.is_empty()),
        }
        // up and down again: nothing that both carry is lost on the way
        if let Some(round) = back.as_ref().and_then(|x| through(x, a)) {
            prop_assert_eq!(round, carried(&carried(&carried(&r, a), b), a));
        }
    }
}
