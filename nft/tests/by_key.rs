//! Root tests of how CHECK, DEL and GC find an attachment's state: by key in the owner maps, never by listing a
//! set; safely when owners' digests collide; and by listing in a table made before owner maps existed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use common::*;
use nft::{MasqEntry, Session};

fn v4(host: u8) -> MasqEntry {
    MasqEntry { addr: format!("198.18.1.{host}").parse().unwrap(), subnet: "198.18.1.0/24".parse().unwrap() }
}

fn v6(host: u8) -> MasqEntry {
    MasqEntry { addr: format!("fd7e:7e7e::{host}").parse().unwrap(), subnet: "fd7e:7e7e::/64".parse().unwrap() }
}

fn ips(entries: &[MasqEntry]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = entries.iter().map(|e| e.addr).collect();
    v.sort();
    v
}

fn mac(i: u8) -> [u8; 6] {
    [0x02, 0x7e, 0, 0, 0, i]
}

/// Every owner's entries under one digest: the worst collision there can be.
fn one_digest(_owner: &str) -> u64 {
    0x00c0_111d_ed00
}

fn colliding() -> Session {
    nft::testing::session_with_owner_digest(one_digest).unwrap()
}

/// The owner-map entries of `table` as ("key", comment) pairs, sorted.
fn entries(ns: &Netns, table: &str, map: &str) -> Vec<(String, String)> {
    let rs = ns.ruleset();
    let Some(m) = objects(&rs, "map").into_iter().find(|m| m["table"] == table && m["name"] == map) else {
        return vec![];
    };
    let mut out: Vec<(String, String)> = m["elem"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let key = &e[0]["elem"];
                    (key["val"].as_str().unwrap().to_owned(), key["comment"].as_str().unwrap_or("").to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn check_and_del_send_no_dump() {
    if !can_run("check_and_del_send_no_dump") {
        return;
    }
    let ns = Netns::new("nodump");
    ns.run(|| {
        let mut setup = session();
        for i in 0..20u8 {
            let id = format!("c{i}");
            setup.masq_add("net1", &id, "eth0", &[v4(10 + i), v6(10 + i)], &[]).unwrap();
            setup.spoofchk_add("net1", &id, "eth0", &format!("veth{i}"), mac(i)).unwrap();
        }
        // A kernel that reports set counts (6.18 does, 6.1 not) spares DEL its emptiness read too.
        let counts = nft::testing::kernel_reports_set_counts().unwrap();
        eprintln!("check_and_del_send_no_dump: the kernel reports set counts: {counts}");
        let emptiness_reads = if counts { 0 } else { 1 };

        let mut s = session();
        assert_eq!(s.masq_list("net1", "c3", "eth0").unwrap(), ips(&[v4(13), v6(13)]));
        assert_eq!(s.spoofchk_list("net1", "c3", "eth0").unwrap(), vec![("veth3".to_string(), mac(3))]);
        assert_eq!(s.masq_list("net1", "absent", "eth0").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(s.dumps_sent(), 0, "CHECK finds the attachment's state by key");

        let mut s = session();
        s.masq_del("net1", "c3", "eth0").unwrap();
        assert_eq!(s.dumps_sent(), emptiness_reads, "masq DEL finds the attachment's state by key");
        let mut s = session();
        s.spoofchk_del("net1", "c3", "eth0").unwrap();
        assert_eq!(s.dumps_sent(), emptiness_reads, "spoof-check DEL finds the attachment's state by key");

        let mut s = session();
        assert_eq!(s.masq_list("net1", "c3", "eth0").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(s.spoofchk_list("net1", "c3", "eth0").unwrap(), vec![]);
        assert_eq!(s.masq_list("net1", "c4", "eth0").unwrap(), ips(&[v4(14), v6(14)]));
        assert_eq!(s.dumps_sent(), 0);
    });
    let text = ns.ruleset_text();
    assert!(!text.contains("\"c3/eth0\""), "c3's elements and owner entries are gone:\n{text}");
    assert!(text.contains("198.18.1.14 comment \"c4/eth0\""), "{text}");
}

#[test]
fn the_last_del_drops_the_table_with_its_elements_in_one_transaction() {
    if !can_run("the_last_del_drops_the_table_with_its_elements_in_one_transaction") {
        return;
    }
    let ns = Netns::new("lastdel");
    ns.run(|| {
        let mut setup = session();
        setup.masq_add("net1", "c1", "eth0", &[v4(11), v6(11)], &[]).unwrap();
        setup.masq_add("net1", "c2", "eth0", &[v4(12)], &[]).unwrap();
        setup.spoofchk_add("net1", "c1", "eth0", "veth1", mac(1)).unwrap();
        // Where the kernel reports set counts (6.18 does, 6.1 not), DEL knows before committing that it takes
        // the last elements; elsewhere it commits the removal and then drops what that emptied.
        let counts = nft::testing::kernel_reports_set_counts().unwrap();
        let last_del_batches = if counts { 1 } else { 2 };

        let mut s = session();
        s.masq_del("net1", "c1", "eth0").unwrap();
        assert_eq!(s.batches_sent(), 1, "a DEL that leaves another attachment only removes its own elements");
        let mut s = session();
        s.masq_del("net1", "c2", "eth0").unwrap();
        assert_eq!(s.batches_sent(), last_del_batches, "the last masquerade DEL (counts reported: {counts})");
        let mut s = session();
        s.spoofchk_del("net1", "c1", "eth0").unwrap();
        assert_eq!(s.batches_sent(), last_del_batches, "the last spoof-check DEL (counts reported: {counts})");
        assert_eq!(s.batches_refused(), 0);
    });
    let text = ns.ruleset_text();
    assert!(!text.contains("tether-net1"), "the network's tables are gone:\n{text}");
}

#[test]
fn colliding_digests_never_touch_another_owners_state() {
    if !can_run("colliding_digests_never_touch_another_owners_state") {
        return;
    }
    let ns = Netns::new("collide");
    ns.run(|| {
        let mut s = colliding();
        s.masq_add("net1", "a", "eth0", &[v4(2), v6(2)], &[]).unwrap();
        s.masq_add("net1", "b", "eth0", &[v4(3)], &[]).unwrap();
        s.masq_add("net1", "c", "eth0", &[v4(4), v4(5)], &[]).unwrap();
        s.masq_add("net1", "b", "eth0", &[v4(3)], &[]).unwrap(); // again: idempotent, no second entry
        s.spoofchk_add("net1", "a", "eth0", "veth-a", mac(1)).unwrap();
        s.spoofchk_add("net1", "b", "eth0", "veth-b", mac(2)).unwrap();
        s.spoofchk_add("net1", "c", "eth0", "veth-c", mac(3)).unwrap();
        assert_eq!(s.masq_list("net1", "a", "eth0").unwrap(), ips(&[v4(2), v6(2)]));
        assert_eq!(s.masq_list("net1", "b", "eth0").unwrap(), ips(&[v4(3)]));
        assert_eq!(s.masq_list("net1", "c", "eth0").unwrap(), ips(&[v4(4), v4(5)]));
        assert_eq!(s.spoofchk_list("net1", "b", "eth0").unwrap(), vec![("veth-b".to_string(), mac(2))]);
    });
    // One run of slots shared by the three owners, in the order they came.
    let run4 = entries(&ns, "tether-net1", "owners4");
    let slots: Vec<&str> = run4.iter().map(|(k, _)| &k[13..]).collect();
    assert_eq!(slots, ["00", "01", "02", "03"], "{run4:?}");
    ns.run(|| {
        let mut s = colliding();
        // a's DEL leaves b and c whole, and moves their entries into the slots it freed: no hole.
        s.masq_del("net1", "a", "eth0").unwrap();
        s.spoofchk_del("net1", "a", "eth0").unwrap();
        assert_eq!(s.masq_list("net1", "a", "eth0").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(s.masq_list("net1", "b", "eth0").unwrap(), ips(&[v4(3)]));
        assert_eq!(s.masq_list("net1", "c", "eth0").unwrap(), ips(&[v4(4), v4(5)]));
        assert_eq!(s.spoofchk_list("net1", "c", "eth0").unwrap(), vec![("veth-c".to_string(), mac(3))]);
    });
    // a held slot 00 (b, c, c came after): the survivors move down one, in their order.
    let run4 = entries(&ns, "tether-net1", "owners4");
    let run4: Vec<(&str, &str)> = run4.iter().map(|(k, c)| (&k[13..], c.as_str())).collect();
    assert_eq!(run4, [("00", "b/eth0"), ("01", "c/eth0"), ("02", "c/eth0")]);
    assert_eq!(entries(&ns, "tether-net1", "owners6"), vec![], "a's IPv6 entry went with it");
    ns.run(|| {
        let mut s = colliding();
        // GC of b closes its hole too, and c's DEL then finds everything.
        s.masq_gc("net1", &[("c".into(), "eth0".into())]).unwrap();
        s.spoofchk_gc("net1", &[("c".into(), "eth0".into())]).unwrap();
        assert_eq!(s.masq_list("net1", "b", "eth0").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(s.masq_list("net1", "c", "eth0").unwrap(), ips(&[v4(4), v4(5)]));
    });
    let run4 = entries(&ns, "tether-net1", "owners4");
    let run4: Vec<(&str, &str)> = run4.iter().map(|(k, c)| (&k[13..], c.as_str())).collect();
    assert_eq!(run4, [("00", "c/eth0"), ("01", "c/eth0")], "GC took b's entry and closed the hole");
    ns.run(|| {
        let mut s = colliding();
        s.masq_del("net1", "c", "eth0").unwrap();
        s.spoofchk_del("net1", "c", "eth0").unwrap();
    });
    assert_eq!(objects(&ns.ruleset(), "table").len(), 0, "the last DEL took both tables:\n{}", ns.ruleset_text());
}

#[test]
fn an_element_taken_over_stays_with_its_new_owner_despite_the_old_entry() {
    if !can_run("an_element_taken_over_stays_with_its_new_owner_despite_the_old_entry") {
        return;
    }
    let ns = Netns::new("takeover");
    ns.run(|| {
        let mut s = colliding();
        s.masq_add("net1", "old", "eth0", &[v4(2)], &[]).unwrap();
        s.masq_add("net1", "new", "eth0", &[v4(2)], &[]).unwrap();
        // old's entry still names 198.18.1.2, whose element now says "new": old's CHECK and DEL leave it alone.
        assert_eq!(s.masq_list("net1", "old", "eth0").unwrap(), Vec::<IpAddr>::new());
        s.masq_del("net1", "old", "eth0").unwrap();
        assert_eq!(s.masq_list("net1", "new", "eth0").unwrap(), ips(&[v4(2)]));
    });
    assert_eq!(
        entries(&ns, "tether-net1", "owners4").iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(),
        ["new/eth0"]
    );
}

/// The masquerade and spoof-check tables as the release before owner maps made them.
const OLD_LAYOUT: &str = r#"
table inet tether-net1 {
    set masq4 { type ipv4_addr; elements = { 198.18.1.2 comment "old1/eth0", 198.18.1.3 comment "old2/eth0" } }
    set masq6 { type ipv6_addr; elements = { fd7e:7e7e::2 comment "old1/eth0" } }
    set nets4 { type ipv4_addr; flags interval; elements = { 198.18.1.0/24 } }
    set nets6 { type ipv6_addr; flags interval; elements = { fd7e:7e7e::/64 } }
    set nomasq4 { type ipv4_addr; flags interval; }
    set nomasq6 { type ipv6_addr; flags interval; }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        ip daddr @nets4 return
        ip daddr 224.0.0.0/4 return
        ip daddr @nomasq4 return
        ip saddr @masq4 masquerade
        ip6 daddr @nets6 return
        ip6 daddr ff00::/8 return
        ip6 daddr @nomasq6 return
        ip6 saddr @masq6 masquerade
    }
}
table bridge tether-net1 {
    set ports { type ifname; elements = { "veth1" comment "old1/eth0" } }
    set allowed { type ifname . ether_addr; elements = { "veth1" . 02:7e:00:00:00:01 comment "old1/eth0" } }
    chain prerouting {
        type filter hook prerouting priority -300; policy accept;
        iifname != @ports return
        iifname . ether saddr != @allowed drop
        ether type arp iifname . arp saddr ether != @allowed drop
    }
}
"#;

#[test]
fn tables_of_the_previous_layout_are_still_checked_and_cleaned() {
    if !can_run("tables_of_the_previous_layout_are_still_checked_and_cleaned") {
        return;
    }
    let ns = Netns::new("oldlayout");
    let path = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(&path, OLD_LAYOUT).unwrap();
    let out = ns.exec(&["nft", "-f", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.success(), "nft -f: {}", String::from_utf8_lossy(&out.stderr));
    ns.run(|| {
        let mut s = session();
        assert_eq!(s.masq_list("net1", "old1", "eth0").unwrap(), ips(&[v4(2), v6(2)]));
        assert_eq!(s.spoofchk_list("net1", "old1", "eth0").unwrap(), vec![("veth1".to_string(), mac(1))]);
        // A new attachment in the old table: added without owner entries (the table has no owner map).
        s.masq_add("net1", "new", "eth0", &[v4(4)], &[]).unwrap();
        s.spoofchk_add("net1", "new", "eth0", "veth4", mac(4)).unwrap();
        assert_eq!(s.masq_list("net1", "new", "eth0").unwrap(), ips(&[v4(4)]));
        s.masq_del("net1", "old1", "eth0").unwrap();
        s.spoofchk_del("net1", "old1", "eth0").unwrap();
        assert_eq!(s.masq_list("net1", "old1", "eth0").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(s.masq_list("net1", "old2", "eth0").unwrap(), ips(&[v4(3)]));
    });
    let text = ns.ruleset_text();
    assert!(!text.contains("old1/eth0"), "old1 is gone from the old tables:\n{text}");
    assert!(!text.contains("owners"), "an old table is not half-converted:\n{text}");
    ns.run(|| {
        let mut s = session();
        for id in ["old2", "new"] {
            s.masq_del("net1", id, "eth0").unwrap();
            s.spoofchk_del("net1", id, "eth0").unwrap();
        }
    });
    assert_eq!(objects(&ns.ruleset(), "table").len(), 0, "the last DELs took the old tables");
    ns.run(|| session().masq_add("net1", "next", "eth0", &[v4(5)], &[]).unwrap());
    assert_eq!(entries(&ns, "tether-net1", "owners4").len(), 1, "the next ADD makes the table anew, with owner maps");
}

#[test]
fn colliding_owners_coming_and_going_in_parallel_lose_nothing() {
    if !can_run("colliding_owners_coming_and_going_in_parallel_lose_nothing") {
        return;
    }
    let ns = Netns::new("collpar");
    std::thread::scope(|scope| {
        for t in 0..6u8 {
            let ns = &ns;
            scope.spawn(move || {
                ns.run(|| {
                    let mut s = colliding();
                    let keep = format!("keep{t}");
                    s.masq_add("net1", &keep, "eth0", &[v4(100 + t)], &[]).unwrap();
                    for round in 0..8 {
                        let id = format!("t{t}r{round}");
                        s.masq_add("net1", &id, "eth0", &[v4(10 + t)], &[]).unwrap();
                        assert_eq!(s.masq_list("net1", &id, "eth0").unwrap(), ips(&[v4(10 + t)]), "{id}");
                        s.masq_del("net1", &id, "eth0").unwrap();
                        assert_eq!(s.masq_list("net1", &id, "eth0").unwrap(), ips(&[]), "{id} after its DEL");
                        assert_eq!(s.masq_list("net1", &keep, "eth0").unwrap(), ips(&[v4(100 + t)]), "{keep}");
                    }
                })
            });
        }
    });
    // One run of six survivors' entries, without a hole.
    let run4 = entries(&ns, "tether-net1", "owners4");
    let slots: Vec<&str> = run4.iter().map(|(k, _)| &k[13..]).collect();
    assert_eq!(slots, ["00", "01", "02", "03", "04", "05"], "{run4:?}");
}
