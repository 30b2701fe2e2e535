//! The kubelet's flows against containerd 1.6's CRI plugin, for tether (ptp and bridge mode,
//! tether-ipam) and for the reference ptp + host-local (the oracle: the same assertions must hold
//! for it, proving they test the runtime path and not tether's quirks).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use tether_runtime_tests::checks::{assert_nothing_left, in_subnet, node_reaches, pod_reaches};
use tether_runtime_tests::containerd::{require_containerd, CniSetup, Containerd, Pod, POD_DNS_SEARCH, POD_DNS_SERVER};
use tether_runtime_tests::cri::messages::{
    ContainerConfig, ContainerMetadata, ImageSpec, PortMapping, CONTAINER_RUNNING, SANDBOX_READY,
};
use tether_runtime_tests::host::HostNetwork;
use tether_runtime_tests::image::{IMAGE_NAME, INDEX_PAGE};
use tether_runtime_tests::networks::{v4_gateway, v6_gateway, Variant};
use tether_tests::config::{v4_subnet, v6_subnet};
use tether_tests::netns::assert_test_address;
use tether_tests::wait::eventually;
use tether_tests::{require_root, Family, Netns};

/// The network every flow uses, subnet index 40.
const NET: &str = "pods";
const X: u8 = 40;

/// Start containerd with `variant`'s dual-stack network.
fn containerd_with(variant: Variant, tag: &str) -> Containerd {
    Containerd::start(tag, |data| CniSetup {
        conflists: vec![variant.conflist(NET, X, Family::Dual, data)],
        ..CniSetup::default()
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
    in_subnet(ip, &v4_subnet(X)) || in_subnet(ip, &v6_subnet(X))
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
        assert!(in_subnet(&pod.v4(), &v4_subnet(X)), "pod {} IPv4 {} outside the conflist's range", pod.id, pod.v4());
        assert!(in_subnet(&pod.v6(), &v6_subnet(X)), "pod {} IPv6 {} outside the conflist's range", pod.id, pod.v6());
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

/// Stop and remove `pods` all at once (as many kubelet workers do).
#[track_caller]
fn stop_and_remove_in_parallel(c: &Containerd, pods: &[Pod]) {
    for result in c.cri.run_all(pods.iter().map(|p| c.cri.stop_pod_call(&p.id)).collect()) {
        result.unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(30)));
    }
    for result in c.cri.run_all(pods.iter().map(|p| c.cri.remove_pod_call(&p.id)).collect()) {
        result.unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(30)));
    }
}

/// The IPAM reservation files naming one of `pod`'s addresses.
fn reservations_of(c: &Containerd, pod: &Pod) -> Vec<String> {
    c.node.reservations().into_iter().filter(|r| pod.ips.iter().any(|ip| r.ends_with(&format!("/{ip}")))).collect()
}

/// A pod whose network namespace was removed before Stop (a node that rebooted, a namespace
/// someone unmounted) still has its addresses released: containerd sends DEL without
/// `CNI_NETNS`.
fn netns_removed_before_stop(variant: Variant) {
    require_root!();
    if !require_containerd() {
        return;
    }
    let host = HostNetwork::read();
    let c = containerd_with(variant, "gone");
    let pods = [run_pod(&c, "doomed"), run_pod(&c, "bystander")];
    let doomed = &pods[0];
    assert_eq!(reservations_of(&c, doomed).len(), 2, "no reservations for {}: {:?}", doomed.id, c.node.reservations());
    c.nodebox().exec_ok(&["umount", &doomed.netns]);
    c.nodebox().exec_ok(&["rm", "-f", &doomed.netns]);
    c.cri.stop_pod(&doomed.id).unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(30)));
    assert!(reservations_of(&c, doomed).is_empty(), "DEL without netns kept {:?}", reservations_of(&c, doomed));
    assert_eq!(reservations_of(&c, &pods[1]).len(), 2, "the other pod lost its reservations");
    assert!(node_reaches(&c.node, &pods[1].v4()), "the other pod stopped answering");
    stop_and_remove(&c, &pods);
    assert!(c.cri.list_pods().unwrap().is_empty(), "ListPodSandbox is not empty after Remove");
    // The reference ptp returns from DEL right after the IPAM release when CNI_NETNS is empty,
    // before tearing down its ipMasq chain (plugins/main/ptp/ptp.go, cmdDel): its `CNI-...`
    // chain of the doomed pod stays. tether removes its nftables state by container id.
    let nft_checked = if variant == Variant::ReferencePtp { &pods[1..] } else { &pods[..] };
    assert_nothing_left(&c, nft_checked);
    drop(c);
    host.assert_untouched_since();
}

