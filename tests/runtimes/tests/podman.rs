//! The README's three-container scenario under podman 4.3's CNI backend: `cont1` on the routed,
//! masqueraded network (`examples/10-routed.conflist`), `cont2` and `cont3` on the isolated
//! bridge (`examples/20-isolated.conflist`), with `podman run` / `exec` / `rm` and
//! `podman network rm`, inside a node namespace the test made.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use serde_json::Value;
use std::collections::BTreeMap;
use tether_runtime_tests::checks::{in_subnet, node_veths};
use tether_runtime_tests::host::HostNetwork;
use tether_runtime_tests::image::IMAGE_NAME;
use tether_runtime_tests::networks::CNI_VERSION;
use tether_runtime_tests::podman::{require_podman, Podman};
use tether_tests::bins::repo_root;
use tether_tests::netns::assert_test_address;
use tether_tests::wait::eventually;
use tether_tests::{require_root, Netns};

/// The node's uplink towards "outside", which has no route back to the container subnets: a
/// reply reaches `cont1` only through masquerade.
const UPLINK: (&str, &str) = ("198.18.250.1", "fd7e:7e7e:250::1");
const OUTSIDE: (&str, &str) = ("198.18.250.2", "fd7e:7e7e:250::2");
/// The routed network's gateway: the node as `cont1` sees it.
const NODE: (&str, &str) = ("198.18.10.1", "fd7e:7e7e:10::1");

/// An example conflist as a podman 4.3 node would install it: as shipped (`cniVersion` 1.0.0, which
/// podman 4.3's libcni 1.1 needs; the pin below keeps it so), the IPAM data under `data_dir`.
/// With `reference`, the same network for the reference plugins: only the `type`s change
/// (`ptp` for the routed network, `bridge` for the isolated one; `host-local`).
fn example(file: &str, data_dir: &str, reference: bool) -> Value {
    let path = repo_root().join("examples").join(file);
    let mut conflist: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    conflist["cniVersion"] = Value::from(CNI_VERSION);
    let plugin = &mut conflist["plugins"][0];
    plugin["ipam"]["dataDir"] = Value::from(data_dir);
    if reference {
        let main = if plugin["mode"] == "bridge" { "bridge" } else { "ptp" };
        plugin["type"] = Value::from(main);
        plugin["ipam"]["type"] = Value::from("host-local");
    }
    conflist
}

