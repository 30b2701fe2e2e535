//! Many ADDs at once, as separate processes, on one store: every address handed out once
//! (invariants 2 and 3 of `ipam/src/store/mod.rs`).

mod common;

use common::*;
use serde_json::json;
use std::collections::HashSet;

#[test]
fn parallel_adds_get_distinct_addresses() {
    const N: usize = 128;
    let d = DataDir::new("parallel");
    let c = conf(
        "1.0.0",
        "net1",
        &d.0,
        json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd7e:7e7e::/120"}]]}),
    );
    let children: Vec<_> = (0..N).map(|i| spawn(TETHER_IPAM, "ADD", &format!("par-{i}"), "eth0", &c, &[])).collect();
    let mut seen = HashSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for ip in doc["ips"].as_array().unwrap() {
            assert!(seen.insert(ip["address"].as_str().unwrap().to_string()), "{ip} handed out twice");
        }
    }
    assert_eq!(seen.len(), 2 * N);
    assert_eq!(d.reservations("net1").len(), 2 * N);
    // and every one of them is found again by its owner
    for i in (0..N).step_by(17) {
        assert!(invoke(TETHER_IPAM, "CHECK", &format!("par-{i}"), "eth0", &c, &[]).ok);
    }
}
