//! The kubelet's flows against containerd 1.6's CRI plugin, for tether (ptp and bridge mode,
//! tether-ipam) and for the reference ptp + host-local (the oracle: the same assertions must hold
//! for it, proving they test the runtime path and not tether's quirks).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use tether_runtime_tests::checks::{assert_nothing_left, node_reaches, pod_reaches};
use tether_runtime_tests::containerd::{require_containerd, CniSetup, Containerd, Pod};
use tether_runtime_tests::cri::messages::SANDBOX_READY;
use tether_runtime_tests::host::HostNetwork;
use tether_runtime_tests::networks::{v4_gateway, v6_gateway, Variant};
use tether_tests::config::{v4_subnet, v6_subnet};
use tether_tests::{require_root, Family};

/// The network every flow uses, subnet index 40.
const NET: &str = "pods";
const X: u8 = 40;

/// Start containerd with `variant`'s dual-stack network.
fn containerd_with(variant: Variant, tag: &str) -> Containerd {
    Containerd::start(tag, |data| CniSetup {
        conflists: vec![variant.conflist(NET, X, Family::Dual, data)],
        conf_template: None,
    })
}

/// Run a pod named `name` and read back its status.
#[track_caller]
fn run_pod(c: &Containerd, name: &str) -> Pod {
    let config = c.pod_config(name, &format!("uid-{name}"));
    let id = c.cri.run_pod(&config).unwrap_or_else(|e| panic!("{e}\ncontainerd log:\n{}", c.log_tail(30)));
    c.pod(&id)
}

/// An address is inside subnet index `X` of its family.
fn in_net(ip: &str) -> bool {
    let net = if ip.contains(':') { v6_subnet(X) } else { v4_subnet(X) };
    let prefix = net.split("::/").next().unwrap_or("").trim_end_matches(".0/24");
    ip.starts_with(prefix)
}

/// Stop (twice, as the kubelet may) and remove every pod.
#[track_caller]
fn stop_and_remove(c: &Containerd, pods: &[Pod]) {
    for pod in pods {
        c.cri.stop_pod(&pod.id).unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(30)));
        c.cri.stop_pod(&pod.id).unwrap_or_else(|e| panic!("second stop: {e}\n{}", c.log_tail(30)));
        c.cri.remove_pod(&pod.id).unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(30)));
    }
}

/// CRI Status reports NetworkReady; three pods get dual-stack addresses from the conflist, reach
/// each other and the node; containerd passes the K8S_POD_* args and the plugin accepts them;
/// Stop twice then Remove leaves nothing.
fn three_pods(variant: Variant) {
    require_root!();
    if !require_containerd() {
        return;
    }
    let host = HostNetwork::read();
    let c = containerd_with(variant, "three");
    let (ready, why) = c.cri.network_ready().unwrap();
    assert!(ready, "NetworkReady is false: {why}");
    let pods: Vec<Pod> = ["p0", "p1", "p2"].iter().map(|n| run_pod(&c, n)).collect();
    for pod in &pods {
        assert_eq!(pod.state, SANDBOX_READY, "pod {} not ready", pod.id);
        assert_eq!(pod.ips.len(), 2, "pod {} should have one address per family: {:?}", pod.id, pod.ips);
        assert!(
            pod.ips.iter().all(|ip| in_net(ip)),
            "pod {} addresses outside the conflist's ranges: {:?}",
            pod.id,
            pod.ips
        );
        let cache = c.cni_cache(NET, &pod.id).unwrap_or_else(|| panic!("no libcni cache for {}", pod.id));
        let args: Vec<(String, String)> = cache["cniArgs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv[0].as_str()?.to_string(), kv[1].as_str()?.to_string())))
            .collect();
        let name = pod.info["config"]["metadata"]["name"].as_str().unwrap_or_default().to_string();
        for (key, want) in [
            ("K8S_POD_NAMESPACE", "tt-ns".to_string()),
            ("K8S_POD_NAME", name.clone()),
            ("K8S_POD_INFRA_CONTAINER_ID", pod.id.clone()),
            ("K8S_POD_UID", format!("uid-{name}")),
        ] {
            assert!(args.contains(&(key.to_string(), want.clone())), "{key}={want} not passed to the plugin: {args:?}");
        }
    }
    for pod in &pods {
        for gw in [v4_gateway(X), v6_gateway(X)] {
            assert!(pod_reaches(&c, pod, &gw), "pod {} cannot reach the node at {gw}", pod.id);
        }
        for ip in &pod.ips {
            assert!(node_reaches(&c.node, ip), "the node cannot reach pod {} at {ip}", pod.id);
        }
        for other in pods.iter().filter(|o| o.id != pod.id) {
            for ip in &other.ips {
                assert!(pod_reaches(&c, pod, ip), "pod {} cannot reach pod {} at {ip}", pod.id, other.id);
            }
        }
    }
    stop_and_remove(&c, &pods);
    assert!(c.cri.list_pods().unwrap().is_empty(), "ListPodSandbox is not empty after Remove");
    assert_nothing_left(&c, &pods);
    drop(c);
    host.assert_untouched_since();
}

macro_rules! for_each_variant {
    ($flow:ident) => {
        mod $flow {
            use super::*;
            #[test]
            fn tether_ptp() {
                $flow(Variant::TetherPtp)
            }
            #[test]
            fn tether_bridge() {
                $flow(Variant::TetherBridge)
            }
            #[test]
            fn reference_ptp() {
                $flow(Variant::ReferencePtp)
            }
        }
    };
}

for_each_variant!(three_pods);