/// Who pings: the node or outside (namespaces), or a container (`podman exec`).
enum From<'a> {
    Ns(&'a Netns),
    Container(&'a str),
}

fn ping_once(podman: &Podman, from: &From, addr: &str) -> bool {
    assert_test_address(addr.parse().unwrap());
    match from {
        From::Ns(ns) => ns.exec(&["ping", "-n", "-q", "-c1", "-W1", addr]).success(),
        From::Container(name) => podman.run(&["exec", name, "ping", "-q", "-c1", "-W1", addr]).success(),
    }
}

#[test]
fn three_container_scenario_tether() {
    three_container_scenario(false);
}

/// The oracle: the same scenario and matrix with the reference ptp, bridge and host-local.
#[test]
fn three_container_scenario_reference() {
    three_container_scenario(true);
}

fn three_container_scenario(reference: bool) {
    require_root!();
    if !require_podman() {
        return;
    }
    let host = HostNetwork::read();
    let podman = Podman::new(if reference { "pm-ref" } else { "pm" });
    let node = &podman.node;
    let outside = Netns::new("outside");
    node.ip_ok(&["link", "add", "uplink", "type", "veth", "peer", "name", "wan", "netns", outside.name()]);
    node.ip_ok(&["addr", "add", &format!("{}/24", UPLINK.0), "dev", "uplink"]);
    node.ip_ok(&["addr", "add", &format!("{}/64", UPLINK.1), "dev", "uplink", "nodad"]);
    outside.ip_ok(&["addr", "add", &format!("{}/24", OUTSIDE.0), "dev", "wan"]);
    outside.ip_ok(&["addr", "add", &format!("{}/64", OUTSIDE.1), "dev", "wan", "nodad"]);
    node.ip_ok(&["link", "set", "uplink", "up"]);
    outside.ip_ok(&["link", "set", "wan", "up"]);

    let data_dir = node.data_dir().display().to_string();
    for (file, net) in [("10-routed.conflist", "routed"), ("20-isolated.conflist", "isolated")] {
        let conflist = example(file, &data_dir, reference);
        assert_eq!(conflist["name"], net);
        std::fs::write(podman.conf_dir().join(file), conflist.to_string()).unwrap();
    }
    let networks = podman.ok(&["network", "ls", "--format", "{{.Name}}"]);
    for net in ["routed", "isolated"] {
        assert!(networks.lines().any(|l| l == net), "podman does not list network {net}:\n{networks}");
    }

    let containers = [("cont1", "routed"), ("cont2", "isolated"), ("cont3", "isolated")];
    let mut addrs: BTreeMap<&str, (String, String)> = BTreeMap::new();
    for (name, net) in containers {
        let run = podman.run(&["run", "-d", "--name", name, "--network", net, IMAGE_NAME]);
        assert!(run.success(), "podman run {name} on {net} failed:\n{run}");
        addrs.insert(name, podman.addresses(name, net));
    }
    for (name, net) in containers {
        let (v4, v6) = if net == "routed" { (10, 0x10) } else { (20, 0x20) };
        let (v4, v6) = (format!("198.18.{v4}.0/24"), format!("fd7e:7e7e:{v6:x}::/64"));
        let (a4, a6) = &addrs[name];
        assert!(in_subnet(a4, &v4) && in_subnet(a6, &v6), "{name} got {a4}, {a6} on {net} ({v4}, {v6})");
    }
    addrs.insert("node", (NODE.0.to_string(), NODE.1.to_string()));
    addrs.insert("outside", (OUTSIDE.0.to_string(), OUTSIDE.1.to_string()));

    // Rows reach columns: cont1 is routed and masqueraded, cont2 and cont3 are sealed together.
    let reachable = |from: &str, to: &str| {
        matches!(
            (from, to),
            ("node", "cont1")
                | ("cont1", "node")
                | ("cont1", "outside")
                | ("node", "outside")
                | ("outside", "node")
                | ("cont2", "cont3")
                | ("cont3", "cont2")
        )
    };
    let entities = ["node", "outside", "cont1", "cont2", "cont3"];
    let mut surprises = Vec::new();
    for from in entities {
        let pinger = match from {
            "node" => From::Ns(node),
            "outside" => From::Ns(&outside),
            name => From::Container(name),
        };
        for to in entities.iter().filter(|t| **t != from) {
            // The outside knows the node only by its uplink address.
            let target = if from == "outside" && *to == "node" {
                (UPLINK.0.to_string(), UPLINK.1.to_string())
            } else {
                addrs[to].clone()
            };
            for addr in [&target.0, &target.1] {
                let want = reachable(from, to);
                let got = if want {
                    eventually(|| ping_once(&podman, &pinger, addr))
                } else {
                    ping_once(&podman, &pinger, addr)
                };
                if got != want {
                    surprises.push(format!("{from} -> {to} ({addr}): {}", if got { "reached" } else { "unreachable" }));
                }
            }
        }
    }
    assert!(surprises.is_empty(), "unexpected reachability:\n{}", surprises.join("\n"));

    podman.ok(&["rm", "-f", "-t", "0", "cont1", "cont2", "cont3"]);
    podman.ok(&["network", "rm", "routed", "isolated"]);
    assert_eq!(podman.ok(&["ps", "-a", "-q"]).trim(), "", "containers left");
    // podman keeps its own `cni.lock` there; the networks' conflists must be gone.
    let confs: Vec<_> = std::fs::read_dir(podman.conf_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".conflist"))
        .collect();
    assert!(confs.is_empty(), "podman network rm left {confs:?}");
    drop(outside); // takes the uplink pair with it
    eventually(|| node_veths(node).is_empty());
    assert!(node_veths(node).is_empty(), "veths left on the node: {:?}", node_veths(node));
    assert!(node.reservations().is_empty(), "IPAM reservations left: {:?}", node.reservations());
    let ruleset = node.nft_text();
    for (name, (v4, v6)) in addrs.iter().filter(|(n, _)| n.starts_with("cont")) {
        for ip in [v4, v6] {
            assert!(!ruleset.contains(ip.as_str()), "nftables still names {ip} of {name}:\n{ruleset}");
        }
    }
    drop(podman);
    host.assert_untouched_since();
}
