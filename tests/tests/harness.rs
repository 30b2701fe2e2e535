//! The harness itself: fixtures clean up, plugins run inside the node with exactly the runtime's
//! environment and stdin, and the gate does what it says.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tether_tests::plugin::{Invocation, Plugin};
use tether_tests::{require_root, Netns, Node, TempDir};

#[test]
fn netns_is_made_with_lo_up_and_removed_on_drop() {
    require_root!();
    let ns = Netns::new("life");
    let path = ns.path();
    assert!(path.exists(), "{} missing", path.display());
    assert_eq!(ns.link_names().into_iter().collect::<Vec<_>>(), vec!["lo".to_string()]);
    let lo = ns.link("lo").unwrap();
    assert!(lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "lo is down: {lo}");
    drop(ns);
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn node_scratch_dir_is_removed_on_drop() {
    require_root!();
    let node = Node::new("scratch");
    let dir = node.dir.path().to_path_buf();
    std::fs::create_dir_all(node.data_dir().join("net")).unwrap();
    std::fs::write(node.data_dir().join("net/198.18.0.2"), "c\neth0").unwrap();
    std::fs::write(node.data_dir().join("net/last_reserved_ip.0"), "198.18.0.2").unwrap();
    assert_eq!(node.reservations().into_iter().collect::<Vec<_>>(), vec!["net/198.18.0.2".to_string()]);
    drop(node);
    assert!(!dir.exists());
}

/// A fake plugin: reports its network namespace, its environment and its stdin.
fn fake_plugin(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("fake-plugin");
    std::fs::write(
        &path,
        "#!/bin/sh\necho \"netns=$(readlink /proc/self/ns/net)\"\nenv | sort | sed 's/^/env:/'\necho \"stdin=$(cat)\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn plugin_runs_inside_the_node_with_only_the_cni_environment() {
    require_root!();
    let node = Node::new("runner");
    let ctr = node.container("c");
    let plugin = Plugin::new(fake_plugin(node.dir.path()), &node.ns);
    let out = plugin.invoke_raw(&Invocation::attachment("ADD", &ctr, "eth0").with_args("IgnoreUnknown=1"), "{\"x\":1}");
    assert!(out.success(), "{out}");
    let node_ns = node.exec_ok(&["readlink", "/proc/self/ns/net"]);
    let stdout = &out.run.stdout;
    assert!(stdout.contains(&format!("netns={}", node_ns.trim())), "not run in the node namespace:\n{out}");
    for expected in [
        "env:CNI_COMMAND=ADD".to_string(),
        format!("env:CNI_CONTAINERID={}", ctr.name()),
        format!("env:CNI_NETNS={}", ctr.path_str()),
        "env:CNI_IFNAME=eth0".to_string(),
        "env:CNI_ARGS=IgnoreUnknown=1".to_string(),
        format!("env:CNI_PATH={}", tether_tests::bins::cni_path()),
    ] {
        assert!(stdout.lines().any(|l| l == expected), "missing {expected}:\n{out}");
    }
    let allowed = ["CNI_", "PATH=", "PWD=", "SHLVL=", "_=", "TETHER_LOG", "RUST_BACKTRACE="];
    for line in stdout.lines().filter_map(|l| l.strip_prefix("env:")) {
        assert!(allowed.iter().any(|a| line.starts_with(a)), "unexpected variable {line:?} leaked into the plugin");
    }
    assert!(stdout.contains("stdin={\"x\":1}"), "{out}");

    // DEL without a netns sets no CNI_NETNS at all.
    let out = plugin.del_without_netns(&serde_json::json!({}), "c1", "eth0");
    assert!(!out.run.stdout.contains("CNI_NETNS"), "{out}");
}

#[test]
fn temp_dir_is_removed_on_drop() {
    let dir = TempDir::new("t");
    let path = dir.path().to_path_buf();
    std::fs::write(path.join("f"), "x").unwrap();
    drop(dir);
    assert!(!path.exists());
}
