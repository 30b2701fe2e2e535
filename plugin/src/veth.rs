//! The container's veth pair: the node end's deterministic name (so DEL and CHECK find it
//! without the container's namespace, and a collision is a real error rather than something to
//! retry), and its creation in one request with the peer born inside the container.

use crate::attach::{Attachment, Undo};
use crate::error::{Doing, Error, Result};
use crate::netlink::link::{link_of, Link, VethSpec};
use crate::netlink::Netlink;
use crate::sysctl;
use conf::hash::fnv1a64;

/// `veth` + 11 hex digits of a hash of (network, container ID, ifname): 15 bytes, the kernel's
/// limit. The `veth` prefix is what NetworkManager leaves alone.
pub fn host_veth_name(network: &str, container_id: &str, ifname: &str) -> String {
    // A separator that cannot occur in validated names keeps ("ab","c") != ("a","bc").
    let parts = network.bytes().chain([0xff]).chain(container_id.bytes()).chain([0xff]).chain(ifname.bytes());
    let hex = format!("{:016x}", fnv1a64(parts));
    format!("veth{}", &hex[..11])
}

/// The alias (`IFLA_IFALIAS`) of every node end of `network`: `tether/<network>`, or
/// `tether/#<hash>` for a name too long for the kernel's 255 bytes. GC finds the network's node
/// ends by it, so it never touches another network's links or anything tether did not create
/// (the link group alone could be another network's: it is a 24-bit hash).
pub fn node_end_alias(network: &str) -> String {
    const IFALIAS_MAX: usize = 255;
    let alias = format!("tether/{network}");
    if alias.len() <= IFALIAS_MAX {
        alias
    } else {
        format!("tether/#{:016x}", fnv1a64(network.bytes()))
    }
}

/// Create the attachment's pair (node end up, in the network's group, enslaved to `master` when
/// given; the peer inside the container with the requested MAC) and read back both ends.
///
/// Without `node_end_ipv6` the node end has IPv6 disabled and generates no IPv6 address: a bridge
/// port or the node end of an IPv4-only attachment needs neither, and each node end with IPv6 on
/// brings routes to the node's IPv6 table (its multicast route, its link-local address's), which
/// the kernel walks whole on every link change of a link without carrier (`rt6_sync_down_dev` ->
/// `fib6_clean_all`; `perf record` of a ptp ADD on a node with 1,000 attachments: 35-40% of its
/// CPU in `fib6_ifdown`; bench/probes/requests.sh, bridge, 1,000 ports: the alias request, which
/// is such a change, took 3.2 ms). Both are set before the container's end comes up: the node end
/// has no carrier, so no IPv6 configuration, until then.
pub async fn create_pair(
    node: &Netlink,
    att: &Attachment<'_>,
    undo: &mut Undo,
    master: Option<u32>,
    node_end_ipv6: bool,
) -> Result<(Link, Link)> {
    let spec = VethSpec {
        host_name: &att.host_veth,
        peer_name: att.ifname(),
        peer_netns_fd: Some(att.netns.raw_fd()),
        mtu: att.conf.mtu,
        peer_mac: att.conf.mac.map(|m| m.to_vec()),
        host_master: master,
        host_group: Some(att.group),
    };
    if let Err(e) = node.create_veth(&spec).await {
        if e.is_exists() {
            return Err(explain_exists(node, att).await);
        }
        return Err(Error::kernel(format!("create veth pair {} / {}", att.host_veth, att.ifname()), e));
    }
    undo.host_veth = Some(att.host_veth.clone());
    // A node end just created holds the namespace's default (IPv6 on): written without a read.
    // The key is missing only when the node runs no IPv6.
    let no_ipv6_addresses =
        !node_end_ipv6 && sysctl::set(&format!("net/ipv6/conf/{}/disable_ipv6", att.host_veth), "1")?;
    // The node end's alias and its read-back in one datagram, the container end's read at the same time.
    let mut node_side = node.batch();
    let alias = node_side.mark(&att.host_veth, &node_end_alias(att.network()), no_ipv6_addresses);
    let read_back = node_side.get_link_by_name(&att.host_veth);
    let (node_side, container) = tokio::join!(node_side.send(), att.ctr.link_by_name(att.ifname()));
    let mut outcomes = node_side.doing(format!("set up {}", att.host_veth))?;
    outcomes.take(alias).doing(format!("set the alias of {}", att.host_veth))?;
    let host = outcomes.take(read_back).map(link_of).doing(format!("read {}", att.host_veth))?;
    let missing = |what: &str| Error::kernel_state(format!("{what} vanished right after its creation"), false);
    let host = host.ok_or_else(|| missing(&att.host_veth))?;
    let container = container.doing(format!("read {}", att.ifname()))?.ok_or_else(|| missing(att.ifname()))?;
    Ok((host, container))
}

/// EEXIST from the pair creation: say which name is taken, so the operator knows what to fix.
async fn explain_exists(node: &Netlink, att: &Attachment<'_>) -> Error {
    if let Ok(Some(_)) = att.ctr.link_by_name(att.ifname()).await {
        return Error::Taken(format!("interface {} already exists in {}", att.ifname(), att.netns.path().display()));
    }
    if let Ok(Some(_)) = node.link_by_name(&att.host_veth).await {
        let hint = format!("a previous ADD of container {} / {} was not deleted", att.container_id(), att.ifname());
        return Error::Taken(format!("node interface {} already exists", att.host_veth)).hint(hint);
    }
    Error::Taken(format!("create veth pair {} / {}: File exists", att.host_veth, att.ifname()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_ifnamsiz_and_is_stable() {
        let name = host_veth_name("routed", "c1", "eth0");
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("veth"));
        // Stable across releases: DEL must find what an older ADD created.
        assert_eq!(name, "vethf7720859fa1");
    }

    #[test]
    fn aliases_name_the_network_within_the_kernel_limit() {
        assert_eq!(node_end_alias("routed"), "tether/routed");
        let long = node_end_alias(&"n".repeat(300));
        assert!(long.starts_with("tether/#") && long.len() < 255, "{long}");
        assert_ne!(long, node_end_alias(&"m".repeat(300)));
    }

    #[test]
    fn every_part_matters() {
        let base = host_veth_name("n", "c1", "eth0");
        assert_ne!(base, host_veth_name("m", "c1", "eth0"));
        assert_ne!(base, host_veth_name("n", "c2", "eth0"));
        assert_ne!(base, host_veth_name("n", "c1", "eth1"));
        assert_ne!(host_veth_name("ab", "c", "x"), host_veth_name("a", "bc", "x"));
    }
}
