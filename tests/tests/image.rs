//! The node image, built and run with Debian's podman as a DaemonSet would run it: the `prebuilt` target of the
//! `Dockerfile` (FROM scratch, so no registry is needed) from the static binaries under test, run with temporary
//! directories as the node's `/opt/cni/bin` and `/etc/cni/net.d`.
//!
//! Podman runs in a box of its own: a process in a private mount namespace, with tmpfs over `/var/lib`, `/run`
//! and `/dev/shm` (podman's storage and state, gone with the box) and without the hybrid cgroup2 mount
//! `/sys/fs/cgroup/unified`, which podman refuses; and in a new, empty network namespace, with `--network none`
//! besides, so nothing touches the machine's own network. Every podman command enters the box with `nsenter`.
//!
//! The image needs static binaries (it has no dynamic loader). scripts/test's second pass runs this test against
//! the static release build; the first pass, against dynamic debug binaries, leaves it to that pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tether_tests::cmd::{self, Run};
use tether_tests::{bins, gate, TempDir};

/// Podman's configuration in the box: cgroupfs (there is no systemd to ask), no journald, and rlimits within
/// this machine's hard limits (podman's defaults exceed them, and runc then fails to set them).
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"#;

/// True when the ELF file at `path` has no program interpreter (PT_INTERP): a static executable.
fn is_static(path: &Path) -> bool {
    let Ok(elf) = fs::read(path) else { return false };
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 {
        return false;
    }
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        elf.get(at..at + 4).is_none_or(|t| u32::from_le_bytes(t.try_into().unwrap()) != 3)
    })
}

/// A private mount and network namespace kept alive by a `sleep`, where podman runs.
struct PodmanBox {
    holder: Child,
    dir: TempDir,
    /// The cgroup (v1, cgroupfs) under which containers and their conmon run, removed with the box.
    cgroup_parent: String,
}

