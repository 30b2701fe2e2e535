//! Root tests of the ptp recipe ([`super::wire`]) without IPAM: on a thread of its own that has
//! moved into a new "node" namespace, with a second new namespace as the container. Traffic goes
//! only between these two namespaces, over 198.18.0.0/15 and fd7e:7e7e::/32.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::attach::{Attachment, Undo};
use crate::config::tests::request;
use crate::config::PluginConf;
use crate::context::Context;
use crate::netns::{self, Netns};
use crate::testns::{can_run, json as json_of, new_netns, tool};
use crate::veth;
use conf::{IpConfig, NetResult, Route};
use serde_json::json;
use std::process::Command;

/// Run `f` on a new thread inside a new, empty network namespace (the "node"); `None` when root
/// tests cannot run here.
fn in_new_node<T: Send>(test: &str, f: impl FnOnce() -> T + Send) -> Option<T> {
    if !can_run(test) {
        return None;
    }
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            tool("ip", &["link", "set", "lo", "up"]);
            f()
        })
        .join()
        .unwrap()
    });
    Some(out)
}

/// One ping with a one-second deadline from the calling thread's namespace.
fn ping(addr: &str) -> bool {
    Command::new("ping").args(["-c1", "-W1", addr]).output().is_ok_and(|o| o.status.success())
}

fn ping_from(ns: &Netns, addr: &str) -> bool {
    netns::run_in(ns, || Ok(ping(addr))).unwrap()
}

/// What IPAM would hand out: one address per family given, gateway `.1` / `::1`, default routes.
fn allocated(v4: bool, v6: bool) -> NetResult {
    let mut r = NetResult::default();
    if v4 {
        r.ips.push(IpConfig {
            address: "198.18.7.2/24".parse().unwrap(),
            gateway: Some("198.18.7.1".parse().unwrap()),
            interface: None,
        });
        r.routes.push(Route::new("0.0.0.0/0".parse().unwrap(), None));
    }
    if v6 {
        r.ips.push(IpConfig {
            address: "fd7e:7e7e:7::2/64".parse().unwrap(),
            gateway: Some("fd7e:7e7e:7::1".parse().unwrap()),
            interface: None,
        });
        r.routes.push(Route::new("::/0".parse().unwrap(), None));
    }
    r
}

/// Wire `eth0` of `ctr` as ADD would after IPAM, as container `c1`; the result and what was
/// recorded for undo.
fn wire(ctr: &Netns, ipam: &NetResult) -> (crate::error::Result<NetResult>, Undo) {
    let ctx = context();
    let out = wire_as(&ctx, "c1", ctr, ipam);
    let _ = std::fs::remove_dir_all(&ctx.gateway_users);
    out
}

/// The node's context, with a record of gateway users of the test's own (the node namespace
/// dies with the test's thread; its record goes with the directory).
fn context() -> Context {
    let mut ctx = Context::on_node().unwrap();
    ctx.gateway_users =
        std::env::temp_dir().join(format!("tether-ptp-root-{}-{:?}", std::process::id(), std::thread::current().id()));
    ctx
}

/// Wire `eth0` of `ctr` as container `id` on the node of `ctx`.
fn wire_as(ctx: &Context, id: &str, ctr: &Netns, ipam: &NetResult) -> (crate::error::Result<NetResult>, Undo) {
    let req = request(
        json!({"cniVersion": "1.1.0", "name": "ptptest", "type": "tether", "mtu": 1400, "ipam": {"type": "tether-ipam"}}),
        "",
    );
    let conf = PluginConf::from_request(&req).unwrap();
    let att = Attachment {
        request: &req,
        conf: &conf,
        netns: ctr,
        ctr: ctx.connect_in(ctr).unwrap(),
        host_veth: veth::host_veth_name("ptptest", id, "eth0"),
        group: 0,
    };
    let mut undo = Undo::default();
    let result = ctx.block_on(super::wire(ctx, &att, ipam, &mut undo));
    (result, undo)
}

/// Undo `id`'s attachment from the node side, as DEL does: its node end, then its use of the
/// gateways.
fn unwire(ctx: &Context, id: &str) {
    let host_veth = veth::host_veth_name("ptptest", id, "eth0");
    ctx.block_on(async {
        ctx.node.delete_link(&host_veth).await.unwrap();
        super::gateway::release(&ctx.node, &ctx.gateway_users, &host_veth).await.unwrap();
    });
}

