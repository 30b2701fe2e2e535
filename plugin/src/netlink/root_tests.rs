//! Root tests of the netlink layer, for real: every test runs on a thread of its own that has
//! moved into a new, empty "node" namespace (`testns::in_new_netns`), and makes a second new
//! namespace as the "container". Nothing touches the machine's own namespace; both namespaces
//! die with their last file descriptor. Observations go through `ip -j`, not through the layer
//! under test. Addresses: 198.18.0.0/15 and fd7e:7e7e::/32 only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::addr::AddrFlags;
use super::link::VethSpec;
use super::route::{scope, RouteSpec};
use super::{Netlink, NlError};
use crate::netns::{self, Netns};
use crate::testns::{in_new_netns, json, new_netns, tool};
use ipnet::IpNet;
use nix::errno::Errno;
use serde_json::Value;

/// A netlink connection inside `ns`, opened as the plugin opens it (switched for the
/// synchronous connect only).
fn connect_in(ns: &Netns) -> Netlink {
    let _inside = ns.enter().unwrap();
    Netlink::connect().unwrap()
}

/// `ip -j <args>` inside `ns`.
fn ip_in(ns: &Netns, args: &[&str]) -> Value {
    netns::run_in(ns, || Ok(json("ip", args))).unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A pair `host` (here, up) / `peer` (in `ctr`, down), MTU 1400.
fn spec<'a>(host: &'a str, peer: &'a str, ctr: &Netns) -> VethSpec<'a> {
    VethSpec {
        host_name: host,
        peer_name: peer,
        peer_netns_fd: Some(ctr.raw_fd()),
        mtu: Some(1400),
        peer_mac: None,
        host_master: None,
        host_group: None,
    }
}

/// The `addr_info` entry of `local` on `dev` in `ns` (`None` when absent).
fn addr_info(ns: &Netns, dev: &str, local: &str) -> Option<Value> {
    let doc = ip_in(ns, &["addr", "show", "dev", dev]);
    doc.as_array()?
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .find(|a| a["local"] == local)
}

/// The routes of `ns` (`ip -j [-6] route show table all`) whose `dst` is `dst`.
fn routes_to(ns: &Netns, v6: bool, dst: &str) -> Vec<Value> {
    let args: &[&str] = if v6 { &["-6", "route", "show", "table", "all"] } else { &["route", "show", "table", "all"] };
    ip_in(ns, args).as_array().cloned().unwrap_or_default().into_iter().filter(|r| r["dst"] == dst).collect()
}

#[test]
fn the_peer_is_born_inside_the_container_namespace() {
    in_new_netns("the_peer_is_born_inside_the_container_namespace", |nl| async move {
        let ctr_ns = new_netns();
        let ctr = connect_in(&ctr_ns);
        nl.create_veth(&spec("vethnlt0", "eth0", &ctr_ns)).await.unwrap();

        let host = nl.link_by_name("vethnlt0").await.unwrap().expect("host end");
        assert_eq!((host.kind.as_deref(), host.mtu, host.up), (Some("veth"), Some(1400), true));
        assert!(nl.link_by_name("eth0").await.unwrap().is_none(), "eth0 must never exist on the node");
        let peer = ctr.link_by_name("eth0").await.unwrap().expect("container end");
        assert_eq!((peer.kind.as_deref(), peer.mtu, peer.up), (Some("veth"), Some(1400), false));
        assert_eq!(peer.mac.as_ref().map(Vec::len), Some(6));
        assert_eq!(ctr.link_by_index(peer.index).await.unwrap().map(|l| l.name), Some("eth0".to_string()));
        assert_eq!(nl.link_by_index(host.index).await.unwrap().map(|l| l.name), Some("vethnlt0".to_string()));

        // Independent view: `ip` sees the same, and the peer's link-netns is the node.
        let links = ip_in(&ctr_ns, &["link", "show", "dev", "eth0"]);
        assert_eq!(links[0]["mtu"], 1400, "{links}");
        assert_eq!(links[0]["address"].as_str(), peer.mac_string().as_deref(), "{links}");
        // Made with one queue each (see `one_queue_each`), not one per CPU cut down afterwards.
        for (ns, dev) in [(&ctr_ns, "eth0"), (&Netns::current().unwrap(), "vethnlt0")] {
            let details = ip_in(ns, &["-d", "link", "show", "dev", dev]);
            assert_eq!(
                (&details[0]["num_tx_queues"], &details[0]["num_rx_queues"]),
                (&1.into(), &1.into()),
                "{details}"
            );
        }
    });
}

#[test]
fn a_taken_name_fails_with_eexist_and_creates_nothing() {
    in_new_netns("a_taken_name_fails_with_eexist_and_creates_nothing", |nl| async move {
        let ctr_ns = new_netns();
        let ctr = connect_in(&ctr_ns);
        // The container already has an eth0 (someone else's).
        netns::run_in(&ctr_ns, || Ok(tool("ip", &["link", "add", "eth0", "type", "veth", "peer", "name", "theirs"])))
            .unwrap();
        let theirs = ctr.link_by_name("eth0").await.unwrap().unwrap();

        let err = nl.create_veth(&spec("vethnlt1", "eth0", &ctr_ns)).await.unwrap_err();
        assert!(err.is_exists(), "{err} / {:?}", err.errno);
        assert!(nl.link_by_name("vethnlt1").await.unwrap().is_none(), "the node end must not be left behind");
        assert_eq!(ctr.link_by_name("eth0").await.unwrap(), Some(theirs), "their eth0 must be untouched");

        // The node name taken: the same, and no eth1 appears in the container.
        tool("ip", &["link", "add", "vethnlt2", "type", "veth", "peer", "name", "vethnlt2p"]);
        let err = nl.create_veth(&spec("vethnlt2", "eth1", &ctr_ns)).await.unwrap_err();
        assert!(err.is_exists(), "{err}");
        assert!(ctr.link_by_name("eth1").await.unwrap().is_none());
    });
}

#[test]
fn addresses_are_usable_at_once_and_bring_no_prefix_route() {
    in_new_netns("addresses_are_usable_at_once_and_bring_no_prefix_route", |nl| async move {
        let ctr_ns = new_netns();
        let ctr = connect_in(&ctr_ns);
        nl.create_veth(&spec("vethnlt3", "eth0", &ctr_ns)).await.unwrap();
        let eth0 = ctr.link_by_name("eth0").await.unwrap().unwrap();
        let flags = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
        let (v4, v6) = (net("198.18.5.2/24"), net("fd7e:7e7e:5::2/64"));
        ctr.add_addr(eth0.index, v4, flags).await.unwrap();
        ctr.add_addr(eth0.index, v6, flags).await.unwrap();
        ctr.set_up(eth0.index).await.unwrap();

        let a6 = addr_info(&ctr_ns, "eth0", "fd7e:7e7e:5::2").expect("IPv6 address");
        assert_eq!((a6["nodad"].as_bool(), a6["noprefixroute"].as_bool()), (Some(true), Some(true)), "{a6}");
        assert_ne!(a6["tentative"], true, "NODAD: usable without duplicate address detection: {a6}");
        let a4 = addr_info(&ctr_ns, "eth0", "198.18.5.2").expect("IPv4 address");
        assert_eq!((a4["prefixlen"].as_u64(), a4["broadcast"].as_str()), (Some(24), Some("198.18.5.255")), "{a4}");
        assert!(routes_to(&ctr_ns, false, "198.18.5.0/24").is_empty(), "no kernel prefix route (IPv4)");
        assert!(routes_to(&ctr_ns, true, "fd7e:7e7e:5::/64").is_empty(), "no kernel prefix route (IPv6)");

        let infos = ctr.addr_infos(eth0.index).await.unwrap();
        assert!(infos.iter().any(|a| a.net == v6 && !a.tentative && !a.dad_failed), "{infos:?}");
        assert!(ctr.addrs_of(eth0.index).await.unwrap().contains(&v4));

        // The kernel itself filters the dump by link: lo's addresses never reach us.
        let lo = ctr.link_by_name("lo").await.unwrap().unwrap();
        ctr.set_up(lo.index).await.unwrap();
        let replies = ctr.dump(super::addr::address_dump(eth0.index)).await.unwrap();
        assert!(!replies.is_empty());
        for reply in &replies {
            let netlink_packet_route::RouteNetlinkMessage::NewAddress(a) = reply else { panic!("{reply:?}") };
            assert_eq!(a.header.index, eth0.index, "an address of another link in the dump: {a:?}");
        }

        // Twice: EEXIST. Deleted: gone; deleting again: not found.
        assert!(ctr.add_addr(eth0.index, v4, flags).await.unwrap_err().is_exists());
        ctr.delete_addr(eth0.index, v4).await.unwrap();
        assert!(addr_info(&ctr_ns, "eth0", "198.18.5.2").is_none());
        let err = ctr.delete_addr(eth0.index, v4).await.unwrap_err();
        assert!(err.is_not_found(), "{err} / {:?}", err.errno);
    });
}

#[test]
fn routes_carry_scope_source_gateway_table_and_metric() {
    in_new_netns("routes_carry_scope_source_gateway_table_and_metric", |nl| async move {
        let ctr_ns = new_netns();
        let ctr = connect_in(&ctr_ns);
        nl.create_veth(&spec("vethnlt4", "eth0", &ctr_ns)).await.unwrap();
        let host = nl.link_by_name("vethnlt4").await.unwrap().unwrap();
        let eth0 = ctr.link_by_name("eth0").await.unwrap().unwrap();
        let flags = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
        ctr.add_addr(eth0.index, net("198.18.6.2/24"), flags).await.unwrap();
        ctr.set_up(eth0.index).await.unwrap();
        let (ip, gw) = ("198.18.6.2".parse().unwrap(), "198.18.6.1".parse().unwrap());

        // The ptp shapes: on-link gateway, subnet via gateway, a 1.1 route with table and metric.
        let onlink = RouteSpec { src: Some(ip), scope: scope::LINK, ..RouteSpec::via(net("198.18.6.1/32"), None) };
        let subnet = RouteSpec { src: Some(ip), ..RouteSpec::via(net("198.18.6.0/24"), Some(gw)) };
        let extra = RouteSpec { table: Some(100), priority: Some(7), ..RouteSpec::via(net("198.19.0.0/16"), Some(gw)) };
        for r in [&onlink, &subnet, &extra] {
            ctr.add_route(eth0.index, r).await.unwrap();
        }
        let r = &routes_to(&ctr_ns, false, "198.18.6.1")[0];
        assert_eq!(
            (r["scope"].as_str(), r["prefsrc"].as_str(), r["dev"].as_str()),
            (Some("link"), Some("198.18.6.2"), Some("eth0"))
        );
        let r = &routes_to(&ctr_ns, false, "198.18.6.0/24")[0];
        assert_eq!((r["gateway"].as_str(), r["prefsrc"].as_str()), (Some("198.18.6.1"), Some("198.18.6.2")), "{r}");
        let r = &routes_to(&ctr_ns, false, "198.19.0.0/16")[0];
        assert_eq!((r["table"].as_str(), r["metric"].as_u64()), (Some("100"), Some(7)), "{r}");
        let listed = ctr.routes().await.unwrap();
        assert!(listed.iter().any(|r| r.dst == net("198.19.0.0/16") && r.table == 100 && r.gw == Some(gw)));
        assert!(ctr.add_route(eth0.index, &subnet).await.unwrap_err().is_exists());

        // The node side: host route to the container address, scope host.
        let host_route = RouteSpec { scope: scope::HOST, ..RouteSpec::via(net("198.18.6.2/32"), None) };
        nl.add_route(host.index, &host_route).await.unwrap();
        let r = &json("ip", &["route", "show", "198.18.6.2"])[0];
        assert_eq!((r["dev"].as_str(), r["scope"].as_str()), (Some("vethnlt4"), Some("host")), "{r}");
        // The lookup CHECK uses: through the node end, or nothing (no default route here).
        assert_eq!(nl.route_oif("198.18.6.2".parse().unwrap()).await.unwrap(), Some(host.index));
        assert_eq!(nl.route_oif("198.19.255.1".parse().unwrap()).await.unwrap(), None);
        assert_eq!(nl.route_oif("fd7e:7e7e:6::9".parse().unwrap()).await.unwrap(), None);
    });
}

#[test]
fn deleting_a_veth_end_removes_the_pair_and_missing_objects_are_not_found() {
    in_new_netns("deleting_a_veth_end_removes_the_pair_and_missing_objects_are_not_found", |nl| async move {
        let ctr_ns = new_netns();
        let ctr = connect_in(&ctr_ns);
        nl.create_veth(&spec("vethnlt5", "eth0", &ctr_ns)).await.unwrap();
        nl.delete_link("vethnlt5").await.unwrap();
        assert!(ctr.link_by_name("eth0").await.unwrap().is_none(), "the container end goes with the node end");

        // ENODEV for links (DEL relies on it being "not found", never an error).
        let err = nl.delete_link("vethnlt5").await.unwrap_err();
        assert_eq!((err.errno, err.is_not_found()), (Some(Errno::ENODEV), true), "{err}");
        assert!(nl.link_by_name("nosuchlink").await.unwrap().is_none());
        assert!(nl.link_by_index(999_999).await.unwrap().is_none());
        let err = nl.set_up(999_999).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
    });
}

#[test]
fn link_state_is_current_right_after_the_container_end_comes_up() {
    in_new_netns("link_state_is_current_right_after_the_container_end_comes_up", |nl| async move {
        let ctr_ns = new_netns();
        let ctr = connect_in(&ctr_ns);
        nl.create_veth(&spec("vethnlt6", "eth0", &ctr_ns)).await.unwrap();
        let host = nl.link_by_name("vethnlt6").await.unwrap().unwrap();
        let eth0 = ctr.link_by_name("eth0").await.unwrap().unwrap();
        // Index 2 on both sides (fresh namespaces): the case where the kernel defers the carrier.
        assert_eq!((host.index, eth0.index), (2, 2));
        assert!(!ctr.sync_link_state(eth0.index).await.unwrap(), "down before it is set up");
        ctr.set_up(eth0.index).await.unwrap();
        let (c, h) = tokio::join!(ctr.sync_link_state(eth0.index), nl.sync_link_state(host.index));
        let (c, h) = (c.unwrap(), h.unwrap());
        if crate::kernel::at_least(6, 8) {
            assert!(c && h, "RTM_GETLINK applies the pending carrier change since 6.8 (container {c}, node {h})");
            // And IPv6 considers the container end ready at once: it has its multicast route.
            let mcast = ip_in(&ctr_ns, &["-6", "route", "show", "table", "local", "ff00::/8"]);
            assert_eq!(mcast.as_array().map(Vec::len), Some(1), "{mcast}");
        }
    });
}

#[test]
fn a_seeded_neighbour_is_stale_with_the_given_mac() {
    in_new_netns("a_seeded_neighbour_is_stale_with_the_given_mac", |nl| async move {
        let ctr_ns = new_netns();
        let ctr = connect_in(&ctr_ns);
        nl.create_veth(&spec("vethnlt7", "eth0", &ctr_ns)).await.unwrap();
        let host = nl.link_by_name("vethnlt7").await.unwrap().unwrap();
        // Both ends up first, as ptp seeds them: on a pair left without carrier, the kernel's deferred carrier-off
        // event (linkwatch, up to a second after creation before 6.8) flushes the device's neighbours, which made
        // this test fail now and then on 6.1.
        let eth0 = ctr.link_by_name("eth0").await.unwrap().unwrap();
        nl.set_up(host.index).await.unwrap();
        ctr.set_up(eth0.index).await.unwrap();
        let mac = [0x02, 0x7e, 0, 0, 0, 7];
        nl.seed_neighbour(host.index, "fd7e:7e7e:7::2".parse().unwrap(), &mac).await.unwrap();
        // Seeding again replaces, it does not fail.
        nl.seed_neighbour(host.index, "fd7e:7e7e:7::2".parse().unwrap(), &mac).await.unwrap();
        let n = json("ip", &["-6", "neigh", "show", "dev", "vethnlt7"]);
        assert_eq!(n[0]["dst"], "fd7e:7e7e:7::2", "{n}");
        assert_eq!(n[0]["lladdr"], "02:7e:00:00:00:07", "{n}");
        assert_eq!(n[0]["state"][0], "STALE", "{n}");
    });
}

#[test]
fn a_batch_runs_in_order_and_reports_each_request() {
    in_new_netns("a_batch_runs_in_order_and_reports_each_request", |nl| async move {
        let ctr_ns = new_netns();
        let ctr = connect_in(&ctr_ns);
        nl.create_veth(&spec("vethnlt8", "eth0", &ctr_ns)).await.unwrap();
        let eth0 = ctr.link_by_name("eth0").await.unwrap().unwrap();
        let flags = AddrFlags { no_prefix_route: true, ..AddrFlags::default() };
        let src = "198.18.8.2".parse().unwrap();
        let route = RouteSpec { src: Some(src), scope: scope::LINK, ..RouteSpec::via(net("198.18.8.1/32"), None) };

        // Each request depends on the one before (the route needs the address as its source
        // and the link up); the second address is a duplicate, and only it fails.
        let mut batch = ctr.batch();
        let first = batch.add_addr(eth0.index, net("198.18.8.2/24"), flags);
        let duplicate = batch.add_addr(eth0.index, net("198.18.8.2/24"), flags);
        let up = batch.set_up(eth0.index);
        let get = batch.get_link(eth0.index);
        let route_slot = batch.add_route(eth0.index, &route);
        let mut outcomes = batch.send().await.unwrap();
        // Read out of order: each answer is its own request's.
        assert!(outcomes.take(route_slot).is_ok());
        let got = outcomes.take(get).unwrap();
        assert_eq!(super::link::link_of(got).map(|l| (l.name, l.up)), Some(("eth0".to_string(), true)));
        assert!(outcomes.error(duplicate).is_some_and(NlError::is_exists));
        assert!(outcomes.take(duplicate).is_err());
        assert!(outcomes.take(first).is_ok_and(|r| r.is_empty()));
        assert!(outcomes.take(up).is_ok());
        // Each outcome is taken once; a second take is an error, not another request's answer.
        assert!(outcomes.take(first).is_err());
        assert_eq!(routes_to(&ctr_ns, false, "198.18.8.1")[0]["prefsrc"], "198.18.8.2");

        // An empty batch sends nothing and answers at once.
        let mut empty = ctr.batch().send().await.unwrap();
        assert!(empty.take(first).is_err());
    });
}