impl PodmanBox {
    fn new() -> PodmanBox {
        let dir = TempDir::new("podman");
        fs::write(dir.path().join("containers.conf"), CONTAINERS_CONF).unwrap();
        let ready = dir.path().join("ready");
        let script = format!(
            "set -e; mount -t tmpfs -o mode=0755 tmpfs /var/lib; mount -t tmpfs -o mode=0755 tmpfs /run; \
             mount -t tmpfs -o mode=1777 tmpfs /dev/shm; \
             if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; \
             touch {}; exec sleep 3600",
            ready.display()
        );
        let holder = Command::new("unshare")
            .args(["--mount", "--net", "--propagation", "private", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let cgroup_parent = format!("/{}", tether_tests::netns::unique_name("podman"));
        let b = PodmanBox { holder, dir, cgroup_parent };
        let start = Instant::now();
        while !ready.exists() {
            assert!(start.elapsed() < Duration::from_secs(10), "the podman box did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    /// `podman <args>` inside the box.
    fn podman(&self, args: &[&str]) -> Run {
        let mut c = Command::new("nsenter");
        let pid = self.holder.id().to_string();
        c.args(["-t", &pid, "-m", "-n", "--", "podman"]).args(args);
        c.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"));
        cmd::run(c, Vec::new(), "", Duration::from_secs(120))
    }

    #[track_caller]
    fn podman_ok(&self, args: &[&str]) -> String {
        self.podman(args).assert_success().stdout.trim().to_string()
    }
}

impl Drop for PodmanBox {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        // Killing the holder drops the namespaces and with them every tmpfs (images, containers, state).
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        remove_cgroups(&self.cgroup_parent);
    }
}

/// Remove the cgroup `parent` and everything below it in every v1 hierarchy, deepest first (a cgroup directory
/// goes with `rmdir`, once its children and processes are gone).
fn remove_cgroups(parent: &str) {
    fn rmdir_tree(dir: &Path) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                rmdir_tree(&e.path());
            }
        }
        let _ = fs::remove_dir(dir);
    }
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else { return };
    for h in hierarchies.flatten() {
        rmdir_tree(&h.path().join(parent.trim_start_matches('/')));
    }
}

/// The node's directories as the container sees them, and the files in them.
struct NodeDirs {
    dir: TempDir,
}

impl NodeDirs {
    fn new() -> NodeDirs {
        let dir = TempDir::new("image-node");
        fs::create_dir_all(dir.path().join("opt-cni-bin")).unwrap();
        fs::create_dir_all(dir.path().join("etc-cni-net.d")).unwrap();
        NodeDirs { dir }
    }
    fn bin(&self) -> PathBuf {
        self.dir.path().join("opt-cni-bin")
    }
    fn conf(&self) -> PathBuf {
        self.dir.path().join("etc-cni-net.d")
    }
    fn conflist(&self) -> PathBuf {
        self.conf().join("10-tether.conflist")
    }
    fn volumes(&self) -> Vec<String> {
        vec![
            "-v".into(),
            format!("{}:/host/opt/cni/bin", self.bin().display()),
            "-v".into(),
            format!("{}:/host/etc/cni/net.d", self.conf().display()),
        ]
    }
    fn files(&self) -> Vec<String> {
        let mut out: Vec<String> = [self.bin(), self.conf()]
            .iter()
            .flat_map(|d| fs::read_dir(d).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        out.sort();
        out
    }
}

fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const ALL: [&str; 3] = ["10-tether.conflist", "tether", "tether-ipam"];

/// `podman run` arguments up to the container's settings: no network, our cgroup parent, and confined as
/// deploy/20-daemonset.yaml confines it (read-only root file system, no capabilities), with the node's directories.
fn run_args(b: &PodmanBox, node: &NodeDirs, name: &str, detach: bool) -> Vec<String> {
    let mut args: Vec<String> = vec!["run".into()];
    if detach {
        args.push("-d".into());
    }
    for a in
        ["--name", name, "--network", "none", "--cgroup-parent", &b.cgroup_parent, "--read-only", "--cap-drop", "all"]
    {
        args.push(a.to_string());
    }
    args.extend(node.volumes());
    args
}

/// `podman run -d` of the image with the node's directories and `env`; the container's name.
fn start(b: &PodmanBox, image: &str, node: &NodeDirs, name: &str, env: &[&str]) -> String {
    let mut args = run_args(b, node, name, true);
    for e in env {
        args.extend(["-e".to_string(), e.to_string()]);
    }
    args.push(image.to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    b.podman_ok(&refs);
    name.to_string()
}

/// SIGTERM the container and wait for it: its exit code and how long it took.
fn sigterm(b: &PodmanBox, name: &str) -> (i64, Duration) {
    let t = Instant::now();
    b.podman_ok(&["kill", "--signal", "TERM", name]);
    let code: i64 = b.podman_ok(&["wait", name]).parse().unwrap();
    (code, t.elapsed())
}

#[test]
fn image_installs_replaces_repairs_and_stops_on_sigterm() {
    if !gate::require_root() || !gate::require_tool("podman") || !gate::require_tool("unshare") {
        return;
    }
    let src = bins::bin_dir();
    let names = ["tether", "tether-ipam", "tether-install"];
    if !names.iter().all(|n| is_static(&src.join(n))) {
        // The first pass of scripts/test (debug, dynamic): the release pass runs this test, unless disabled.
        let release_pass = std::env::var("TETHER_TEST_RELEASE").map_or(true, |v| v != "0");
        if gate::ci_required() && !release_pass {
            panic!("the image test needs static binaries; set CNI_TEST_BIN_DIR to scripts/build-release's output");
        }
        eprintln!("image test: {} holds dynamic binaries; it runs against the static release build", src.display());
        return;
    }
    let b = PodmanBox::new();
    // The build context: the Dockerfile and LICENSE from the repository, and the binaries under test in dist/.
    let ctx = TempDir::new("image-ctx");
    fs::copy(bins::repo_root().join("Dockerfile"), ctx.path().join("Dockerfile")).unwrap();
    fs::copy(bins::repo_root().join("LICENSE"), ctx.path().join("LICENSE")).unwrap();
    fs::create_dir_all(ctx.path().join("dist")).unwrap();
    for n in names {
        fs::copy(src.join(n), ctx.path().join("dist").join(n)).unwrap();
    }
    let image = format!("localhost/tether-test-{}:latest", std::process::id());
    let ctx_path = ctx.path().display().to_string();
    b.podman_ok(&["build", "--network", "none", "--target", "prebuilt", "-t", &image, &ctx_path]);
    let inspect: Value = serde_json::from_str(&b.podman_ok(&["image", "inspect", &image])).unwrap();
    assert_eq!(inspect[0]["Config"]["Entrypoint"][0], "/opt/tether/tether-install", "{inspect}");

    let node = NodeDirs::new();
    let settings = ["TETHER_POD_CIDRS=198.18.1.0/24,fd7e:7e7e:1::/64", "TETHER_CHECK_INTERVAL=0.2"];
    // First run: the binaries (exactly the ones built) and the conflist appear.
    let first = start(&b, &image, &node, "first", &settings);
    eventually("the first run installed everything", || node.files() == ALL);
    for n in ["tether", "tether-ipam"] {
        assert_eq!(fs::read(node.bin().join(n)).unwrap(), fs::read(src.join(n)).unwrap(), "{n} differs from the build");
    }
    let doc: Value = serde_json::from_str(&fs::read_to_string(node.conflist()).unwrap()).unwrap();
    assert_eq!(doc["plugins"][0]["type"], "tether");
    assert_eq!(doc["plugins"][0]["ipam"]["ranges"][1][0]["subnet"], "fd7e:7e7e:1::/64");
    let (code, took) = sigterm(&b, &first);
    assert_eq!(code, 0, "{}", b.podman_ok(&["logs", &first]));
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert_eq!(node.files(), ALL, "the conflist stays without TETHER_UNINSTALL");

    // Second run, as an upgrade: an older tether on the node (held open, as a runtime executing it would) and
    // new settings; both are replaced by rename: new inodes, the open file keeps its old content.
    fs::write(node.bin().join("tether"), "old tether").unwrap();
    let held = fs::File::open(node.bin().join("tether")).unwrap();
    let inode = |p: &Path| fs::metadata(p).unwrap().ino();
    let (bin_inode, conf_inode) = (inode(&node.bin().join("tether")), inode(&node.conflist()));
    let second =
        start(&b, &image, &node, "second", &[settings[0], settings[1], "TETHER_MTU=1400", "TETHER_UNINSTALL=true"]);
    eventually("the second run replaced the old binary", || {
        fs::read(node.bin().join("tether")).is_ok_and(|c| c == fs::read(src.join("tether")).unwrap())
    });
    eventually("the second run rewrote the conflist", || {
        fs::read_to_string(node.conflist()).is_ok_and(|t| t.contains("1400"))
    });
    assert_ne!(inode(&node.bin().join("tether")), bin_inode);
    assert_ne!(inode(&node.conflist()), conf_inode);
    let mut was = String::new();
    std::io::Read::read_to_string(&mut &held, &mut was).unwrap();
    assert_eq!(was, "old tether");
    assert_eq!(node.files(), ALL, "no temporary file left");

    // Removal is repaired.
    fs::remove_file(node.bin().join("tether-ipam")).unwrap();
    fs::remove_file(node.conflist()).unwrap();
    eventually("the removed files are back", || node.files() == ALL);

    // SIGTERM with TETHER_UNINSTALL: prompt exit 0, conflist gone, binaries kept for the pods still running.
    let (code, took) = sigterm(&b, &second);
    assert_eq!(code, 0, "{}", b.podman_ok(&["logs", &second]));
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert_eq!(node.files(), ["tether", "tether-ipam"]);

    // Bad settings: exit 2 naming the setting; the node's directories are untouched.
    let empty = NodeDirs::new();
    let mut args = run_args(&b, &empty, "bad", false);
    args.extend([
        "-e".into(),
        "TETHER_POD_CIDRS=198.18.2.0/24".into(),
        "-e".into(),
        "TETHER_MTU=9".into(),
        image.clone(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let bad = b.podman(&refs);
    assert_eq!(bad.code(), Some(2), "{bad}");
    assert!(bad.stderr.contains("setting TETHER_MTU"), "{bad}");
    assert_eq!(empty.files(), Vec::<String>::new());
}
