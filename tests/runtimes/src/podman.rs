//! podman 4.3 with its CNI backend, as a podman user runs it, inside a [`NodeBox`] of a
//! test-made node: tmpfs over `/var/lib`, `/run` and `/dev/shm`; the hybrid cgroup2 mount at
//! `/sys/fs/cgroup/unified` unmounted (the OCI runtimes refuse a hybrid layout); `cgroups =
//! "disabled"`; the open-files limit within this machine's hard limit. Storage (vfs), the CNI
//! plugin and config directories are in the test's scratch directory.

use crate::image::{Image, IMAGE_NAME};
use crate::nodebox::{BoxMounts, NodeBox};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tether_tests::cmd::{self, Run};
use tether_tests::{gate, Node};

/// podman, or skip (fail under `CI`) when it is not installed.
#[track_caller]
pub fn require_podman() -> bool {
    ["podman", "conmon", "crun", "nsenter", "unshare"].iter().all(|tool| gate::require_tool(tool))
        && (Path::new(crate::image::BUSYBOX).is_file() || gate::skip_or_fail("busybox-static"))
}

/// A podman configuration private to one node; nothing of it outlives the test.
pub struct Podman {
    nodebox: NodeBox,
    /// The node (network namespace, scratch directory; IPAM `dataDir` is [`Node::data_dir`]).
    pub node: Node,
}

impl std::fmt::Debug for Podman {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Podman").field("node", &self.node).finish()
    }
}

impl Podman {
    /// A fresh node with podman configured for CNI, tether's and the reference plugins in its
    /// plugin directory, and the test image imported.
    #[track_caller]
    pub fn new(tag: &str) -> Podman {
        let node = Node::new(tag);
        let dir = node.dir.path().to_path_buf();
        let bin_dir = dir.join("cni-bin");
        std::fs::create_dir_all(&bin_dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", bin_dir.display()));
        std::fs::create_dir_all(dir.join("net.d")).unwrap_or_else(|e| panic!("mkdir net.d: {e}"));
        crate::containerd::link_plugins(&bin_dir, None);
        std::fs::write(dir.join("containers.conf"), containers_conf(&dir)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("storage.conf"), storage_conf(&dir)).unwrap_or_else(|e| panic!("{e}"));
        let image = Image::build(&dir);
        let nodebox = NodeBox::new(&node.ns, BoxMounts { dev_shm: true, drop_unified_cgroup: true });
        let podman = Podman { nodebox, node };
        let layer = image.layer.display().to_string();
        podman.ok(&["import", "--change", "CMD [\"/bin/sleep\", \"2147483647\"]", &layer, IMAGE_NAME]);
        podman
    }

    /// Where podman reads the CNI conflists (`network_config_dir`).
    pub fn conf_dir(&self) -> PathBuf {
        self.node.dir.path().join("net.d")
    }

    /// Run `podman <args>` inside the box.
    pub fn run(&self, args: &[&str]) -> Run {
        let dir = self.node.dir.path();
        let mut command = self.nodebox.command(&["podman"]);
        command
            .args(args)
            .env("CONTAINERS_CONF", dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"));
        cmd::run(command, Vec::new(), "", Duration::from_secs(120))
    }

    /// [`Podman::run`], panicking on failure; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).assert_success().stdout.clone()
    }

    /// `podman inspect` of a container: its addresses on network `net` (IPv4, IPv6).
    #[track_caller]
    pub fn addresses(&self, container: &str, net: &str) -> (String, String) {
        let doc: Value = serde_json::from_str(&self.ok(&["inspect", container]))
            .unwrap_or_else(|e| panic!("podman inspect {container} is not JSON: {e}"));
        let network = &doc[0]["NetworkSettings"]["Networks"][net];
        let v4 = network["IPAddress"].as_str().unwrap_or_default().to_string();
        let v6 = network["GlobalIPv6Address"].as_str().unwrap_or_default().to_string();
        assert!(!v4.is_empty() && !v6.is_empty(), "{container} on {net} lacks an address per family: {network}");
        (v4, v6)
    }
}

/// containers.conf: the CNI backend with our directories; no cgroups; a default network that
/// could never hand out an address outside the test ranges.
fn containers_conf(dir: &Path) -> String {
    let d = |p: &str| dir.join(p).display().to_string();
    format!(
        r#"[containers]
cgroups = "disabled"
# podman's defaults (nofile 1048576, nproc 4194304) exceed this machine's hard limits, which
# crun may not raise: stay within them.
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
log_driver = "k8s-file"

[network]
network_backend = "cni"
cni_plugin_dirs = [{bin:?}]
network_config_dir = {conf:?}
default_network = "tt-default"
default_subnet = "198.18.99.0/24"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = {events:?}
runtime = "crun"
"#,
        bin = d("cni-bin"),
        conf = d("net.d"),
        events = d("podman-events.log"),
        nofile = hard_limit("Max open files").min(1024),
        nproc = hard_limit("Max processes").min(4096),
    )
}

/// This process's hard limit from `/proc/self/limits` (`unlimited` as `u64::MAX`).
fn hard_limit(name: &str) -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_default();
    let hard = line[name.len().min(line.len())..].split_whitespace().nth(1).unwrap_or("unlimited");
    hard.parse().unwrap_or(u64::MAX)
}

/// storage.conf: vfs (no overlay on the scratch filesystem needed) under the scratch dir.
fn storage_conf(dir: &Path) -> String {
    format!(
        "[storage]\ndriver = \"vfs\"\ngraphroot = {:?}\nrunroot = \"/run/containers/storage\"\n",
        dir.join("storage").display().to_string()
    )
}
