//! Root tests of the masquerade state, each in its own throwaway network namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use common::*;
use nft::MasqEntry;
use serde_json::Value;

fn entry(addr: &str, subnet: &str) -> MasqEntry {
    MasqEntry { addr: addr.parse().unwrap(), subnet: subnet.parse().unwrap() }
}

fn v4(host: u8) -> MasqEntry {
    entry(&format!("198.18.1.{host}"), "198.18.1.0/24")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (address, comment) pairs of a set, sorted.
fn elements(rs: &Value, table: &str, set_name: &str) -> Vec<(String, String)> {
    let Some(s) = set(rs, table, set_name) else { return vec![] };
    let mut out: Vec<(String, String)> = s["elem"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let e = &e["elem"];
                    (e["val"].as_str().unwrap().to_owned(), e["comment"].as_str().unwrap_or("").to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    out.sort();
    out
}

fn tables(rs: &Value) -> Vec<(String, String)> {
    objects(rs, "table")
        .iter()
        .map(|t| (t["family"].as_str().unwrap().to_owned(), t["name"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn concurrent_adds_create_one_table_and_no_duplicate_rules() {
    if !can_run("concurrent_adds_create_one_table_and_no_duplicate_rules") {
        return;
    }
    let ns = Netns::new("conc");
    std::thread::scope(|s| {
        for i in 0..8u8 {
            let ns = &ns;
            s.spawn(move || {
                ns.run(|| {
                    session().masq_add("net1", &format!("c{i}"), "eth0", &[v4(10 + i)], &[]).unwrap();
                    // and again: idempotent
                    session().masq_add("net1", &format!("c{i}"), "eth0", &[v4(10 + i)], &[]).unwrap();
                })
            });
        }
    });
    let rs = ns.ruleset();
    assert_eq!(tables(&rs), vec![("inet".to_string(), "tether-net1".to_string())]);
    assert_eq!(objects(&rs, "chain").len(), 1);
    let chain = objects(&rs, "chain")[0];
    assert_eq!(
        (chain["name"].as_str(), chain["hook"].as_str(), chain["prio"].as_i64()),
        (Some("postrouting"), Some("postrouting"), Some(100))
    );
    assert_eq!(chain["type"], "nat");
    assert_eq!(objects(&rs, "rule").len(), 8, "{}", ns.ruleset_text());
    assert_eq!(objects(&rs, "set").len(), 6);
    let want: Vec<(String, String)> =
        (0..8u8).map(|i| (format!("198.18.1.{}", 10 + i), format!("c{i}/eth0"))).collect();
    assert_eq!(elements(&rs, "tether-net1", "masq4"), want);
    let nets = &set(&rs, "tether-net1", "nets4").unwrap()["elem"];
    assert_eq!(nets.as_array().unwrap().len(), 1, "{nets}");
    assert_eq!(nets[0]["prefix"]["addr"], "198.18.1.0");
    assert_eq!(nets[0]["prefix"]["len"], 24);
}

#[test]
fn rules_read_back_as_designed() {
    if !can_run("rules_read_back_as_designed") {
        return;
    }
    let ns = Netns::new("rules");
    ns.run(|| session().masq_add("net1", "c1", "eth0", &[v4(2)], &[]).unwrap());
    let text = ns.ruleset_text();
    for line in [
        "type nat hook postrouting priority srcnat; policy accept;",
        "ip daddr @nets4 return",
        "ip daddr 224.0.0.0/4 return",
        "ip daddr @nomasq4 return",
        "ip saddr @masq4 masquerade",
        "ip6 daddr @nets6 return",
        "ip6 daddr ff00::/8 return",
        "ip6 daddr @nomasq6 return",
        "ip6 saddr @masq6 masquerade",
        "198.18.1.2 comment \"c1/eth0\"",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn del_removes_exactly_that_attachment() {
    if !can_run("del_removes_exactly_that_attachment") {
        return;
    }
    let ns = Netns::new("del");
    ns.run(|| {
        session().masq_add("net1", "c1", "eth0", &[v4(2), entry("fd7e:7e7e::2", "fd7e:7e7e::/64")], &[]).unwrap();
        session().masq_add("net1", "c1", "eth1", &[v4(3)], &[]).unwrap();
        session().masq_add("net1", "c2", "eth0", &[v4(4), entry("fd7e:7e7e::4", "fd7e:7e7e::/64")], &[]).unwrap();
        session().masq_add("net2", "c1", "eth0", &[v4(5)], &[]).unwrap();
        session().masq_del("net1", "c1", "eth0").unwrap();
        session().masq_del("net1", "c1", "eth0").unwrap(); // twice: still fine
    });
    let rs = ns.ruleset();
    assert_eq!(elements(&rs, "tether-net1", "masq4"), pairs(&[("198.18.1.3", "c1/eth1"), ("198.18.1.4", "c2/eth0")]));
    assert_eq!(elements(&rs, "tether-net1", "masq6"), pairs(&[("fd7e:7e7e::4", "c2/eth0")]));
    assert_eq!(elements(&rs, "tether-net2", "masq4"), pairs(&[("198.18.1.5", "c1/eth0")]));
}

#[test]
fn del_with_nothing_present_is_ok_and_the_last_del_drops_the_table() {
    if !can_run("del_with_nothing_present_is_ok_and_the_last_del_drops_the_table") {
        return;
    }
    let ns = Netns::new("delnone");
    ns.run(|| {
        session().masq_del("net1", "c1", "eth0").unwrap(); // no table at all
        assert_eq!(session().masq_list("net1", "c1", "eth0").unwrap(), Vec::<IpAddr>::new());
        session().masq_gc("net1", &[]).unwrap();
        session().masq_add("net1", "c1", "eth0", &[v4(2)], &[]).unwrap();
        session().masq_add("net1", "c2", "eth0", &[v4(3)], &[]).unwrap();
        session().masq_del("net1", "c9", "eth0").unwrap(); // table present, element absent
    });
    assert_eq!(tables(&ns.ruleset()).len(), 1);
    ns.run(|| session().masq_del("net1", "c1", "eth0").unwrap());
    assert_eq!(tables(&ns.ruleset()).len(), 1, "c2 is still there");
    ns.run(|| session().masq_del("net1", "c2", "eth0").unwrap());
    assert_eq!(tables(&ns.ruleset()), vec![], "the last DEL takes the table");
    ns.run(|| session().masq_add("net1", "c3", "eth0", &[v4(4)], &[]).unwrap());
    assert_eq!(objects(&ns.ruleset(), "rule").len(), 8, "the next ADD makes it again, whole");
    ns.run(|| session().masq_gc("net1", &[]).unwrap());
    assert_eq!(tables(&ns.ruleset()), vec![], "GC with nothing valid takes the table");
}

#[test]
fn the_last_del_takes_the_isolation_element_and_races_with_adds_lose_nothing() {
    if !can_run("the_last_del_takes_the_isolation_element_and_races_with_adds_lose_nothing") {
        return;
    }
    let ns = Netns::new("lastdel");
    ns.run(|| {
        session().isolate_add("net1").unwrap();
        session().masq_add("net1", "c1", "eth0", &[v4(2)], &[]).unwrap();
        session().masq_del("net1", "c1", "eth0").unwrap();
    });
    let rs = ns.ruleset();
    assert_eq!(tables(&rs), vec![], "the network's table and its isolation element (the shared table's last) stay");
    let net1 = ("inet".to_string(), "tether-net1".to_string());
    ns.run(|| {
        session().isolate_add("net1").unwrap();
        session().isolate_add("net2").unwrap();
        session().masq_add("net1", "c1", "eth0", &[v4(2)], &[]).unwrap();
        session().masq_del("net1", "c1", "eth0").unwrap();
    });
    let rs = ns.ruleset();
    assert_eq!(tables(&rs), vec![("inet".to_string(), "tether".to_string())], "net2 keeps the shared table");
    assert_eq!(set(&rs, "tether", "same").unwrap()["elem"].as_array().map(Vec::len), Some(1), "{rs}");
    ns.run(|| session().isolate_del("net2").unwrap());
    assert_eq!(tables(&ns.ruleset()), vec![], "GC of net2 takes the shared table");
    // Attachments come and go in parallel; whoever is last takes the table, and an ADD that races a
    // last DEL keeps its element (it recreates the table when it finds it gone).
    for round in 0..4u8 {
        std::thread::scope(|s| {
            for i in 0..16u8 {
                let ns = &ns;
                s.spawn(move || {
                    ns.run(|| {
                        let id = format!("r{round}c{i}");
                        session().masq_add("net1", &id, "eth0", &[v4(10 + i)], &[]).unwrap();
                        if i % 2 == 0 {
                            session().masq_del("net1", &id, "eth0").unwrap();
                        }
                    })
                });
            }
        });
        let left: Vec<u8> = (0..16u8).filter(|i| i % 2 == 1).collect();
        for i in &left {
            let id = format!("r{round}c{i}");
            assert_eq!(
                ns.run(|| session().masq_list("net1", &id, "eth0")).unwrap(),
                vec![v4(10 + i).addr],
                "{id} lost"
            );
        }
        std::thread::scope(|s| {
            for i in left {
                let ns = &ns;
                s.spawn(move || ns.run(|| session().masq_del("net1", &format!("r{round}c{i}"), "eth0").unwrap()));
            }
        });
        assert!(!tables(&ns.ruleset()).contains(&net1), "round {round}: the table stayed");
    }
}

#[test]
fn list_reports_the_attachments_addresses() {
    if !can_run("list_reports_the_attachments_addresses") {
        return;
    }
    let ns = Netns::new("list");
    ns.run(|| {
        session()
            .masq_add("net1", "c1", "eth0", &[v4(2), v4(7), entry("fd7e:7e7e::2", "fd7e:7e7e::/64")], &[])
            .unwrap();
        session().masq_add("net1", "c2", "eth0", &[v4(3)], &[]).unwrap();
        assert_eq!(
            session().masq_list("net1", "c1", "eth0").unwrap(),
            vec![ip("198.18.1.2"), ip("198.18.1.7"), ip("fd7e:7e7e::2")]
        );
        assert_eq!(session().masq_list("net1", "c2", "eth0").unwrap(), vec![ip("198.18.1.3")]);
        assert_eq!(session().masq_list("net1", "c1", "eth1").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(session().masq_list("net2", "c1", "eth0").unwrap(), Vec::<IpAddr>::new());
    });
}

#[test]
fn gc_keeps_exactly_the_valid_attachments() {
    if !can_run("gc_keeps_exactly_the_valid_attachments") {
        return;
    }
    let ns = Netns::new("gc");
    ns.run(|| {
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            session().masq_add("net1", id, "eth0", &[v4(2 + i as u8)], &[]).unwrap();
        }
        session().masq_add("net2", "a", "eth0", &[v4(9)], &[]).unwrap();
        let valid = vec![("b".to_string(), "eth0".to_string()), ("d".to_string(), "eth0".to_string())];
        session().masq_gc("net1", &valid).unwrap();
    });
    let rs = ns.ruleset();
    assert_eq!(elements(&rs, "tether-net1", "masq4"), pairs(&[("198.18.1.3", "b/eth0"), ("198.18.1.5", "d/eth0")]));
    assert_eq!(elements(&rs, "tether-net2", "masq4"), pairs(&[("198.18.1.9", "a/eth0")]), "other networks untouched");
    ns.run(|| session().masq_gc("net1", &[]).unwrap());
    assert_eq!(tables(&ns.ruleset()), vec![("inet".to_string(), "tether-net2".to_string())]);
}

#[test]
fn add_takes_over_an_address_leaked_by_another_owner() {
    if !can_run("add_takes_over_an_address_leaked_by_another_owner") {
        return;
    }
    let ns = Netns::new("leak");
    ns.run(|| {
        session().masq_add("net1", "old", "eth0", &[v4(2)], &[]).unwrap();
        session().masq_add("net1", "new", "eth0", &[v4(2)], &[]).unwrap();
        assert_eq!(session().masq_list("net1", "old", "eth0").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(session().masq_list("net1", "new", "eth0").unwrap(), vec![ip("198.18.1.2")]);
        // the old owner's late DEL must not remove the new owner's element
        session().masq_del("net1", "old", "eth0").unwrap();
        assert_eq!(session().masq_list("net1", "new", "eth0").unwrap(), vec![ip("198.18.1.2")]);
    });
}

#[test]
fn subnets_are_merged_into_the_nets_set() {
    if !can_run("subnets_are_merged_into_the_nets_set") {
        return;
    }
    let ns = Netns::new("nets");
    let nets = |ns: &Netns| -> Vec<String> {
        let rs = ns.ruleset();
        let mut v: Vec<String> = set(&rs, "tether-net1", "nets4").unwrap()["elem"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}/{}", e["prefix"]["addr"].as_str().unwrap(), e["prefix"]["len"]))
            .collect();
        v.sort();
        v
    };
    ns.run(|| session().masq_add("net1", "a", "eth0", &[v4(2)], &[]).unwrap());
    ns.run(|| session().masq_add("net1", "b", "eth0", &[entry("198.18.2.2", "198.18.2.0/24")], &[]).unwrap());
    assert_eq!(nets(&ns), ["198.18.1.0/24", "198.18.2.0/24"], "adjacent subnets coexist");
    ns.run(|| session().masq_add("net1", "c", "eth0", &[entry("198.18.1.9", "198.18.1.8/29")], &[]).unwrap());
    assert_eq!(nets(&ns), ["198.18.1.0/24", "198.18.2.0/24"], "a covered subnet adds nothing");
    ns.run(|| session().masq_add("net1", "d", "eth0", &[entry("198.18.3.2", "198.18.0.0/16")], &[]).unwrap());
    assert_eq!(nets(&ns), ["198.18.0.0/16"], "a wider subnet replaces the ones it contains");
    ns.run(|| {
        for id in ["a", "b", "c", "d"] {
            assert_eq!(session().masq_list("net1", id, "eth0").unwrap().len(), 1, "{id}");
        }
    });
}

#[test]
fn adds_and_dels_racing_leave_consistent_state() {
    if !can_run("adds_and_dels_racing_leave_consistent_state") {
        return;
    }
    let ns = Netns::new("churn");
    std::thread::scope(|s| {
        for t in 0..6u8 {
            let ns = &ns;
            s.spawn(move || {
                ns.run(|| {
                    for round in 0..15 {
                        let id = format!("t{t}r{round}");
                        session().masq_add("net1", &id, "eth0", &[v4(10 + t)], &[]).unwrap();
                        assert_eq!(
                            session().masq_list("net1", &id, "eth0").unwrap(),
                            vec![ip(&format!("198.18.1.{}", 10 + t))]
                        );
                        session().masq_del("net1", &id, "eth0").unwrap();
                    }
                    // a survivor per thread
                    session().masq_add("net1", &format!("keep{t}"), "eth0", &[v4(100 + t)], &[]).unwrap();
                })
            });
        }
    });
    let rs = ns.ruleset();
    let want: Vec<(String, String)> =
        (0..6u8).map(|t| (format!("198.18.1.{}", 100 + t), format!("keep{t}/eth0"))).collect();
    assert_eq!(elements(&rs, "tether-net1", "masq4"), want);
    assert_eq!(objects(&rs, "rule").len(), 8);
    ns.run(|| session().masq_gc("net1", &[]).unwrap());
    assert_eq!(tables(&ns.ruleset()), vec![]);
}

/// Node namespace with a container namespace (198.18.1.2/24 via 198.18.1.1) and an "outside" namespace
/// (198.18.200.2/24) that has no route back to 198.18.1.0/24: a reply reaches the container only if the node
/// masqueraded the request.
#[test]
fn masquerade_end_to_end() {
    if !can_run("masquerade_end_to_end") {
        return;
    }
    let node = Netns::new("node");
    let ctr = Netns::new("ctr");
    let out = Netns::new("out");
    node.ip(&["link", "add", "hc", "type", "veth", "peer", "name", "eth0", "netns", &ctr.name]);
    node.ip(&["link", "add", "ho", "type", "veth", "peer", "name", "eth0", "netns", &out.name]);
    node.ip(&["addr", "add", "198.18.1.1/24", "dev", "hc"]);
    node.ip(&["addr", "add", "198.18.200.1/24", "dev", "ho"]);
    node.ip(&["link", "set", "hc", "up"]);
    node.ip(&["link", "set", "ho", "up"]);
    node.sysctl("net.ipv4.ip_forward", "1");
    ctr.ip(&["addr", "add", "198.18.1.2/24", "dev", "eth0"]);
    ctr.ip(&["link", "set", "eth0", "up"]);
    ctr.ip(&["route", "add", "default", "via", "198.18.1.1"]);
    out.ip(&["addr", "add", "198.18.200.2/24", "dev", "eth0"]);
    out.ip(&["link", "set", "eth0", "up"]);
    // "outside" has no route to the container subnet
    let route = out.exec(&["ip", "route", "get", "198.18.1.2"]);
    assert!(!route.status.success(), "outside must not reach 198.18.1.0/24 by itself");

    assert!(ctr.ping("198.18.1.1"), "container reaches its gateway");
    assert!(!ctr.ping("198.18.200.2"), "without masquerade the reply has no way back");
    node.run(|| session().masq_add("net1", "c1", "eth0", &[v4(2)], &[]).unwrap());
    assert!(ctr.ping("198.18.200.2"), "with masquerade the outside answers the node's address");
    node.run(|| session().masq_del("net1", "c1", "eth0").unwrap());
    assert!(!ctr.ping("198.18.200.2"), "after masq_del the masquerade is gone");
}
