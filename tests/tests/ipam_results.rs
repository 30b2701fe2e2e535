//! Tier 3: what `tether` does with IPAM results, end to end. Most IPAM here is a fake delegate
//! written by the test (a shell script in the node's scratch directory, first on `CNI_PATH`) that
//! answers in another version, fails with its own error, or hangs; the 1.1 route fields are
//! shown with `tether-ipam`. Each test makes its own node and container namespaces; addresses come
//! from 198.18.0.0/15 only.
//!
//! Where the reference `ptp` is installed, it runs against the same fake as an oracle: it shows
//! what libcni-based plugins do with the same answer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tether_tests::config::{result_addresses, v4_subnet, with_prev, Family, Ptp};
use tether_tests::netns::{Netns, Node};
use tether_tests::plugin::{Invocation, Outcome, Plugin};
use tether_tests::{bins, require_root};

const IFNAME: &str = "eth0";
const FAKE: &str = "fake-ipam";

/// A fake IPAM plugin in `<node scratch>/fake-bin`: for ADD it runs `add` (shell), for every other
/// verb it succeeds silently. It reads its stdin first, as a plugin does.
fn fake_ipam(node: &Node, add: &str) -> PathBuf {
    let dir = node.dir.path().join("fake-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(FAKE);
    let script = format!("#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\n{add}\n");
    // Written to a temporary name and renamed: never exec a file some descriptor still writes.
    let tmp = dir.join(format!(".{FAKE}.tmp"));
    std::fs::write(&tmp, script).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    dir
}

/// `CNI_PATH` with the fake first.
fn cni_path(fake_dir: &Path) -> String {
    format!("{}:{}", fake_dir.display(), bins::cni_path())
}

/// A tether ptp network (subnet index `x`, IPv4) whose IPAM is the fake.
fn conf(version: &str, node: &Node, x: u8) -> Value {
    let mut conf = Ptp::new(version, &format!("tt{x}"), x, Family::V4, &node.data_dir()).conf();
    conf["ipam"] = json!({"type": FAKE});
    conf
}

/// The same network for the reference `ptp`.
fn reference_conf(version: &str, node: &Node, x: u8) -> Value {
    let mut conf = conf(version, node, x);
    conf["type"] = json!("ptp");
    conf.as_object_mut().unwrap().remove("mode");
    conf
}

fn invoke(plugin: &Plugin, command: &str, ctr: &Netns, conf: &Value, fake_dir: &Path) -> Outcome {
    let inv = Invocation { path: Some(cni_path(fake_dir)), ..Invocation::attachment(command, ctr, IFNAME) };
    plugin.invoke(&inv, conf)
}

/// The reference plugin `name` inside `node`, or `None` (with a note) when it is not installed.
fn reference(name: &str, node: &Node) -> Option<Plugin> {
    if bins::reference(name).is_none() {
        assert!(!tether_tests::ci_required(), "{}/{name} is missing; CI is set", bins::REFERENCE_DIR);
        eprintln!("SKIPPED (oracle only): reference {name} not installed");
        return None;
    }
    Some(Plugin::reference(name, &node.ns))
}

/// An IPAM answer for subnet index `x` in the layout of `version`, with a default route that
/// carries the 1.1 field `mtu`; 0.3.x/0.4.0 answers leave out `ips[].version`, as some plugins do.
fn answer(version: &str, x: u8) -> Value {
    let (addr, gw) = (format!("198.18.{x}.2/24"), format!("198.18.{x}.1"));
    match version {
        "0.1.0" | "0.2.0" => {
            json!({"cniVersion": version, "ip4": {"ip": addr, "gateway": gw, "routes": [{"dst": "0.0.0.0/0"}]}})
        }
        _ => {
            json!({"cniVersion": version, "ips": [{"address": addr, "gateway": gw}], "routes": [{"dst": "0.0.0.0/0", "mtu": 1400}]})
        }
    }
}

#[test]
fn a_delegated_answer_is_read_in_its_own_version_and_printed_in_the_request_version() {
    if !require_root() {
        return;
    }
    let node = Node::new("dlg-ver");
    let ctr = node.container("c");
    let tether = Plugin::tether(&node.ns);
    let x = 60;
    let before = node.state();
    for request in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        for answered in ["0.2.0", "0.4.0", "1.0.0", "1.1.0"] {
            let case = format!("request {request}, IPAM answers {answered}");
            let fake = fake_ipam(&node, &format!("echo '{}'", answer(answered, x)));
            let conf = conf(request, &node, x);
            let out = invoke(&tether, "ADD", &ctr, &conf, &fake);
            let result = out.result();
            assert_eq!(result["cniVersion"], request, "{case}:\n{out}");
            assert_eq!(result_addresses(result), [format!("198.18.{x}.2/24")], "{case}:\n{out}");
            assert_eq!(ctr.global_addrs(IFNAME), [format!("198.18.{x}.2/24")], "{case}");
            let default_route = result["routes"].as_array().unwrap().iter().find(|r| r["dst"] == "0.0.0.0/0");
            let default_route = default_route.unwrap_or_else(|| panic!("{case}: no default route:\n{out}"));
            // The 1.1 route field survives the conversion, and is printed only in 1.1.0.
            let mtu_expected = request == "1.1.0" && !matches!(answered, "0.1.0" | "0.2.0");
            assert_eq!(default_route.get("mtu").is_some(), mtu_expected, "{case}: {default_route}");
            for r in result["routes"].as_array().unwrap() {
                if request != "1.1.0" {
                    assert!(r.as_object().unwrap().keys().all(|k| k == "dst" || k == "gw"), "{case}: route {r}");
                }
            }
            invoke(&tether, "DEL", &ctr, &conf, &fake).assert_ok_silent();
            assert_eq!(node.state(), before, "{case}: DEL left something behind");
        }
    }
}

