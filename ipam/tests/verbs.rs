//! tether-ipam as a runtime drives it: ADD, DEL, CHECK, STATUS and GC through the binary.

mod common;

use common::*;
use serde_json::json;

const T: &str = TETHER_IPAM;

#[test]
fn add_returns_one_address_per_set_and_writes_host_local_files() {
    let d = DataDir::new("add");
    let c = conf(
        "1.1.0",
        "net1",
        &d.0,
        json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd7e:7e7e::/64"}]],
               "routes": [{"dst": "0.0.0.0/0"}, {"dst": "198.19.0.0/16", "gw": "198.18.0.1", "mtu": 1400, "priority": 5}]}),
    );
    let r = add(T, "ctr1", &c);
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.doc.unwrap(),
        json!({"cniVersion": "1.1.0",
               "ips": [{"address": "198.18.0.2/24", "gateway": "198.18.0.1"},
                       {"address": "fd7e:7e7e::2/64", "gateway": "fd7e:7e7e::1"}],
               "routes": [{"dst": "0.0.0.0/0"}, {"dst": "198.19.0.0/16", "gw": "198.18.0.1", "mtu": 1400, "priority": 5}]})
    );
    assert_eq!(d.reservations("net1"), ["198.18.0.2", "fd7e:7e7e::2"]);
    assert_eq!(d.read("net1", "198.18.0.2"), "ctr1\r\neth0");
    assert_eq!(d.read("net1", "last_reserved_ip.0"), "198.18.0.2");
    assert_eq!(d.read("net1", "last_reserved_ip.1"), "fd7e:7e7e::2");
    assert_eq!(add(T, "ctr2", &c).ips(), ["198.18.0.3", "fd7e:7e7e::3"]);
}

#[test]
fn result_layout_follows_the_request_version() {
    let d = DataDir::new("versions");
    let ipam = json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd7e:7e7e::/64"}]], "routes": [{"dst": "0.0.0.0/0"}]});
    for (i, v) in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        let r = add(T, &format!("c{i}"), &conf(v, "net1", &d.0, ipam.clone()));
        assert!(r.ok, "{v}: {r:?}");
        let doc = r.doc.unwrap();
        assert_eq!(doc["cniVersion"], *v);
        let (a4, a6) = (format!("198.18.0.{}/24", i + 2), format!("fd7e:7e7e::{}/64", i + 2));
        match *v {
            "0.1.0" | "0.2.0" => {
                assert_eq!(doc["ip4"], json!({"ip": a4, "gateway": "198.18.0.1", "routes": [{"dst": "0.0.0.0/0"}]}));
                assert_eq!(doc["ip6"], json!({"ip": a6, "gateway": "fd7e:7e7e::1"}));
                assert!(doc.get("ips").is_none());
            }
            "0.3.0" | "0.3.1" | "0.4.0" => {
                assert_eq!(doc["ips"][0], json!({"version": "4", "address": a4, "gateway": "198.18.0.1"}));
                assert_eq!(doc["ips"][1], json!({"version": "6", "address": a6, "gateway": "fd7e:7e7e::1"}));
                assert!(doc.get("interfaces").is_none());
            }
            _ => {
                assert_eq!(doc["ips"][0], json!({"address": a4, "gateway": "198.18.0.1"}));
                assert_eq!(doc["routes"], json!([{"dst": "0.0.0.0/0"}]));
            }
        }
    }
}

