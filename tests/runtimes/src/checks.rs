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

/// A ping from the node's namespace (where the runtime runs) to `addr` is answered.
pub fn node_reaches(node: &Netns, addr: &str) -> bool {
    ping_with(|args| node.exec(args), addr)
}

/// A ping from inside `pod`'s network namespace to `addr` is answered.
pub fn pod_reaches(containerd: &Containerd, pod: &Pod, addr: &str) -> bool {
    ping_with(|args| containerd.nodebox().exec_in_netns(&pod.netns, args), addr)
}

/// `ip` (an address) lies inside `cidr` (`addr/prefix`, same family).
pub fn in_subnet(ip: &str, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else { return false };
    let (Ok(ip), Ok(net), Ok(len)) = (ip.parse::<IpAddr>(), net.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    let (ip, net, bits) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    if len > bits {
        return false;
    }
    let host_bits = bits - len;
    host_bits >= 128 || (ip >> host_bits) == (net >> host_bits)
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

#[cfg(test)]
mod tests {
    use super::in_subnet;

    #[test]
    fn subnets() {
        assert!(in_subnet("198.18.40.7", "198.18.40.0/24"));
        assert!(!in_subnet("198.18.41.7", "198.18.40.0/24"));
        assert!(in_subnet("fd7e:7e7e:28::3", "fd7e:7e7e:28::/64"));
        assert!(!in_subnet("fd7e:7e7e:29::3", "fd7e:7e7e:28::/64"));
        assert!(!in_subnet("198.18.40.7", "fd7e:7e7e:28::/64"));
        assert!(in_subnet("198.18.40.7", "0.0.0.0/0"));
    }
}