/// containerd restarted while pods live: the pods keep working, and Stop/Remove after the
/// restart cleans up (DEL with what libcni cached at ADD).
fn restart_keeps_pods(variant: Variant) {
    require_root!();
    if !require_containerd() {
        return;
    }
    let host = HostNetwork::read();
    let mut c = containerd_with(variant, "restart");
    let pods = [run_pod(&c, "r0"), run_pod(&c, "r1")];
    c.restart();
    for pod in &pods {
        let now = c.pod(&pod.id);
        assert_eq!(now.state, SANDBOX_READY, "pod {} not ready after the restart", pod.id);
        assert_eq!(now.ips, pod.ips, "pod {} changed addresses over the restart", pod.id);
        for ip in &pod.ips {
            assert!(node_reaches(&c.node, ip), "the node cannot reach pod {} at {ip} after the restart", pod.id);
        }
    }
    for ip in &pods[1].ips {
        assert!(pod_reaches(&c, &pods[0], ip), "pods cannot reach each other after the restart ({ip})");
    }
    stop_and_remove(&c, &pods);
    assert!(c.cri.list_pods().unwrap().is_empty(), "ListPodSandbox is not empty after Remove");
    assert_nothing_left(&c, &pods);
    drop(c);
    host.assert_untouched_since();
}

/// 20 pods started at once: 20 distinct addresses per family, all within range; all cleaned up.
fn twenty_pods_in_parallel(variant: Variant) {
    require_root!();
    if !require_containerd() {
        return;
    }
    let host = HostNetwork::read();
    let c = containerd_with(variant, "twenty");
    let configs: Vec<_> = (0..20).map(|i| c.pod_config(&format!("par{i}"), &format!("uid-par{i}"))).collect();
    let ids: Vec<String> = c
        .cri
        .run_all(configs.iter().map(|cfg| c.cri.run_pod_call(cfg)).collect())
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(40))))
        .collect();
    let pods: Vec<Pod> = ids.iter().map(|id| c.pod(id)).collect();
    let v4: std::collections::BTreeSet<String> = pods.iter().map(Pod::v4).collect();
    let v6: std::collections::BTreeSet<String> = pods.iter().map(Pod::v6).collect();
    assert_eq!(v4.len(), 20, "IPv4 addresses are not distinct: {v4:?}");
    assert_eq!(v6.len(), 20, "IPv6 addresses are not distinct: {v6:?}");
    assert!(pods.iter().flat_map(|p| &p.ips).all(|ip| in_net(ip)), "addresses outside the ranges");
    assert_eq!(c.node.reservations().len(), 40, "reservations: {:?}", c.node.reservations());
    for pod in &pods {
        assert!(node_reaches(&c.node, &pod.v4()), "the node cannot reach pod {} at {}", pod.id, pod.v4());
    }
    stop_and_remove_in_parallel(&c, &pods);
    assert!(c.cri.list_pods().unwrap().is_empty(), "ListPodSandbox is not empty after Remove");
    assert_nothing_left(&c, &pods);
    drop(c);
    host.assert_untouched_since();
}

/// The node's uplink and the client behind it, for the host-port test.
const UPLINK_NODE: &str = "198.18.250.1";
const UPLINK_CLIENT: &str = "198.18.250.2";
const HOST_PORT: i32 = 12000;

/// One `GET http://<addr>:<port>/` from inside `ns` (bash's `/dev/tcp`: the host's static
/// busybox wget crashes in glibc's NSS, and no curl is installed): the body, or `None`.
fn http_get_once(ns: &Netns, addr: &str, port: i32) -> Option<String> {
    assert_test_address(addr.parse().unwrap());
    let script = format!(
        "exec 3<>/dev/tcp/{addr}/{port} && printf 'GET / HTTP/1.0\\r\\nHost: test\\r\\n\\r\\n' >&3 && timeout 5 cat <&3"
    );
    let run = ns.exec(&["timeout", "5", "bash", "-c", &script]);
    let response = run.stdout.replace("\r\n", "\n");
    response.split_once("\n\n").filter(|(head, _)| head.starts_with("HTTP/1.")).map(|(_, body)| body.to_string())
}

