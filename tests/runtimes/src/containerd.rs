//! containerd 1.6 with its CRI plugin, started by the test as a node would run it, but with every
//! path private: `root`, `state`, both sockets, the CNI `bin_dir` and `conf_dir` in the test's
//! scratch directory; `/var/lib` (libcni's cache) and `/run` (pod namespaces, shim sockets) on
//! tmpfs inside a [`NodeBox`]; the pods' cgroups in a [`CgroupFolder`] of the test.

use crate::cgroup::CgroupFolder;
use crate::cri::messages::{DnsConfig, LinuxPodSandboxConfig, PodSandboxConfig, PodSandboxMetadata};
use crate::cri::Cri;
use crate::image::{Image, IMAGE_NAME};
use crate::nodebox::{only_child, BoxMounts, NodeBox};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tether_tests::{bins, cmd, gate, Node};

/// The plugins in the CNI `bin_dir`: ours, and the reference ones the networks use.
const REFERENCE_PLUGINS: [&str; 5] = ["loopback", "portmap", "ptp", "host-local", "bridge"];

/// The DNS configuration every test pod gets (never queried: only checked in `/etc/resolv.conf`).
pub const POD_DNS_SERVER: &str = "198.18.0.53";
/// The search domain every test pod gets.
pub const POD_DNS_SEARCH: &str = "tt.svc.cluster.local";

/// How containerd's CNI is configured.
#[derive(Debug, Clone, Default)]
pub struct CniSetup {
    /// Conflists written to `conf_dir` before containerd starts.
    pub conflists: Vec<Value>,
    /// A `conf_template` (then `conf_dir` starts empty, and the kubelet's pod CIDR renders it).
    pub conf_template: Option<String>,
    /// Where `tether` and `tether-ipam` are; `None` is the harness's [`bins::bin_dir`].
    pub tether_dir: Option<PathBuf>,
}

/// A running containerd and what it needs; everything is removed on drop.
pub struct Containerd {
    /// The CRI client (reconnected by [`Containerd::restart`]).
    pub cri: Cri,
    daemon: Option<Child>,
    // Field order is drop order: the box (every shim, pause and container in it) before the
    // cgroups, which can only be removed empty; the node (namespace, scratch dir) last.
    nodebox: NodeBox,
    cgroups: CgroupFolder,
    /// The node: its network namespace and the scratch directory (IPAM `dataDir` is
    /// [`Node::data_dir`]).
    pub node: Node,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd").field("node", &self.node).finish()
    }
}

/// containerd, or skip (fail under `CI`) when it is not installed.
#[track_caller]
pub fn require_containerd() -> bool {
    ["containerd", "ctr", "runc", "nsenter", "unshare", "iptables"].iter().all(|tool| gate::require_tool(tool))
        && (Path::new(crate::image::BUSYBOX).is_file() || gate::skip_or_fail("busybox-static"))
        && (bins::reference("portmap").is_some() || gate::skip_or_fail("containernetworking-plugins"))
}

impl Containerd {
    /// Start containerd in a fresh node with the CNI setup `cni` makes from the node's IPAM
    /// data directory, import the test image, and connect.
    #[track_caller]
    pub fn start(tag: &str, cni: impl FnOnce(&Path) -> CniSetup) -> Containerd {
        let node = Node::new(tag);
        let cni = cni(&node.data_dir());
        let dir = node.dir.path().to_path_buf();
        let bin_dir = dir.join("cni-bin");
        let conf_dir = dir.join("net.d");
        for d in [&bin_dir, &conf_dir] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        link_plugins(&bin_dir, cni.tether_dir.as_deref());
        for (i, conflist) in cni.conflists.iter().enumerate() {
            let file = conf_dir.join(format!("{}-{}.conflist", 10 + i, conflist["name"].as_str().unwrap_or("net")));
            std::fs::write(&file, serde_json::to_string_pretty(conflist).unwrap_or_default())
                .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        }
        let cgroups = CgroupFolder::new("pods");
        std::fs::write(dir.join("config.toml"), config_toml(&dir, &bin_dir, &conf_dir, cni.conf_template.as_deref()))
            .unwrap_or_else(|e| panic!("write config.toml: {e}"));
        let image = Image::build(&dir);
        let nodebox = NodeBox::new(&node.ns, BoxMounts::default());
        let daemon = spawn_daemon(&nodebox, &dir);
        let mut containerd = Containerd { cri: wait_for_cri(&dir), daemon: Some(daemon), nodebox, cgroups, node };
        containerd.assert_daemon_alive("after start");
        containerd.import(&image);
        containerd
    }