#[test]
fn repeated_add_returns_the_same_addresses() {
    let d = DataDir::new("readd");
    let c =
        conf("1.0.0", "net1", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd7e:7e7e::/64"}]]}));
    let first = add(T, "ctr1", &c);
    let again = add(T, "ctr1", &c);
    assert!(again.ok, "{again:?}");
    assert_eq!(first.doc, again.doc);
    assert_eq!(d.reservations("net1").len(), 2);
    // another interface of the same container is another attachment
    assert_eq!(invoke(T, "ADD", "ctr1", "eth1", &c, &[]).ips(), ["198.18.0.3", "fd7e:7e7e::3"]);
}

#[test]
fn del_is_idempotent_and_does_not_need_the_store() {
    let d = DataDir::new("del");
    let c = v4(&d.0, "net1", "198.18.0.0/24");
    let r = del(T, "never-added", &c);
    assert!(r.ok && r.doc.is_none(), "{r:?}");
    assert!(!d.store("net1").exists(), "DEL does not create the store");
    add(T, "ctr1", &c);
    add(T, "ctr2", &c);
    assert!(del(T, "ctr1", &c).ok);
    assert_eq!(d.reservations("net1"), ["198.18.0.3"]);
    let twice = del(T, "ctr1", &c);
    assert!(twice.ok && twice.doc.is_none(), "{twice:?}");
    // DEL still works when the ranges no longer validate (it needs only the data dir)
    let broken = conf("1.0.0", "net1", &d.0, json!({"ranges": [[{"subnet": "nonsense"}]]}));
    assert!(del(T, "ctr2", &broken).ok);
    assert!(d.reservations("net1").is_empty());
    // nor when they no longer have the right JSON shape
    add(T, "ctr3", &c);
    let mistyped = conf("1.0.0", "net1", &d.0, json!({"ranges": 5, "routes": "x"}));
    let r = del(T, "ctr3", &mistyped);
    assert!(r.ok, "{r:?}");
    assert!(d.reservations("net1").is_empty());
    std::fs::remove_dir_all(d.store("net1")).unwrap();
    assert!(del(T, "ctr2", &c).ok, "a vanished store is fine");
}

#[test]
fn check_verifies_the_reservation_and_prev_result() {
    let d = DataDir::new("check");
    let c = v4(&d.0, "net1", "198.18.0.0/24");
    let missing = invoke(T, "CHECK", "ctr1", "eth0", &c, &[]);
    assert_eq!(missing.code(), Some(104), "{missing:?}");
    let res = add(T, "ctr1", &c).doc.unwrap();
    let mut with_prev = c.clone();
    with_prev["prevResult"] = res.clone();
    let ok = invoke(T, "CHECK", "ctr1", "eth0", &with_prev, &[]);
    assert!(ok.ok && ok.doc.is_none(), "{ok:?}");
    with_prev["prevResult"]["ips"][0]["address"] = json!("198.18.0.99/24");
    let drift = invoke(T, "CHECK", "ctr1", "eth0", &with_prev, &[]);
    assert_eq!(drift.code(), Some(105));
    assert!(drift.msg().contains("198.18.0.99"), "{}", drift.msg());
    let other = invoke(T, "CHECK", "ctr1", "eth1", &c, &[]);
    assert_eq!(other.code(), Some(104));
    assert!(other.msg().contains("ctr1") && other.msg().contains("eth1"), "{}", other.msg());
}

#[test]
fn requested_addresses_from_every_source() {
    let d = DataDir::new("requested");
    let mut c =
        conf("1.0.0", "net1", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd7e:7e7e::/64"}]]}));
    let r = invoke(T, "ADD", "ctr1", "eth0", &c, &[("CNI_ARGS", "IgnoreUnknown=1;IP=198.18.0.40,fd7e:7e7e::40")]);
    assert_eq!(r.ips(), ["198.18.0.40", "fd7e:7e7e::40"]);
    c["args"] = json!({"cni": {"ips": ["198.18.0.41"]}});
    c["runtimeConfig"] = json!({"ips": ["fd7e:7e7e::41/64"]});
    assert_eq!(add(T, "ctr2", &c).ips(), ["198.18.0.41", "fd7e:7e7e::41"]);
    let taken = invoke(T, "ADD", "ctr3", "eth0", &v4(&d.0, "net1", "198.18.0.0/24"), &[("CNI_ARGS", "IP=198.18.0.40")]);
    assert_eq!(taken.code(), Some(104));
    assert!(taken.msg().contains("198.18.0.40"), "{}", taken.msg());
    let outside =
        invoke(T, "ADD", "ctr3", "eth0", &v4(&d.0, "net1", "198.18.0.0/24"), &[("CNI_ARGS", "IP=198.19.0.1")]);
    assert_eq!(outside.code(), Some(104));
    let gateway =
        invoke(T, "ADD", "ctr3", "eth0", &v4(&d.0, "net1", "198.18.0.0/24"), &[("CNI_ARGS", "IP=198.18.0.1")]);
    assert_eq!(gateway.code(), Some(104));
    assert!(gateway.msg().contains("gateway"), "{}", gateway.msg());
    // two addresses for a one-set network: the leftover fails the ADD and nothing stays reserved
    let before = d.reservations("net1");
    let leftover = invoke(
        T,
        "ADD",
        "ctr4",
        "eth0",
        &v4(&d.0, "net1", "198.18.0.0/24"),
        &[("CNI_ARGS", "IP=198.18.0.50,198.18.0.51")],
    );
    assert_eq!(leftover.code(), Some(104), "{leftover:?}");
    assert_eq!(d.reservations("net1"), before);
}

#[test]
fn configuration_errors_are_code_7() {
    let d = DataDir::new("config");
    for ipam in [
        json!({}),
        json!({"ranges": [[{"subnet": "198.18.0.1/24"}]]}),
        json!({"ranges": [[{"subnet": "198.18.0.0/32"}]]}),
        json!({"ranges": [[{"subnet": "198.18.0.0/24", "gateway": "198.19.0.1"}]]}),
        json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "198.18.0.0/25"}]]}),
    ] {
        let r = add(T, "ctr1", &conf("1.0.0", "net1", &d.0, ipam.clone()));
        assert_eq!(r.code(), Some(7), "{ipam}: {r:?}");
    }
    assert!(!d.store("net1").exists());
}