/// [`http_get_once`], retried while the server starts.
fn http_get(ns: &Netns, addr: &str, port: i32) -> Option<String> {
    let mut body = None;
    eventually(|| {
        body = http_get_once(ns, addr, port);
        body.is_some()
    });
    body
}

/// A real container in a pod (busybox `httpd`): ExecSync shows the sandbox's DNS config and
/// hostname; the node gets the page from podIP:80; with `portmap` chained and a pod port
/// mapping host 12000 -> 80, a client namespace behind the node's uplink gets it from the
/// node's address on 12000.
fn container_serves_http(variant: Variant) {
    require_root!();
    if !require_containerd() {
        return;
    }
    let host = HostNetwork::read();
    let c = containerd_with(variant, "web");
    let client = Netns::new("client");
    c.node.ip_ok(&["link", "add", "uplink", "type", "veth", "peer", "name", "wan", "netns", client.name()]);
    c.node.ip_ok(&["addr", "add", &format!("{UPLINK_NODE}/24"), "dev", "uplink"]);
    c.node.ip_ok(&["link", "set", "uplink", "up"]);
    client.ip_ok(&["addr", "add", &format!("{UPLINK_CLIENT}/24"), "dev", "wan"]);
    client.ip_ok(&["link", "set", "wan", "up"]);

    let mut sandbox = c.pod_config("web", "uid-web");
    sandbox.port_mappings =
        vec![PortMapping { protocol: 0, container_port: 80, host_port: HOST_PORT, host_ip: String::new() }];
    let pod_id = c.cri.run_pod(&sandbox).unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(30)));
    let pod = c.pod(&pod_id);
    let container = ContainerConfig {
        metadata: Some(ContainerMetadata { name: "httpd".to_string(), attempt: 0 }),
        image: Some(ImageSpec { image: IMAGE_NAME.to_string() }),
        command: ["/bin/httpd", "-f", "-p", "80", "-h", "/www"].iter().map(|s| s.to_string()).collect(),
        ..ContainerConfig::default()
    };
    let ctr =
        c.cri.create_container(&pod_id, &container, &sandbox).unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(30)));
    c.cri.start_container(&ctr).unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(30)));
    let status = c.cri.container_status(&ctr).unwrap();
    assert_eq!(status.state, CONTAINER_RUNNING, "httpd is not running: {status:?}");

    let exec = |cmd: &[&str]| {
        let out = c.cri.exec_sync(&ctr, cmd).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.exit_code, 0, "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let resolv = exec(&["cat", "/etc/resolv.conf"]);
    assert!(resolv.contains(&format!("nameserver {POD_DNS_SERVER}")), "resolv.conf: {resolv}");
    assert!(resolv.contains(&format!("search {POD_DNS_SEARCH}")), "resolv.conf: {resolv}");
    assert!(resolv.contains("options ndots:5"), "resolv.conf: {resolv}");
    assert_eq!(exec(&["hostname"]).trim(), "web");
    let addrs = exec(&["ip", "-o", "addr", "show", "dev", "eth0"]);
    for ip in &pod.ips {
        assert!(addrs.contains(ip.as_str()), "the container's eth0 lacks {ip}: {addrs}");
    }

    for ip in &pod.ips {
        assert_eq!(http_get(&c.node, ip, 80).as_deref(), Some(INDEX_PAGE), "GET {ip}:80 from the node");
    }
    assert_eq!(
        http_get(&client, UPLINK_NODE, HOST_PORT).as_deref(),
        Some(INDEX_PAGE),
        "GET {UPLINK_NODE}:{HOST_PORT} from the client (portmap's DNAT to {}:80)",
        pod.v4()
    );

    c.cri.stop_container(&ctr, 2).unwrap_or_else(|e| panic!("{e}"));
    c.cri.remove_container(&ctr).unwrap_or_else(|e| panic!("{e}"));
    stop_and_remove(&c, std::slice::from_ref(&pod));
    assert_eq!(http_get_once(&client, UPLINK_NODE, HOST_PORT), None, "the host port still answers after Remove");
    drop(client); // its namespace takes the uplink pair with it
    assert_nothing_left(&c, std::slice::from_ref(&pod));
    let ruleset = c.node.nft_text();
    assert!(!ruleset.contains(&format!("dport {HOST_PORT}")), "portmap's DNAT is still there:\n{ruleset}");
    drop(c);
    host.assert_untouched_since();
}

