//! A private mount and PID namespace inside a test-made node network namespace: where a runtime
//! (containerd, podman) runs as if it were the node's.
//!
//! Why: libcni's cache is fixed at `/var/lib/cni`, containerd keeps pod namespaces under
//! `/var/run/netns` and its shims' sockets under `/run/containerd`, podman writes `/var/lib`,
//! `/run` and `/dev/shm`. A tmpfs over each, in a mount namespace of our own, keeps all of it
//! away from the machine and makes it vanish with the box. The box is entered with
//! `nsenter --net=`, not `ip netns exec`, which remounts `/sys` and so hides the cgroup mounts
//! runc needs. The PID namespace makes clean-up total: killing its PID 1 kills every shim,
//! pause process and container left.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tether_tests::cmd::{self, Run};
use tether_tests::Netns;

/// `PATH` inside the box (runc and iptables live in /usr/sbin).
pub const BOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the box mounts besides the tmpfs over `/var/lib` and `/run`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoxMounts {
    /// A tmpfs over `/dev/shm` too (podman).
    pub dev_shm: bool,
    /// Unmount the hybrid cgroup2 mount `/sys/fs/cgroup/unified` (crun and podman refuse a hybrid
    /// layout).
    pub drop_unified_cgroup: bool,
}

/// The box: its PID 1 (a `sleep` holding the namespaces) and the `unshare` that made it.
#[derive(Debug)]
pub struct NodeBox {
    unshare: Child,
    /// PID 1 of the box, as the machine sees it.
    pid1: u32,
}

impl NodeBox {
    /// Make a box inside `node`.
    #[track_caller]
    pub fn new(node: &Netns, mounts: BoxMounts) -> NodeBox {
        let mut script = String::from(
            "set -e; mount -t tmpfs -o mode=0755 tmpfs /var/lib; mount -t tmpfs -o mode=0755 tmpfs /run; ",
        );
        if mounts.dev_shm {
            script.push_str("mount -t tmpfs -o mode=1777 tmpfs /dev/shm; ");
        }
        if mounts.drop_unified_cgroup {
            script.push_str("if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; ");
        }
        script.push_str("echo ready; exec sleep infinity");
        // If the test process dies (SIGKILL, a crash), `setpriv --pdeathsig` kills unshare and
        // `--kill-child` then kills the box's PID 1, and with it the whole PID namespace: no
        // daemon outlives its test.
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", node.path_str()))
            .args(["--", "setpriv", "--pdeathsig", "KILL"])
            .args(["unshare", "--mount", "--propagation", "private", "--pid", "--kill-child", "--mount-proc"])
            .args(["--", "sh", "-c", &script])
            .env("PATH", BOX_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut unshare = command.spawn().unwrap_or_else(|e| panic!("cannot start nsenter/unshare: {e}"));
        let mut line = String::new();
        if let Some(out) = unshare.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() != "ready" {
            let _ = unshare.kill();
            let status = unshare.wait();
            panic!("the node box did not come up ({status:?}); see stderr above");
        }
        let pid1 = only_child(unshare.id()).unwrap_or_else(|| panic!("unshare {} has no child", unshare.id()));
        NodeBox { unshare, pid1 }
    }

    /// The box's PID 1 as the machine sees it.
    pub fn pid1(&self) -> u32 {
        self.pid1
    }

    /// A command that runs `args` inside the box (its mounts, its PID namespace, the node's network).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid1.to_string(), "--mount", "--pid", "--net", "--"]).args(args).env("PATH", BOX_PATH);
        c
    }

    /// Run `args` inside the box (with the harness's default timeout).
    pub fn exec(&self, args: &[&str]) -> Run {
        cmd::run(self.command(args), Vec::new(), "", cmd::DEFAULT_TIMEOUT)
    }

    /// [`NodeBox::exec`], panicking on failure; returns stdout.
    #[track_caller]
    pub fn exec_ok(&self, args: &[&str]) -> String {
        self.exec(args).assert_success().stdout.clone()
    }

    /// Run `args` inside the network namespace at `netns` (a path inside the box, e.g. a pod's
    /// `/var/run/netns/cni-...`).
    pub fn exec_in_netns(&self, netns: &str, args: &[&str]) -> Run {
        let net = format!("--net={netns}");
        let mut full = vec!["nsenter", net.as_str(), "--"];
        full.extend_from_slice(args);
        self.exec(&full)
    }

    /// A file's contents inside the box, `None` when it cannot be read.
    pub fn read(&self, path: &str) -> Option<String> {
        let run = self.exec(&["cat", path]);
        run.success().then_some(run.stdout)
    }

    /// Kill everything in the box (SIGKILL to its PID 1 takes the whole PID namespace with it)
    /// and wait until it is gone.
    fn destroy(&mut self) {
        let _ = kill(Pid::from_raw(self.pid1 as i32), Signal::SIGKILL);
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.pid1)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeBox {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// The one child of `pid` (from `/proc/<pid>/task/<pid>/children`), waiting briefly for it.
pub fn only_child(pid: u32) -> Option<u32> {
    let file = format!("/proc/{pid}/task/{pid}/children");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let children = std::fs::read_to_string(&file).unwrap_or_default();
        if let Some(child) = children.split_whitespace().next().and_then(|c| c.parse().ok()) {
            return Some(child);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
