//! ADDs killed (SIGKILL) at arbitrary points leave nothing half-written, duplicated or
//! unreleasable: every reservation file is complete, no attachment holds two addresses of one
//! set, and DEL (or a repeated ADD) cleans up after each of them (invariants 3 and 9 of
//! `ipam/src/store/mod.rs`).

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn killed_adds_leave_a_consistent_store() {
    const N: u64 = 60;
    let d = DataDir::new("killed");
    let c =
        conf("1.0.0", "net1", &d.0, json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd7e:7e7e::/64"}]]}));
    // how long a whole ADD takes here; kills land between 20% and 120% of that
    let t0 = std::time::Instant::now();
    assert!(add(TETHER_IPAM, "probe", &c).ok);
    let full = t0.elapsed().as_micros() as u64;
    assert!(del(TETHER_IPAM, "probe", &c).ok);
    let mut seed: u64 = 0x5eed;
    for i in 0..N {
        let mut child = spawn(TETHER_IPAM, "ADD", &format!("kill-{i}"), "eth0", &c, &[]);
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_micros(full / 5 + (seed >> 33) % full.max(1)));
        let _ = child.kill();
        let _ = child.wait();
    }
    // every reservation file is whole and names one attachment, at most one address per family
    let mut per_owner: std::collections::HashMap<String, (usize, usize)> = Default::default();
    for name in d.reservations("net1") {
        let content = d.read("net1", &name);
        let (id, ifname) = content.split_once("\r\n").unwrap_or_else(|| panic!("{name}: {content:?}"));
        assert!(id.starts_with("kill-") && ifname == "eth0", "{name}: {content:?}");
        let e = per_owner.entry(id.to_string()).or_default();
        if name.contains(':') {
            e.1 += 1
        } else {
            e.0 += 1
        }
        assert!(e.0 <= 1 && e.1 <= 1, "{id} holds two addresses of one set");
    }
    eprintln!("{} of {N} killed ADDs left reservations ({} files)", per_owner.len(), d.reservations("net1").len());
    // a repeated ADD completes what a killed one started, and DEL releases everything
    for i in (0..N).step_by(7) {
        let r = add(TETHER_IPAM, &format!("kill-{i}"), &c);
        assert!(r.ok, "{r:?}");
        assert_eq!(r.ips().len(), 2);
    }
    for i in 0..N {
        assert!(del(TETHER_IPAM, &format!("kill-{i}"), &c).ok);
    }
    assert!(d.reservations("net1").is_empty(), "{:?}", d.reservations("net1"));
    assert_eq!(add(TETHER_IPAM, "after", &c).ips().len(), 2);
}
