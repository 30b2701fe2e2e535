//! Root tests of the bridge MAC spoof check, each in its own throwaway network namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

const MAC1: [u8; 6] = [0x02, 0x7e, 0, 0, 0, 0x01];
const MAC2: [u8; 6] = [0x02, 0x7e, 0, 0, 0, 0x02];
const FAKE: [u8; 6] = [0x02, 0x7e, 0, 0, 0, 0x99];

fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|p| u8::from_str_radix(p, 16).unwrap()).collect();
    v.try_into().unwrap()
}

/// The `allowed` set as ("port . mac", comment) strings, sorted.
fn allowed(rs: &Value, table: &str) -> Vec<String> {
    let Some(s) = set(rs, table, "allowed") else { return vec![] };
    let mut out: Vec<String> = s["elem"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let e = &e["elem"];
                    let c = e["val"]["concat"].as_array().unwrap();
                    format!(
                        "{} . {} {}",
                        c[0].as_str().unwrap(),
                        c[1].as_str().unwrap(),
                        e["comment"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn ports(rs: &Value, table: &str) -> Vec<String> {
    let Some(s) = set(rs, table, "ports") else { return vec![] };
    let mut out: Vec<String> = s["elem"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| format!("{} {}", e["elem"]["val"].as_str().unwrap(), e["elem"]["comment"].as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn tables(rs: &Value) -> Vec<String> {
    objects(rs, "table")
        .iter()
        .map(|t| format!("{} {}", t["family"].as_str().unwrap(), t["name"].as_str().unwrap()))
        .collect()
}

#[test]
fn state_add_list_del_gc() {
    if !can_run("state_add_list_del_gc") {
        return;
    }
    let ns = Netns::new("spstate");
    ns.run(|| {
        session().spoofchk_add("net1", "c1", "eth0", "veth1", MAC1).unwrap();
        session().spoofchk_add("net1", "c1", "eth0", "veth1", MAC1).unwrap(); // idempotent
        session().spoofchk_add("net1", "c2", "eth0", "veth2", MAC2).unwrap();
        session().spoofchk_add("net1", "c3", "eth0", "veth3", MAC2).unwrap();
        assert_eq!(session().spoofchk_list("net1", "c1", "eth0").unwrap(), vec![("veth1".to_string(), MAC1)]);
        assert_eq!(session().spoofchk_list("net1", "c9", "eth0").unwrap(), vec![]);
        assert_eq!(session().spoofchk_list("net2", "c1", "eth0").unwrap(), vec![]);
    });
    let rs = ns.ruleset();
    assert_eq!(tables(&rs), ["bridge tether-net1"]);
    assert_eq!(objects(&rs, "rule").len(), 3);
    let chain = objects(&rs, "chain")[0];
    assert_eq!(
        (chain["hook"].as_str(), chain["prio"].as_i64(), chain["type"].as_str()),
        (Some("prerouting"), Some(-300), Some("filter"))
    );
    let text = ns.ruleset_text();
    for line in
        ["iifname != @ports return", "iifname . ether saddr != @allowed drop", "arp saddr ether != @allowed drop"]
    {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert_eq!(
        allowed(&rs, "tether-net1"),
        ["veth1 . 02:7e:00:00:00:01 c1/eth0", "veth2 . 02:7e:00:00:00:02 c2/eth0", "veth3 . 02:7e:00:00:00:02 c3/eth0"]
    );
    assert_eq!(ports(&rs, "tether-net1"), ["veth1 c1/eth0", "veth2 c2/eth0", "veth3 c3/eth0"]);

    ns.run(|| {
        session().spoofchk_del("net1", "c2", "eth0").unwrap();
        session().spoofchk_del("net1", "c2", "eth0").unwrap();
        session().spoofchk_del("net9", "c2", "eth0").unwrap(); // no such table
    });
    let rs = ns.ruleset();
    assert_eq!(ports(&rs, "tether-net1"), ["veth1 c1/eth0", "veth3 c3/eth0"]);
    assert_eq!(allowed(&rs, "tether-net1"), ["veth1 . 02:7e:00:00:00:01 c1/eth0", "veth3 . 02:7e:00:00:00:02 c3/eth0"]);

    ns.run(|| session().spoofchk_gc("net1", &[("c3".into(), "eth0".into())]).unwrap());
    let rs = ns.ruleset();
    assert_eq!(ports(&rs, "tether-net1"), ["veth3 c3/eth0"]);
    assert_eq!(allowed(&rs, "tether-net1"), ["veth3 . 02:7e:00:00:00:02 c3/eth0"]);
    ns.run(|| session().spoofchk_del("net1", "c3", "eth0").unwrap());
    assert_eq!(tables(&ns.ruleset()), Vec::<String>::new(), "the last DEL takes the table");
    ns.run(|| session().spoofchk_add("net1", "c4", "eth0", "veth4", MAC1).unwrap());
    assert_eq!(tables(&ns.ruleset()), ["bridge tether-net1"], "the next ADD makes it again");
    ns.run(|| session().spoofchk_gc("net1", &[]).unwrap());
    assert_eq!(tables(&ns.ruleset()), Vec::<String>::new(), "GC with nothing valid takes the table");
}

#[test]
fn a_port_taken_over_keeps_only_the_new_mac() {
    if !can_run("a_port_taken_over_keeps_only_the_new_mac") {
        return;
    }
    let ns = Netns::new("sptake");
    ns.run(|| {
        session().spoofchk_add("net1", "old", "eth0", "veth1", MAC1).unwrap();
        session().spoofchk_add("net1", "new", "eth0", "veth1", MAC2).unwrap();
    });
    let rs = ns.ruleset();
    assert_eq!(ports(&rs, "tether-net1"), ["veth1 new/eth0"]);
    assert_eq!(allowed(&rs, "tether-net1"), ["veth1 . 02:7e:00:00:00:02 new/eth0"]);
    ns.run(|| {
        // same owner, new MAC: the old MAC is no longer allowed
        session().spoofchk_add("net1", "new", "eth0", "veth1", FAKE).unwrap();
        assert_eq!(session().spoofchk_list("net1", "new", "eth0").unwrap(), vec![("veth1".to_string(), FAKE)]);
        // the old owner's late DEL leaves the new owner alone
        session().spoofchk_del("net1", "old", "eth0").unwrap();
        assert_eq!(session().spoofchk_list("net1", "new", "eth0").unwrap(), vec![("veth1".to_string(), FAKE)]);
    });
}

#[test]
fn concurrent_adds_create_one_table() {
    if !can_run("concurrent_adds_create_one_table") {
        return;
    }
    let ns = Netns::new("spconc");
    std::thread::scope(|s| {
        for i in 0..8u8 {
            let ns = &ns;
            s.spawn(move || {
                ns.run(|| {
                    session()
                        .spoofchk_add("net1", &format!("c{i}"), "eth0", &format!("veth{i}"), [2, 0, 0, 0, 0, i])
                        .unwrap()
                })
            });
        }
    });
    let rs = ns.ruleset();
    assert_eq!(tables(&rs), ["bridge tether-net1"]);
    assert_eq!(objects(&rs, "chain").len(), 1);
    assert_eq!(objects(&rs, "rule").len(), 3);
    assert_eq!(allowed(&rs, "tether-net1").len(), 8);
}

/// A bridge in a node namespace with two containers on it; container 1's port is guarded.
struct Lan {
    node: Netns,
    c1: Netns,
    c2: Netns,
}

impl Lan {
    fn new(tag: &str) -> Lan {
        let lan = Lan {
            node: Netns::new(&format!("{tag}n")),
            c1: Netns::new(&format!("{tag}1")),
            c2: Netns::new(&format!("{tag}2")),
        };
        let node = &lan.node;
        node.ip(&["link", "add", "br0", "type", "bridge"]);
        node.ip(&["link", "set", "br0", "up"]);
        for (port, ctr, addr) in [("hp1", &lan.c1, "198.18.1.2/24"), ("hp2", &lan.c2, "198.18.1.3/24")] {
            node.ip(&["link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &ctr.name]);
            node.ip(&["link", "set", port, "master", "br0", "up"]);
            ctr.ip(&["addr", "add", addr, "dev", "eth0"]);
            ctr.ip(&["link", "set", "eth0", "up"]);
        }
        lan
    }
}

fn mac_of(ns: &Netns, dev: &str) -> [u8; 6] {
    let out = ns.exec(&["ip", "-j", "link", "show", dev]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    parse_mac(v[0]["address"].as_str().unwrap())
}

fn neigh_mac(ns: &Netns, addr: &str) -> Option<String> {
    let out = ns.exec(&["ip", "-j", "neigh", "show", addr]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()?.first()?.get("lladdr")?.as_str().map(str::to_owned)
}

#[test]
fn frames_with_another_source_mac_are_dropped() {
    if !can_run("frames_with_another_source_mac_are_dropped") {
        return;
    }
    let lan = Lan::new("spe2e");
    let mac1 = mac_of(&lan.c1, "eth0");
    assert!(lan.c1.ping("198.18.1.3"), "baseline: the bridge forwards");
    lan.node.run(|| session().spoofchk_add("net1", "c1", "eth0", "hp1", mac1).unwrap());
    assert!(lan.c1.ping("198.18.1.3"), "the container's own MAC passes");

    lan.c1.ip(&["link", "set", "eth0", "address", &fmt_mac(&FAKE)]);
    assert!(!lan.c1.ping("198.18.1.3"), "a spoofed source MAC is dropped");
    // an unguarded port may change its MAC
    lan.c2.ip(&["link", "set", "eth0", "address", &fmt_mac(&MAC2)]);
    lan.c1.ip(&["link", "set", "eth0", "address", &fmt_mac(&mac1)]);
    assert!(lan.c1.ping("198.18.1.3"), "restored MAC passes again, and the unguarded port's new MAC too");

    lan.node.run(|| session().spoofchk_del("net1", "c1", "eth0").unwrap());
    lan.c1.ip(&["link", "set", "eth0", "address", &fmt_mac(&FAKE)]);
    assert!(lan.c1.ping("198.18.1.3"), "after spoofchk_del the port is no longer guarded");
}

/// Send a gratuitous ARP for `ip` from `dev` of the calling thread's namespace: Ethernet source `src`, ARP
/// sender hardware address `sha`.
#[allow(unsafe_code)]
fn send_garp(dev: &str, src: [u8; 6], sha: [u8; 6], ip: [u8; 4]) {
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&[0x08, 0x06]);
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet/IPv4, request
    frame.extend_from_slice(&sha);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&ip);
    frame.resize(60, 0);
    let ifindex = {
        let c = std::ffi::CString::new(dev).unwrap();
        // SAFETY: c is a valid NUL-terminated string for the duration of the call.
        unsafe { libc::if_nametoindex(c.as_ptr()) }
    };
    assert!(ifindex != 0, "no interface {dev}");
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain libc calls on a socket we own; sockaddr_ll is fully initialised before use and passed with
    // its exact size; the frame buffer outlives the call.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
        assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let n = libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        assert_eq!(n, frame.len() as isize, "sendto: {err}");
    }
}

#[test]
fn arp_with_another_sender_mac_is_dropped() {
    if !can_run("arp_with_another_sender_mac_is_dropped") {
        return;
    }
    let lan = Lan::new("sparp");
    let mac1 = mac_of(&lan.c1, "eth0");
    lan.node.run(|| session().spoofchk_add("net1", "c1", "eth0", "hp1", mac1).unwrap());
    assert!(lan.c2.ping("198.18.1.2"), "c2 learns c1's MAC");
    assert_eq!(neigh_mac(&lan.c2, "198.18.1.2"), Some(fmt_mac(&mac1)));

    // Correct Ethernet source, forged ARP sender: only the ARP rule can catch it.
    lan.c1.run(|| send_garp("eth0", mac1, FAKE, [198, 18, 1, 2]));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(neigh_mac(&lan.c2, "198.18.1.2"), Some(fmt_mac(&mac1)), "forged ARP must not reach c2");

    // Control: without the spoof check the same frame does poison c2's cache (so the check above can fail).
    lan.node.run(|| session().spoofchk_del("net1", "c1", "eth0").unwrap());
    lan.c1.run(|| send_garp("eth0", mac1, FAKE, [198, 18, 1, 2]));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(neigh_mac(&lan.c2, "198.18.1.2"), Some(fmt_mac(&FAKE)), "unguarded, the forged ARP is accepted");
}
