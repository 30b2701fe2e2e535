//! Root tests of a network's first ADD on a node (no table yet): one transaction that creates the table with the
//! attachment's state in it, never a transaction the code knows will fail, and race-free against a concurrent
//! first ADD or last DEL. Each test in its own throwaway network namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Barrier;

use common::*;
use ipnet::IpNet;
use nft::{isolation_group, MasqEntry, Session};

fn entry(addr: &str, subnet: &str) -> MasqEntry {
    MasqEntry { addr: addr.parse().unwrap(), subnet: subnet.parse().unwrap() }
}

fn v4(host: u8) -> MasqEntry {
    entry(&format!("198.18.1.{host}"), "198.18.1.0/24")
}

fn mac(i: u8) -> [u8; 6] {
    [0x02, 0x7e, 0, 0, 0, i]
}

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

/// (transactions sent, transactions the kernel refused) by `s` so far.
fn counts(s: &Session) -> (u64, u64) {
    (s.batches_sent(), s.batches_refused())
}

fn table_names(ns: &Netns) -> Vec<String> {
    let rs = ns.ruleset();
    let mut out: Vec<String> = objects(&rs, "table")
        .iter()
        .map(|t| format!("{} {}", t["family"].as_str().unwrap(), t["name"].as_str().unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn a_networks_first_add_is_one_transaction_and_no_refusal() {
    if !can_run("a_networks_first_add_is_one_transaction_and_no_refusal") {
        return;
    }
    let ns = Netns::new("first1");
    let dual = [v4(2), entry("fd7e:7e7e:1::2", "fd7e:7e7e:1::/64")];
    let excluded = nets(&["198.19.0.0/16", "fd7e:7e7e:ff::/48"]);
    ns.run(|| {
        let mut s = session();
        s.masq_add("net1", "c1", "eth0", &dual, &excluded).unwrap();
        assert_eq!(counts(&s), (1, 0), "masq_add on an empty namespace: one transaction, none refused");
        let mut s = session();
        s.spoofchk_add("net1", "c1", "eth0", "veth1", mac(1)).unwrap();
        assert_eq!(counts(&s), (1, 0), "spoofchk_add on an empty namespace");
        let mut s = session();
        assert_eq!(s.isolate_add("net1").unwrap(), isolation_group("net1").unwrap());
        assert_eq!(counts(&s), (1, 0), "isolate_add on an empty namespace");

        // Everything is there, as the old three transactions left it.
        let mut s = session();
        let mut want: Vec<_> = dual.iter().map(|e| e.addr).collect();
        want.sort();
        assert_eq!(s.masq_list("net1", "c1", "eth0").unwrap(), want);
        assert_eq!(s.masq_excluded("net1").unwrap(), excluded);
        assert_eq!(s.spoofchk_list("net1", "c1", "eth0").unwrap(), [("veth1".to_string(), mac(1))]);
        assert!(s.isolate_check("net1").unwrap());

        // The next attachment of the network (table present) is one transaction too.
        let mut s = session();
        s.masq_add("net1", "c2", "eth0", &[v4(3)], &excluded).unwrap();
        s.spoofchk_add("net1", "c2", "eth0", "veth2", mac(2)).unwrap();
        assert_eq!(counts(&s), (2, 0));
        let mut s = session();
        s.isolate_add("net2").unwrap();
        assert_eq!(counts(&s), (1, 0), "a second network's isolation element, shared table present");
    });
    let rs = ns.ruleset();
    assert_eq!(table_names(&ns), ["bridge tether-net1", "inet tether", "inet tether-net1"]);
    assert_eq!(objects(&rs, "chain").len(), 3, "{}", ns.ruleset_text());
    assert_eq!(objects(&rs, "rule").len(), 8 + 3 + 1, "{}", ns.ruleset_text());
    // Without exclusions, a first ADD is one transaction as well (and CHECK reads no exclusions back).
    ns.run(|| {
        let mut s = session();
        s.masq_add("net3", "c1", "eth0", &[v4(4)], &[]).unwrap();
        assert_eq!(counts(&s), (1, 0));
        assert!(s.masq_excluded("net3").unwrap().is_empty());
    });
}

/// Two sessions add the first attachment of a network at the same instant, many times over (the table is dropped
/// between rounds by the last DEL): both attachments end present in one table with one set of rules, and the loser
/// of the creation learns it without an aborted transaction.
#[test]
fn concurrent_first_adds_keep_both_attachments() {
    if !can_run("concurrent_first_adds_keep_both_attachments") {
        return;
    }
    let ns = Netns::new("first2");
    let excluded = nets(&["198.19.0.0/16"]);
    for round in 0..40u8 {
        let start = Barrier::new(2);
        let refused: Vec<[u64; 3]> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2u8)
                .map(|i| {
                    let (ns, start, excluded) = (&ns, &start, &excluded);
                    s.spawn(move || {
                        ns.run(|| {
                            let id = format!("r{round}c{i}");
                            let (mut masq, mut spoof, mut iso) = (session(), session(), session());
                            start.wait();
                            masq.masq_add("net1", &id, "eth0", &[v4(10 + i)], excluded).unwrap();
                            spoof.spoofchk_add("net1", &id, "eth0", &format!("veth{i}"), mac(i)).unwrap();
                            iso.isolate_add(&format!("net{i}")).unwrap();
                            [masq.batches_refused(), spoof.batches_refused(), iso.batches_refused()]
                        })
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(refused, [[0; 3]; 2], "round {round}: transactions refused ([masq, spoofchk, isolate] per session)");
        let rs = ns.ruleset();
        assert_eq!(objects(&rs, "rule").len(), 8 + 3 + 1, "round {round}: {}", ns.ruleset_text());
        ns.run(|| {
            let mut s = session();
            for i in 0..2u8 {
                let id = format!("r{round}c{i}");
                assert_eq!(s.masq_list("net1", &id, "eth0").unwrap(), [v4(10 + i).addr], "round {round}: {id}");
                assert_eq!(s.spoofchk_list("net1", &id, "eth0").unwrap(), [(format!("veth{i}"), mac(i))]);
                assert!(s.isolate_check(&format!("net{i}")).unwrap(), "round {round}: net{i}");
            }
            assert_eq!(s.masq_excluded("net1").unwrap(), excluded);
            for i in 0..2u8 {
                let id = format!("r{round}c{i}");
                s.masq_del("net1", &id, "eth0").unwrap();
                s.spoofchk_del("net1", &id, "eth0").unwrap();
            }
            s.isolate_del("net0").unwrap();
        });
        assert_eq!(table_names(&ns), Vec::<String>::new(), "round {round}: the last DELs take every table");
    }
}

/// The first ADD of a network's next life races the last DEL of its previous one, many times over: whichever
/// commits first, the ADD's state ends present (it recreates the table when the DEL dropped it) and the DEL's is
/// gone.
#[test]
fn an_add_racing_the_last_del_keeps_its_state() {
    if !can_run("an_add_racing_the_last_del_keeps_its_state") {
        return;
    }
    let ns = Netns::new("first3");
    let excluded = nets(&["198.19.0.0/16"]);
    ns.run(|| {
        let mut s = session();
        s.masq_add("net1", "r0", "eth0", &[v4(10)], &excluded).unwrap();
        s.spoofchk_add("net1", "r0", "eth0", "veth0", mac(10)).unwrap();
    });
    for round in 1..=40u8 {
        let (old, new) = (format!("r{}", round - 1), format!("r{round}"));
        let host = 10 + round % 2;
        let start = Barrier::new(2);
        std::thread::scope(|s| {
            let (ns, start, excluded, old, new) = (&ns, &start, &excluded, &old, &new);
            s.spawn(move || {
                ns.run(|| {
                    let mut s = session();
                    start.wait();
                    s.masq_del("net1", old, "eth0").unwrap();
                    s.spoofchk_del("net1", old, "eth0").unwrap();
                })
            });
            s.spawn(move || {
                ns.run(|| {
                    let mut s = session();
                    start.wait();
                    s.masq_add("net1", new, "eth0", &[v4(host)], excluded).unwrap();
                    s.spoofchk_add("net1", new, "eth0", &format!("veth{round}"), mac(host)).unwrap();
                })
            });
        });
        ns.run(|| {
            let mut s = session();
            assert_eq!(s.masq_list("net1", &new, "eth0").unwrap(), [v4(host).addr], "round {round}: {new} lost");
            assert!(s.masq_list("net1", &old, "eth0").unwrap().is_empty(), "round {round}: {old} stayed");
            assert_eq!(s.masq_excluded("net1").unwrap(), excluded, "round {round}");
            assert_eq!(s.spoofchk_list("net1", &new, "eth0").unwrap(), [(format!("veth{round}"), mac(host))]);
            assert!(s.spoofchk_list("net1", &old, "eth0").unwrap().is_empty());
        });
        assert_eq!(objects(&ns.ruleset(), "rule").len(), 8 + 3, "round {round}: {}", ns.ruleset_text());
    }
}