    /// The scratch directory (config, sockets, root, state, log).
    pub fn dir(&self) -> &Path {
        self.node.dir.path()
    }

    /// The box containerd runs in.
    pub fn nodebox(&self) -> &NodeBox {
        &self.nodebox
    }

    /// The CRI socket.
    pub fn socket(&self) -> PathBuf {
        self.dir().join("containerd.sock")
    }

    /// containerd's log (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("containerd.log")).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    #[track_caller]
    fn assert_daemon_alive(&mut self, when: &str) {
        if let Some(daemon) = self.daemon.as_mut() {
            if let Ok(Some(status)) = daemon.try_wait() {
                panic!("containerd exited {when} ({status}):\n{}", self.log_tail(40));
            }
        }
    }

    /// `ctr -n k8s.io images import` of the test image, unpacked for the native snapshotter.
    #[track_caller]
    fn import(&self, image: &Image) {
        let sock = self.socket().display().to_string();
        let archive = image.archive.display().to_string();
        let run = cmd::tool(
            "ctr",
            &["--address", &sock, "-n", "k8s.io", "images", "import", "--snapshotter", "native", &archive],
        );
        if !run.success() {
            panic!("importing the test image failed:\n{run}\ncontainerd log:\n{}", self.log_tail(30));
        }
        let list = cmd::tool("ctr", &["--address", &sock, "-n", "k8s.io", "images", "ls", "-q"]);
        assert!(list.stdout.lines().any(|l| l == IMAGE_NAME), "{IMAGE_NAME} not imported:\n{list}");
    }

    /// Stop containerd (SIGTERM, as a service manager does) while its pods keep running, start it
    /// again on the same state, and reconnect the CRI client.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop_daemon();
        let dir = self.dir().to_path_buf();
        self.daemon = Some(spawn_daemon(&self.nodebox, &dir));
        self.cri = wait_for_cri(&dir);
        self.assert_daemon_alive("after restart");
    }

    fn stop_daemon(&mut self) {
        let Some(mut daemon) = self.daemon.take() else { return };
        // `daemon` is the nsenter that forked containerd into the box: signal containerd itself.
        if let Some(pid) = only_child(daemon.id()) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while daemon.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                if let Some(pid) = only_child(daemon.id()) {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
                let _ = daemon.kill();
                let _ = daemon.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A pod's sandbox configuration as the kubelet writes it: metadata (name, uid, namespace),
    /// hostname, DNS, the test's cgroup parent.
    pub fn pod_config(&self, name: &str, uid: &str) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: uid.to_string(),
                namespace: "tt-ns".to_string(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            dns_config: Some(DnsConfig {
                servers: vec![POD_DNS_SERVER.to_string()],
                searches: vec![POD_DNS_SEARCH.to_string()],
                options: vec!["ndots:5".to_string()],
            }),
            linux: Some(LinuxPodSandboxConfig { cgroup_parent: self.cgroups.parent() }),
            ..PodSandboxConfig::default()
        }
    }

    /// A pod's network facts, from a verbose `PodSandboxStatus`.
    #[track_caller]
    pub fn pod(&self, id: &str) -> Pod {
        let status = self.cri.pod_status(id).unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail(20)));
        let network = status.status.as_ref().and_then(|s| s.network.clone()).unwrap_or_default();
        let mut ips = vec![network.ip.clone()];
        ips.extend(network.additional_ips.iter().map(|p| p.ip.clone()));
        ips.retain(|ip| !ip.is_empty());
        let info: Value = status
            .info
            .get("info")
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_else(|| panic!("PodSandboxStatus of {id} has no verbose info: {:?}", status.info));
        let netns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["type"] == "network")
            .and_then(|n| n["path"].as_str())
            .unwrap_or("")
            .to_string();
        Pod { id: id.to_string(), state: status.status.map(|s| s.state).unwrap_or(-1), ips, netns, info }
    }

    /// libcni's cache entry for a pod's attachment (`/var/lib/cni/results/<net>-<id>-eth0`).
    pub fn cni_cache(&self, network: &str, id: &str) -> Option<Value> {
        let text = self.nodebox.read(&format!("/var/lib/cni/results/{network}-{id}-eth0"))?;
        serde_json::from_str(&text).ok()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("containerd log (last lines):\n{}", self.log_tail(40));
        }
        self.stop_daemon();
    }
}

