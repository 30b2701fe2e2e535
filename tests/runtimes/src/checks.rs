//! What the runtime tests assert about the node: traffic between test-made namespaces only,
//! and nothing of a pod left after it is gone.

use crate::containerd::{Containerd, Pod};
use std::collections::BTreeSet;
use std::net::IpAddr;
use tether_tests::netns::assert_test_address;
use tether_tests::wait::eventually;
use tether_tests::{cmd::Run, Netns};

/// One ping from `run` (a closure running `ping` somewhere), retried while neighbour discovery
/// settles; true when answered.
fn ping_with(mut run: impl FnMut(&[&str]) -> Run, addr: &str) -> bool {
    let ip: IpAddr = addr.parse().unwrap_or_else(|e| panic!("{addr:?}: {e}"));
    assert_test_address(ip);
    let fam = if ip.is_ipv6() { "-6" } else { "-4" };
    eventually(|| run(&["ping", fam, "-n", "-q", "-c1", "-W1", addr]).success())
}

/// `pod` answers a ping from the node (its namespace, where containerd runs).
pub fn node_reaches(node: &Netns, addr: &str) -> bool {
    ping_with(|args| node.exec(args), addr)
}

/// A ping from inside `pod`'s network namespace to `addr` is answered.
pub fn pod_reaches(containerd: &Containerd, pod: &Pod, addr: &str) -> bool {
    ping_with(|args| containerd.nodebox().exec_in_netns(&pod.netns, args), addr)
}

/// The names of the node's veths.
pub fn node_veths(node: &Netns) -> BTreeSet<String> {
    node.links()
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "veth")
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect()
}

/// Panic unless the node holds nothing of `pods`: no veth at all, no IPAM reservation, no
/// nftables rule or element naming a pod's address or sandbox id.
#[track_caller]
pub fn assert_nothing_left(containerd: &Containerd, pods: &[Pod]) {
    let node = &containerd.node;
    // A pod namespace's veth goes when the kernel's namespace clean-up has run: a moment later.
    eventually(|| node_veths(node).is_empty());
    let veths = node_veths(node);
    assert!(veths.is_empty(), "veths left on the node: {veths:?}");
    let reservations = node.reservations();
    assert!(reservations.is_empty(), "IPAM reservations left: {reservations:?}");
    let ruleset = node.nft_text();
    for pod in pods {
        for needle in pod.ips.iter().chain(std::iter::once(&pod.id)) {
            assert!(!ruleset.contains(needle.as_str()), "nftables still names {needle} of pod {}:\n{ruleset}", pod.id);
        }
    }
}