#[test]
fn resolv_conf_becomes_dns() {
    let d = DataDir::new("dns");
    let path = d.0.join("resolv.conf");
    std::fs::write(&path, "nameserver 198.18.0.53\nsearch a.test b.test\noptions ndots:2\n").unwrap();
    let c = conf("1.0.0", "net1", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/24"}]], "resolvConf": path}));
    let doc = add(T, "ctr1", &c).doc.unwrap();
    assert_eq!(
        doc["dns"],
        json!({"nameservers": ["198.18.0.53"], "search": ["a.test", "b.test"], "options": ["ndots:2"]})
    );
}

#[test]
fn gc_keeps_exactly_the_valid_attachments() {
    let d = DataDir::new("gc");
    let c = conf("1.1.0", "net1", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/24"}]]}));
    for id in ["a", "b", "c"] {
        add(T, id, &c);
    }
    invoke(T, "ADD", "b", "eth1", &c, &[]);
    std::fs::write(d.store("net1").join("198.18.0.100"), "a").unwrap(); // legacy file of container a
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] =
        json!([{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth1"}]);
    let r = invoke(T, "GC", "", "", &gc, &[]);
    assert!(r.ok && r.doc.is_none(), "{r:?}");
    assert_eq!(d.reservations("net1"), ["198.18.0.100", "198.18.0.2", "198.18.0.5"]);
    assert!(d.store("net1").join("lock").exists() && d.store("net1").join("last_reserved_ip.0").exists());
    // no valid attachments at all: everything of the network is stale
    assert!(invoke(T, "GC", "", "", &c, &[]).ok);
    assert!(d.reservations("net1").is_empty());
    // the index followed: the released addresses are handed out again
    assert_eq!(add(T, "z", &c).ips(), ["198.18.0.6"]);
}

#[test]
fn status_reports_exhaustion_with_code_50() {
    let d = DataDir::new("status");
    let c =
        conf("1.1.0", "net1", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/29"}], [{"subnet": "fd7e:7e7e::/64"}]]}));
    let r = invoke(T, "STATUS", "", "", &c, &[]);
    assert!(r.ok && r.doc.is_none(), "{r:?}");
    for i in 0..5 {
        assert!(add(T, &format!("c{i}"), &c).ok); // .2 .. .6
    }
    let full = invoke(T, "STATUS", "", "", &c, &[]);
    assert_eq!(full.code(), Some(50), "{full:?}");
    assert!(full.msg().contains("range set 0") && full.msg().contains("198.18.0.1-198.18.0.6"), "{}", full.msg());
    assert_eq!(add(T, "c9", &c).code(), Some(104));
    del(T, "c3", &c);
    assert!(invoke(T, "STATUS", "", "", &c, &[]).ok);
    // a data dir that cannot be a directory
    let file = d.0.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let bad = conf("1.1.0", "net1", &file, json!({"ranges": [[{"subnet": "198.18.0.0/24"}]]}));
    assert_eq!(invoke(T, "STATUS", "", "", &bad, &[]).code(), Some(50));
}

#[test]
fn cni_args_with_empty_values_are_accepted_like_host_local() {
    let d = DataDir::new("emptyargs");
    let c = v4(&d.0, "net1", "198.18.0.0/24");
    let args = [("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=;K8S_POD_UID=;IP=")];
    let mut plugins = vec![T];
    plugins.extend(host_local());
    for (i, plugin) in plugins.into_iter().enumerate() {
        let r = invoke(plugin, "ADD", &format!("c{i}"), "eth0", &c, &args);
        assert!(r.ok, "{plugin}: {r:?}");
    }
    let bad = invoke(T, "ADD", "c9", "eth0", &c, &[("CNI_ARGS", "IgnoreUnknown=1;IP=not-an-ip")]);
    assert_eq!(bad.code(), Some(4), "{bad:?}");
    assert!(bad.msg().contains("IP="), "the message names the key: {bad:?}");
}

#[test]
fn status_of_a_network_with_only_runtime_ranges_is_available() {
    let d = DataDir::new("statusrt");
    // ranges only through the ipRanges capability, which libcni's STATUS does not pass
    let c = conf("1.1.0", "net1", &d.0, json!({}));
    let r = invoke(T, "STATUS", "", "", &c, &[]);
    assert!(r.ok && r.doc.is_none(), "{r:?}");
    assert!(!d.store("net1").exists(), "STATUS created the store");
    let mut with_ranges = c.clone();
    with_ranges["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "198.18.0.0/24"}]]});
    assert_eq!(add(T, "c1", &with_ranges).ips(), ["198.18.0.2"]);
    assert!(invoke(T, "STATUS", "", "", &c, &[]).ok);
    // ADD still needs ranges from somewhere
    assert_eq!(add(T, "c2", &c).code(), Some(7));
}

/// Invariant 2 of `ipam/src/store/mod.rs`: STATUS takes the lock shared and writes nothing.
#[test]
fn status_only_reads_the_store() {
    let d = DataDir::new("statusro");
    let c = conf("1.1.0", "net1", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/29"}]]}));
    assert!(invoke(T, "STATUS", "", "", &c, &[]).ok);
    assert!(!d.store("net1").exists(), "STATUS created the store");
    for i in 0..3 {
        assert!(add(T, &format!("c{i}"), &c).ok); // .2 .. .4: the index is sealed
    }
    let Some(hl) = host_local() else { return };
    let mut hc = c.clone(); // Debian's host-local (1.1.1) speaks up to 1.0.0
    hc["cniVersion"] = json!("1.0.0");
    for i in 3..5 {
        let r = add(hl, &format!("h{i}"), &hc); // .5 .6: the seal is broken
        assert!(r.ok, "host-local ADD: {r:?}");
    }
    let before = snapshot_tree(&d.0);
    let full = invoke(T, "STATUS", "", "", &c, &[]);
    assert_eq!(full.code(), Some(50), "host-local's reservations count without a rebuild: {full:?}");
    assert_eq!(snapshot_tree(&d.0), before, "STATUS wrote to the store (rebuilt its index?)");
    assert!(del(hl, "h4", &hc).ok);
    let before = snapshot_tree(&d.0);
    assert!(invoke(T, "STATUS", "", "", &c, &[]).ok);
    assert_eq!(snapshot_tree(&d.0), before);
}

#[test]
fn symlinks_in_the_store_are_never_written_through() {
    let d = DataDir::new("symlinks");
    let c = conf("1.1.0", "net1", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/28"}]]}));
    assert!(add(T, "c0", &c).ok);
    let outside_file = d.0.join("outside");
    let outside_dir = d.0.join("outside-dir");
    std::fs::write(&outside_file, "untouched").unwrap();
    std::fs::create_dir(&outside_dir).unwrap();
    let store = d.store("net1");
    let plant = |name: &str, to: &std::path::Path| {
        let path = store.join(name);
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(to, &path).unwrap();
    };
    plant("last_reserved_ip.0", &outside_file);
    plant(".tether", &outside_dir);
    plant("198.18.0.9", &outside_file);
    for (verb, id) in [("ADD", "c1"), ("ADD", "c2"), ("DEL", "c1"), ("GC", ""), ("STATUS", "")] {
        let r = invoke(T, verb, id, if id.is_empty() { "" } else { "eth0" }, &c, &[]);
        assert!(r.ok, "{verb} {id}: {r:?}");
    }
    assert_eq!(std::fs::read_to_string(&outside_file).unwrap(), "untouched", "written through a symlink");
    assert_eq!(std::fs::read_dir(&outside_dir).unwrap().count(), 0, "the index went through the .tether symlink");
    assert!(std::fs::symlink_metadata(store.join(".tether")).unwrap().is_dir(), ".tether is a directory again");
}