/// A pod as the tests see it.
#[derive(Debug, Clone)]
pub struct Pod {
    /// Sandbox id (`CNI_CONTAINERID`).
    pub id: String,
    /// `PodSandboxState` (0 ready).
    pub state: i32,
    /// Its addresses, as `PodSandboxStatus` reports them (primary first).
    pub ips: Vec<String>,
    /// Its network namespace path inside the box.
    pub netns: String,
    /// containerd's verbose info.
    pub info: Value,
}

impl Pod {
    /// The pod's IPv4 address.
    #[track_caller]
    pub fn v4(&self) -> String {
        self.ips
            .iter()
            .find(|ip| !ip.contains(':'))
            .cloned()
            .unwrap_or_else(|| panic!("pod {} has no IPv4: {:?}", self.id, self.ips))
    }

    /// The pod's IPv6 address.
    #[track_caller]
    pub fn v6(&self) -> String {
        self.ips
            .iter()
            .find(|ip| ip.contains(':'))
            .cloned()
            .unwrap_or_else(|| panic!("pod {} has no IPv6: {:?}", self.id, self.ips))
    }
}

/// Symlink tether and tether-ipam (from `tether_dir`, else the harness's binaries) and the
/// reference plugins into `bin_dir`.
#[track_caller]
pub fn link_plugins(bin_dir: &Path, tether_dir: Option<&Path>) {
    let ours = |name: &str| match tether_dir {
        Some(dir) => dir.join(name),
        None => bins::ours(name),
    };
    let mut plugins = vec![("tether".to_string(), ours("tether")), ("tether-ipam".to_string(), ours("tether-ipam"))];
    for name in REFERENCE_PLUGINS {
        let path = bins::reference(name).unwrap_or_else(|| panic!("reference plugin {name} missing"));
        plugins.push((name.to_string(), path));
    }
    for (name, target) in plugins {
        std::os::unix::fs::symlink(&target, bin_dir.join(&name))
            .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", name, target.display()));
    }
}

/// containerd's configuration: everything in `dir`.
fn config_toml(dir: &Path, bin_dir: &Path, conf_dir: &Path, template: Option<&str>) -> String {
    let d = |p: &str| dir.join(p).display().to_string();
    let template_line = match template {
        Some(t) => {
            let file = dir.join("cni-template.conflist.tmpl");
            let _ = std::fs::write(&file, t);
            format!("conf_template = {:?}\n", file.display().to_string())
        }
        None => String::new(),
    };
    format!(
        r#"version = 2
root = {root:?}
state = {state:?}
# Snapshotters this node cannot have; leaving them out keeps the log readable.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = {sock:?}

[ttrpc]
  address = {ttrpc:?}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt:?}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {image:?}
  # This VM: the test runs with a raised OOM score and without AppArmor.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {bin:?}
    conf_dir = {conf:?}
    max_conf_num = 1
    {template_line}
"#,
        root = d("root"),
        state = d("state"),
        sock = d("containerd.sock"),
        ttrpc = d("containerd.sock.ttrpc"),
        opt = d("opt"),
        image = IMAGE_NAME,
        bin = bin_dir.display().to_string(),
        conf = conf_dir.display().to_string(),
    )
}

/// Start containerd inside the box, logging to `dir/containerd.log`.
#[track_caller]
fn spawn_daemon(nodebox: &NodeBox, dir: &Path) -> Child {
    let log_path = dir.join("containerd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
    let err = log.try_clone().unwrap_or_else(|e| panic!("dup log: {e}"));
    let config = dir.join("config.toml").display().to_string();
    let mut command = nodebox.command(&["containerd", "--config", &config, "--log-level", "info"]);
    command.stdin(Stdio::null()).stdout(log).stderr(err);
    command.spawn().unwrap_or_else(|e| panic!("cannot start containerd: {e}"))
}

/// Wait until containerd answers CRI `Version` on its socket.
#[track_caller]
fn wait_for_cri(dir: &Path) -> Cri {
    let socket = dir.join("containerd.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if socket.exists() {
            match Cri::connect(&socket).map(|cri| (cri.version(), cri)) {
                Ok((Ok(_), cri)) => return cri,
                Ok((Err(e), _)) => last = e.to_string(),
                Err(e) => last = e,
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
    panic!("containerd's CRI did not answer within 30 s ({last}):\n{log}");
}