/// The global addresses of `dev` on the calling thread's node, as `addr/prefix`.
fn global_addrs(dev: &str) -> Vec<String> {
    addrs_where(dev, |a| a["scope"] == "global")
}

/// What `lo` holds besides its loopback addresses, as `addr/prefix scope`, sorted.
fn held_on_lo() -> Vec<String> {
    let mut held = addrs_where("lo", |a| a["local"] != "127.0.0.1" && a["local"] != "::1");
    held.sort();
    held
}

fn addrs_where(dev: &str, keep: impl Fn(&serde_json::Value) -> bool) -> Vec<String> {
    let doc = json_of("ip", &["addr", "show", "dev", dev]);
    let infos = doc[0]["addr_info"].as_array().cloned().unwrap_or_default();
    infos
        .iter()
        .filter(|a| keep(a))
        .map(|a| format!("{}/{} {}", a["local"].as_str().unwrap(), a["prefixlen"], a["scope"].as_str().unwrap()))
        .collect()
}

#[test]
fn the_gateway_is_held_once_on_lo_and_goes_with_its_last_user() {
    in_new_node("the_gateway_is_held_once_on_lo_and_goes_with_its_last_user", || {
        let ctx = context();
        let (first, second) = (new_netns(), new_netns());
        let mut two = allocated(true, true);
        for ip in &mut two.ips {
            let bumped = match ip.address.addr() {
                std::net::IpAddr::V4(_) => "198.18.7.3/24",
                std::net::IpAddr::V6(_) => "fd7e:7e7e:7::3/64",
            };
            ip.address = bumped.parse().unwrap();
        }
        wire_as(&ctx, "c1", &first, &allocated(true, true)).0.unwrap();
        wire_as(&ctx, "c2", &second, &two).0.unwrap();
        // Each gateway once, on lo; IPv4's with scope host, so it is no other link's source.
        assert_eq!(held_on_lo(), ["198.18.7.1/32 host", "fd7e:7e7e:7::1/128 global"]);
        let protocols: Vec<_> = ctx
            .block_on(ctx.node.addr_infos(super::gateway::LOOPBACK))
            .unwrap()
            .into_iter()
            .filter(|a| !a.net.addr().is_loopback())
            .map(|a| a.protocol)
            .collect();
        assert_eq!(protocols, [Some(super::gateway::PROTOCOL); 2], "tether's gateways say so");
        let node_end = veth::host_veth_name("ptptest", "c1", "eth0");
        assert_eq!(global_addrs(&node_end), Vec::<String>::new(), "node ends carry no gateway");
        // The container knows the gateway's MAC for good: the node end does not answer for it.
        let mac = json_of("ip", &["link", "show", "dev", &node_end])[0]["address"].as_str().unwrap().to_string();
        let neighbours = netns::run_in(&first, || Ok(json_of("ip", &["neigh", "show", "dev", "eth0"]))).unwrap();
        for gw in ["198.18.7.1", "fd7e:7e7e:7::1"] {
            let entry = neighbours.as_array().unwrap().iter().find(|n| n["dst"] == gw);
            let entry = entry.unwrap_or_else(|| panic!("no neighbour {gw} in the container: {neighbours}"));
            assert_eq!(entry["lladdr"].as_str(), Some(mac.as_str()), "{entry}");
            assert!(entry["state"].to_string().contains("PERMANENT"), "{entry}");
        }

        unwire(&ctx, "c1");
        assert_eq!(held_on_lo().len(), 2, "the second attachment still uses both gateways");
        assert!(ping_from(&second, "198.18.7.1"), "container 2 -> gateway IPv4 after container 1 left");
        assert!(ping_from(&second, "fd7e:7e7e:7::1"), "container 2 -> gateway IPv6 after container 1 left");
        assert!(ping("fd7e:7e7e:7::3"), "node -> container 2 IPv6");
        unwire(&ctx, "c2");
        assert_eq!(held_on_lo(), Vec::<String>::new(), "the last user took the gateways with it");
        std::fs::remove_dir_all(&ctx.gateway_users).unwrap();
    });
}

