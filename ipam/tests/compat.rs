//! One store, two plugins: tether-ipam and the reference host-local (`/usr/lib/cni/host-local`)
//! on the same data directory and network name. Each must see, respect and release what the
//! other reserved, and host-local must keep working on a directory that carries our index
//! (invariants 2, 5 and 10 of `ipam/src/store/mod.rs`).

mod common;

use common::*;
use serde_json::{json, Value};

const T: &str = TETHER_IPAM;

fn dual(d: &DataDir) -> Value {
    // host-local 1.1.1 speaks up to CNI 1.0.0
    conf("1.0.0", "shared", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd7e:7e7e::/64"}]]}))
}

#[test]
fn host_local_reservations_are_respected_and_released_by_tether() {
    let Some(hl) = host_local() else { return };
    let d = DataDir::new("hl-first");
    let c = dual(&d);
    let r = add(hl, "hl1", &c);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.ips(), ["198.18.0.2", "fd7e:7e7e::2"]);
    // tether continues host-local's round robin and never hands out its addresses
    assert_eq!(add(T, "t1", &c).ips(), ["198.18.0.3", "fd7e:7e7e::3"]);
    assert!(add(hl, "hl2", &c).ok);
    assert_eq!(add(T, "t2", &c).ips(), ["198.18.0.5", "fd7e:7e7e::5"]);
    // tether sees host-local's reservations for CHECK and a repeated ADD, and releases them
    assert!(invoke(T, "CHECK", "hl1", "eth0", &c, &[]).ok);
    assert_eq!(add(T, "hl1", &c).ips(), ["198.18.0.2", "fd7e:7e7e::2"]);
    assert!(del(T, "hl1", &c).ok);
    assert!(!d.store("shared").join("198.18.0.2").exists());
    assert!(!d.store("shared").join("fd7e:7e7e::2").exists());
    assert_eq!(
        d.reservations("shared"),
        ["198.18.0.3", "198.18.0.4", "198.18.0.5", "fd7e:7e7e::3", "fd7e:7e7e::4", "fd7e:7e7e::5"]
    );
}

#[test]
fn tether_reservations_are_respected_and_released_by_host_local() {
    let Some(hl) = host_local() else { return };
    let d = DataDir::new("tether-first");
    let c = dual(&d);
    assert_eq!(add(T, "t1", &c).ips(), ["198.18.0.2", "fd7e:7e7e::2"]);
    assert_eq!(add(T, "t2", &c).ips(), ["198.18.0.3", "fd7e:7e7e::3"]);
    // host-local works on a directory holding our index, and skips our addresses
    let r = add(hl, "hl1", &c);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.ips(), ["198.18.0.4", "fd7e:7e7e::4"]);
    assert!(invoke(hl, "CHECK", "t1", "eth0", &c, &[]).ok, "host-local finds our reservation");
    assert!(del(hl, "t1", &c).ok);
    assert!(!d.store("shared").join("198.18.0.2").exists());
    // host-local's release is noticed: the address is free for tether again, t1 holds nothing
    assert_eq!(invoke(T, "CHECK", "t1", "eth0", &c, &[]).code(), Some(104));
    assert!(del(hl, "hl1", &c).ok);
    assert!(del(hl, "t2", &c).ok);
    assert!(d.reservations("shared").is_empty(), "{:?}", d.reservations("shared"));
    // the index is still intact for host-local's walk: nothing of ours was taken for a reservation
    assert!(d.store("shared").join(".tether").is_dir());
    assert_eq!(add(T, "t3", &c).ips(), ["198.18.0.5", "fd7e:7e7e::5"]);
}

#[test]
fn interleaved_use_never_hands_out_an_address_twice() {
    let Some(hl) = host_local() else { return };
    let d = DataDir::new("interleaved");
    let c = conf("1.0.0", "shared", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/28"}]]})); // .2-.14
    let mut holders = Vec::new();
    for i in 0..13 {
        let (plugin, id) = if i % 3 == 0 { (hl, format!("h{i}")) } else { (T, format!("t{i}")) };
        let r = add(plugin, &id, &c);
        assert!(r.ok, "{id}: {r:?}");
        holders.push((id, r.ips()[0].clone()));
    }
    let mut addrs: Vec<&String> = holders.iter().map(|(_, a)| a).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 13);
    assert_eq!(add(T, "full", &c).code(), Some(104));
    assert!(!add(hl, "full", &c).ok);
    // each plugin releases the other's reservations
    for (i, (id, addr)) in holders.iter().enumerate() {
        let plugin = if i % 2 == 0 { T } else { hl };
        assert!(del(plugin, id, &c).ok);
        assert!(!d.store("shared").join(addr).exists(), "{id} {addr}");
    }
    assert!(d.reservations("shared").is_empty());
}

#[test]
fn legacy_files_written_by_old_host_local_are_understood() {
    let Some(hl) = host_local() else { return };
    let d = DataDir::new("legacy");
    let c = conf("1.0.0", "shared", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/24"}]]}));
    assert!(add(hl, "seed", &c).ok); // creates the directory and lock the way host-local does
    std::fs::write(d.store("shared").join("198.18.0.9"), "old-ctr").unwrap();
    assert!(invoke(T, "CHECK", "old-ctr", "eth0", &c, &[]).ok);
    assert!(del(T, "old-ctr", &c).ok);
    assert!(!d.store("shared").join("198.18.0.9").exists());
    assert!(del(hl, "seed", &c).ok);
}

#[test]
fn released_files_kept_for_reuse_are_invisible_to_host_local() {
    let Some(hl) = host_local() else { return };
    let d = DataDir::new("spares");
    let c = dual(&d);
    assert_eq!(add(T, "gone", &c).ips(), ["198.18.0.2", "fd7e:7e7e::2"]);
    assert!(del(T, "gone", &c).ok);
    let meta = d.store("shared").join(".tether");
    assert!(meta.join("spare-0").exists(), "tether keeps the released files for reuse");
    // host-local's CHECK and DEL match the content of every file under the store, whatever its
    // name: a kept file must not look like a reservation of "gone"
    let r = invoke(hl, "CHECK", "gone", "eth0", &c, &[]);
    assert!(!r.ok, "host-local still finds a reservation of a released container: {r:?}");
    assert!(del(hl, "gone", &c).ok);
    assert!(meta.join("spare-0").exists(), "host-local's DEL took a kept file for a reservation");
    assert_eq!(add(hl, "h1", &c).ips(), ["198.18.0.3", "fd7e:7e7e::3"]);
    assert_eq!(add(T, "t1", &c).ips(), ["198.18.0.4", "fd7e:7e7e::4"]);
    assert!(!meta.join("spare-0").exists(), "the kept files were reused");
    assert!(invoke(hl, "CHECK", "t1", "eth0", &c, &[]).ok);
    assert!(del(hl, "t1", &c).ok);
    assert!(del(T, "h1", &c).ok);
    assert!(d.reservations("shared").is_empty(), "{:?}", d.reservations("shared"));
}