/// The pod CIDR from the kubelet: containerd with an empty `conf_dir` and the `conf_template`
/// tether's installer writes reports NetworkReady false; after UpdateRuntimeConfig with the node's two
/// pod CIDRs it renders the conflist and new pods get their addresses from those ranges.
fn pod_cidr_from_the_kubelet(variant: Variant) {
    require_root!();
    if !require_containerd() {
        return;
    }
    let host = HostNetwork::read();
    let c = Containerd::start("cidr", |data| CniSetup {
        conf_template: Some(variant.conf_template(data)),
        ..CniSetup::default()
    });
    let (ready, why) = c.cri.network_ready().unwrap();
    assert!(!ready, "NetworkReady is true with an empty conf_dir ({why})");
    let (v4, v6) = (v4_subnet(41), v6_subnet(41));
    c.cri.update_pod_cidr(&format!("{v4},{v6}")).unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(30)));
    assert!(
        eventually(|| c.cri.network_ready().is_ok_and(|(ready, _)| ready)),
        "NetworkReady stays false:\n{}",
        c.log_tail(20)
    );
    let rendered = std::fs::read_dir(c.dir().join("net.d")).unwrap().flatten().map(|e| e.path()).collect::<Vec<_>>();
    assert_eq!(rendered.len(), 1, "containerd should render one conflist: {rendered:?}");
    let conflist: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rendered[0]).unwrap())
        .unwrap_or_else(|e| panic!("the rendered template is not JSON ({e}): {}", rendered[0].display()));
    assert_eq!(conflist["plugins"][0]["type"], variant.types().0, "{conflist}");
    let pods = [run_pod(&c, "c0"), run_pod(&c, "c1")];
    for pod in &pods {
        assert!(in_subnet(&pod.v4(), &v4), "pod {} IPv4 {} not from {v4}", pod.id, pod.v4());
        assert!(in_subnet(&pod.v6(), &v6), "pod {} IPv6 {} not from {v6}", pod.id, pod.v6());
        assert!(node_reaches(&c.node, &pod.v4()), "the node cannot reach pod {}", pod.id);
    }
    stop_and_remove(&c, &pods);
    assert!(c.cri.list_pods().unwrap().is_empty(), "ListPodSandbox is not empty after Remove");
    assert_nothing_left(&c, &pods);
    drop(c);
    host.assert_untouched_since();
}

/// A pod whose metadata has an empty uid: containerd sends `K8S_POD_UID=` (an empty value),
/// which libcni's `LoadArgs` and the reference accept, and so must tether.
fn empty_pod_uid(variant: Variant) {
    require_root!();
    if !require_containerd() {
        return;
    }
    let host = HostNetwork::read();
    let c = containerd_with(variant, "nouid");
    let config = c.pod_config("nouid", "");
    let id = c.cri.run_pod(&config).unwrap_or_else(|e| panic!("{e}\ncontainerd log:\n{}", c.log_tail(10)));
    let pod = c.pod(&id);
    assert_eq!(pod.ips.len(), 2, "pod {} should have one address per family: {:?}", pod.id, pod.ips);
    let cache = c.cni_cache(NET, &pod.id).unwrap_or_else(|| panic!("no libcni cache for {}", pod.id));
    assert!(
        cache["cniArgs"].as_array().into_iter().flatten().any(|kv| kv[0] == "K8S_POD_UID" && kv[1] == ""),
        "{cache}"
    );
    stop_and_remove(&c, std::slice::from_ref(&pod));
    assert_nothing_left(&c, std::slice::from_ref(&pod));
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
for_each_variant!(netns_removed_before_stop);
for_each_variant!(restart_keeps_pods);
for_each_variant!(twenty_pods_in_parallel);
for_each_variant!(container_serves_http);
for_each_variant!(pod_cidr_from_the_kubelet);
for_each_variant!(empty_pod_uid);