#[test]
fn a_gateway_that_was_on_lo_before_stays_there() {
    in_new_node("a_gateway_that_was_on_lo_before_stays_there", || {
        let ctx = context();
        tool("ip", &["addr", "add", "198.18.7.1/32", "dev", "lo"]);
        let ctr = new_netns();
        wire_as(&ctx, "c1", &ctr, &allocated(true, false)).0.unwrap();
        assert!(ping_from(&ctr, "198.18.7.1"), "container -> the operator's gateway");
        unwire(&ctx, "c1");
        assert_eq!(held_on_lo(), ["198.18.7.1/32 global"], "the operator's address is not tether's to remove");
        std::fs::remove_dir_all(&ctx.gateway_users).unwrap();
    });
}

#[test]
fn dual_stack_traffic_flows_both_ways_as_soon_as_wire_returns() {
    in_new_node("dual_stack_traffic_flows_both_ways_as_soon_as_wire_returns", || {
        let ctr = new_netns();
        let (result, undo) = wire(&ctr, &allocated(true, true));
        let result = result.unwrap();
        let host_veth = veth::host_veth_name("ptptest", "c1", "eth0");
        assert_eq!(undo.host_veth.as_deref(), Some(host_veth.as_str()));

        // IPv6 first, from the node: the direction that fails while the kernel still holds back
        // the container end's carrier change (see `Netlink::sync_link_state`).
        assert!(ping("fd7e:7e7e:7::2"), "node -> container IPv6 right after wire");
        assert!(ping_from(&ctr, "fd7e:7e7e:7::1"), "container -> gateway IPv6");
        assert!(ping("198.18.7.2"), "node -> container IPv4");
        assert!(ping_from(&ctr, "198.18.7.1"), "container -> gateway IPv4");

        // The result: node end first (no sandbox), then the container end; every IP on index 1.
        assert_eq!(result.interfaces[0].name, host_veth);
        assert_eq!(result.interfaces[0].sandbox, None);
        assert_eq!((result.interfaces[1].name.as_str(), result.interfaces[1].mtu), ("eth0", Some(1400)));
        assert_eq!(result.interfaces[1].sandbox.as_deref(), Some(ctr.path().to_str().unwrap()));
        assert!(result.ips.iter().all(|ip| ip.interface == Some(1)));
        assert_eq!(result.routes.len(), 2);

        // The node: forwarding on for both families, no router advertisements on the node end.
        let read = |k: &str| std::fs::read_to_string(format!("/proc/sys/net/{k}")).unwrap().trim().to_string();
        assert_eq!(read("ipv4/ip_forward"), "1");
        assert_eq!(read("ipv6/conf/all/forwarding"), "1");
        assert_eq!(read(&format!("ipv6/conf/{host_veth}/accept_ra")), "0");
    });
}

#[test]
fn an_existing_container_interface_is_named_and_left_alone() {
    in_new_node("an_existing_container_interface_is_named_and_left_alone", || {
        let ctr = new_netns();
        netns::run_in(&ctr, || Ok(tool("ip", &["link", "add", "eth0", "type", "veth", "peer", "name", "theirs"])))
            .unwrap();
        let (result, undo) = wire(&ctr, &allocated(true, false));
        let err = result.unwrap_err();
        assert_eq!(err.to_cni().code, 100);
        assert!(err.to_cni().msg.contains("eth0") && err.to_cni().msg.contains("already exists"), "{err}");
        assert!(undo.host_veth.is_none(), "nothing of ours exists, so nothing may be undone");
        let links = netns::run_in(&ctr, || Ok(tool("ip", &["-o", "link"]))).unwrap();
        assert!(links.contains("eth0@theirs"), "{links}");
    });
}

#[test]
fn ipv6_disabled_in_the_container_is_enabled_for_the_interface() {
    in_new_node("ipv6_disabled_in_the_container_is_enabled_for_the_interface", || {
        let ctr = new_netns();
        netns::run_in(&ctr, || {
            std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").unwrap();
            Ok(())
        })
        .unwrap();
        let (result, _) = wire(&ctr, &allocated(false, true));
        result.unwrap();
        let eth0 =
            netns::run_in(&ctr, || Ok(std::fs::read_to_string("/proc/sys/net/ipv6/conf/eth0/disable_ipv6").unwrap()))
                .unwrap();
        assert_eq!(eth0.trim(), "0");
        assert!(ping("fd7e:7e7e:7::2"), "node -> container IPv6");
    });
}