#[test]
fn reference_ptp_reads_a_0_4_0_answer_without_ip_version() {
    if !require_root() {
        return;
    }
    let node = Node::new("dlg-ref-ver");
    let Some(ptp) = reference("ptp", &node) else { return };
    let ctr = node.container("c");
    let fake = fake_ipam(&node, &format!("echo '{}'", answer("0.4.0", 61)));
    let conf = reference_conf("0.4.0", &node, 61);
    let out = invoke(&ptp, "ADD", &ctr, &conf, &fake);
    assert_eq!(result_addresses(out.result()), ["198.18.61.2/24"], "{out}");
    invoke(&ptp, "DEL", &ctr, &conf, &fake).assert_ok_silent();
}

#[test]
fn a_delegated_error_passes_through_with_its_code_and_message() {
    if !require_root() {
        return;
    }
    let node = Node::new("dlg-err");
    let ctr = node.container("c");
    let msg = r#"pool \"blue\" has no free address"#;
    let fake = fake_ipam(
        &node,
        &format!(
            "echo '{{\"cniVersion\":\"1.0.0\",\"code\":42,\"msg\":\"{msg}\",\"details\":\"{}\"}}'\nexit 1",
            v4_subnet(62)
        ),
    );
    let before = node.state();
    let tether = Plugin::tether(&node.ns);
    let out = invoke(&tether, "ADD", &ctr, &conf("1.0.0", &node, 62), &fake);
    out.assert_code(42);
    let doc = out.json.as_ref().unwrap();
    assert_eq!(doc["msg"], r#"pool "blue" has no free address"#, "{out}");
    assert_eq!(doc["details"], format!("delegated plugin \"{FAKE}\" failed ADD: {}", v4_subnet(62)), "{out}");
    assert_eq!(node.state(), before, "a failed ADD left something behind");
    assert_eq!(ctr.link_names().into_iter().collect::<Vec<_>>(), ["lo"]);
    // The oracle: a libcni-based plugin reports the same code and message.
    if let Some(ptp) = reference("ptp", &node) {
        let out = invoke(&ptp, "ADD", &ctr, &reference_conf("1.0.0", &node, 62), &fake);
        out.assert_code(42);
        assert_eq!(out.json.as_ref().unwrap()["msg"], r#"pool "blue" has no free address"#, "{out}");
    }
}

#[test]
fn a_hanging_delegate_is_killed_after_delegate_timeout_and_add_leaves_nothing() {
    if !require_root() {
        return;
    }
    let node = Node::new("dlg-hang");
    let ctr = node.container("c");
    let pid_file = node.dir.path().join("sleep.pid");
    // A child of the script keeps running: it must die with the script.
    let fake = fake_ipam(&node, &format!("sleep 30 &\necho $! > {}\nwait", pid_file.display()));
    let mut conf = conf("1.0.0", &node, 63);
    conf["delegateTimeout"] = json!(1);
    let before = node.state();
    let tether = Plugin::tether(&node.ns).timeout(Duration::from_secs(20));
    let started = Instant::now();
    let out = invoke(&tether, "ADD", &ctr, &conf, &fake);
    out.assert_code(103);
    assert!(started.elapsed() < Duration::from_secs(15), "ADD took {:?}", started.elapsed());
    assert_eq!(out.json.as_ref().unwrap()["msg"], format!("plugin \"{FAKE}\" did not finish ADD within 1s: killed"));
    assert_eq!(node.state(), before, "a failed ADD left something behind");
    assert_eq!(ctr.link_names().into_iter().collect::<Vec<_>>(), ["lo"]);
    let sleep = std::fs::read_to_string(&pid_file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", sleep.trim())).unwrap_or_default();
    let running = stat.rsplit(") ").next().is_some_and(|rest| !rest.is_empty() && !rest.starts_with('Z'));
    assert!(!running, "the delegate's child {} outlived the timeout: {stat}", sleep.trim());
    // DEL still completes (the fake answers DEL at once).
    invoke(&tether, "DEL", &ctr, &conf, &fake).assert_ok_silent();
}

/// The container's IPv4 routes in `table`; none when the table does not exist (`ip` fails then).
fn routes_in_table(ctr: &Netns, table: &str) -> Vec<Value> {
    let run = ctr.ip(&["-j", "-4", "route", "show", "table", table]);
    if !run.success() {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&run.stdout).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

#[test]
fn route_fields_of_1_1_0_apply_only_to_1_1_0_networks() {
    if !require_root() {
        return;
    }
    let node = Node::new("ipam-rt11");
    let tether = Plugin::tether(&node.ns);
    for (version, x) in [("1.0.0", 64), ("0.4.0", 65), ("1.1.0", 66)] {
        let ctr = node.container("c");
        let mut conf = Ptp::new(version, &format!("tt{x}"), x, Family::V4, &node.data_dir()).conf();
        conf["ipam"]["routes"] = json!([{"dst": "198.19.0.0/16", "gw": format!("198.18.{x}.1"), "table": 100}]);
        let out = tether.add(&conf, &ctr, IFNAME);
        let result = out.result().clone();
        let in_table_100 = routes_in_table(&ctr, "100").iter().any(|r| r["dst"] == "198.19.0.0/16");
        let in_main = routes_in_table(&ctr, "main").iter().any(|r| r["dst"] == "198.19.0.0/16");
        if version == "1.1.0" {
            assert!(in_table_100 && !in_main, "{version}: the route belongs in table 100:\n{out}");
            assert_eq!(result["routes"][0]["table"], 100, "{version}:\n{out}");
        } else {
            // What the version cannot report is not applied either: the result, the container
            // and CHECK agree.
            assert!(in_main && !in_table_100, "{version}: without 1.1.0 the route is a plain one in main:\n{out}");
            assert!(result["routes"][0].get("table").is_none(), "{version}:\n{out}");
        }
        tether.check(&with_prev(&conf, &result), &ctr, IFNAME).assert_ok_silent();
        tether.del(&with_prev(&conf, &result), &ctr, IFNAME).assert_ok_silent();
    }
}
