//! Network namespaces made by the benchmark, and the threads that run plugins inside them.
//!
//! Every name starts with `tb-<pid>-`; [`sweep_leftovers`] removes namespaces and scratch directories of
//! runs whose process is gone. The machine's own namespace is never entered: a [`Node`] is a dedicated
//! thread that `setns`-es itself into a node namespace and spawns plugins from there (children inherit
//! the spawning thread's network namespace), so no `ip netns exec` sits inside the timed region.

use crate::runner::{self, Outcome, Spawn};
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Prefix of every namespace and scratch directory this program makes.
pub const PREFIX: &str = "tb-";

/// `ip`, from the usual places.
pub fn ip_binary() -> Result<PathBuf, String> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "ip (iproute2) not found".to_string())
}

/// Run `ip <args>` (from the machine's namespace: only `netns add/del/list` and `ip -n <ours>`).
pub fn ip(ip: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(ip)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A namespace made with `ip netns add`, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    ip: PathBuf,
}

impl Netns {
    pub fn create(ip_bin: &Path, name: &str) -> Result<Netns, String> {
        ip(ip_bin, &["netns", "add", name], None)?;
        Ok(Netns { name: name.to_string(), ip: ip_bin.to_path_buf() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind mount a runtime passes as `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&self.ip, &["netns", "del", &self.name], None) {
            eprintln!("tether-bench: cleanup: {e}");
        }
    }
}

type Job = (Vec<Spawn>, mpsc::Sender<(Vec<Outcome>, Duration)>);

/// A thread living inside one node namespace; it runs batches of spawns for the caller.
pub struct Node {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    /// Start the thread and move it into `ns`. Drop the `Node` before the namespace.
    pub fn start(ns: &Netns) -> Result<Node, String> {
        let fd = File::open(ns.path()).map_err(|e| format!("opening {}: {e}", ns.path().display()))?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let label = ns.name().to_string();
        let thread = std::thread::Builder::new()
            .name(label.clone())
            .spawn(move || {
                // This thread alone changes namespace, and it never goes back: it ends with the Node.
                if let Err(e) = setns(&fd, CloneFlags::CLONE_NEWNET) {
                    let _ = ready_tx.send(Err(format!("setns into {label}: {e}")));
                    return;
                }
                drop(fd);
                let _ = ready_tx.send(Ok(()));
                for (spawns, reply) in inbox {
                    let _ = reply.send(runner::run_batch(&spawns));
                }
            })
            .map_err(|e| format!("starting the thread for {}: {e}", ns.name()))?;
        let node = Node { jobs: Some(jobs), thread: Some(thread) };
        ready_rx.recv().map_err(|_| format!("the thread for {} died", ns.name()))??;
        Ok(node)
    }

    /// Run a batch inside the namespace (all children at once) and wait for it.
    pub fn run(&self, spawns: Vec<Spawn>) -> (Vec<Outcome>, Duration) {
        let n = spawns.len();
        let (tx, rx) = mpsc::channel();
        let sent = self.jobs.as_ref().map(|jobs| jobs.send((spawns, tx)).is_ok()).unwrap_or(false);
        match sent.then(|| rx.recv().ok()).flatten() {
            Some(result) => result,
            None => {
                let failed = Outcome {
                    elapsed: Duration::ZERO,
                    status: runner::Status::Failed("node thread is gone".into()),
                    stdout: Vec::new(),
                    stderr: String::new(),
                    cpu: Duration::ZERO,
                    rss_kib: None,
                };
                (vec![failed; n], Duration::ZERO)
            }
        }
    }

    /// Run one spawn.
    pub fn run_one(&self, spawn: Spawn) -> Outcome {
        let (mut outs, _) = self.run(vec![spawn]);
        outs.pop().unwrap_or(Outcome {
            elapsed: Duration::ZERO,
            status: runner::Status::Failed("no outcome".into()),
            stdout: Vec::new(),
            stderr: String::new(),
            cpu: Duration::ZERO,
            rss_kib: None,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The pid in a `tb-<pid>` or `tb-<pid>-...` name.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits = rest.split('-').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Is `pid` another live tether-bench (whose namespaces must be left alone)?
fn live_bench(pid: u32) -> bool {
    pid != std::process::id()
        && std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() == "tether-bench").unwrap_or(false)
}

/// Remove namespaces and `/tmp/tb-<pid>` directories left by earlier runs that are no longer running.
pub fn sweep_leftovers(ip_bin: &Path) {
    if let Ok(list) = ip(ip_bin, &["netns", "list"], None) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if owner_pid(name).is_some_and(|pid| !live_bench(pid)) {
                eprintln!("tether-bench: removing leftover namespace {name}");
                if let Err(e) = ip(ip_bin, &["netns", "del", name], None) {
                    eprintln!("tether-bench: {e}");
                }
            }
        }
    }
    // Where main.rs makes each run's directory.
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owner_pid(&name).is_some_and(|pid| !live_bench(pid)) && entry.path().is_dir() {
                eprintln!("tether-bench: removing leftover directory {}", entry.path().display());
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn only_tb_pid_names_are_ours() {
        assert_eq!(owner_pid("tb-1234-ptp-tn"), Some(1234));
        assert_eq!(owner_pid("tb-99"), Some(99));
        assert_eq!(owner_pid("tb-runner-test-5"), None);
        assert_eq!(owner_pid("tb-"), None);
        assert_eq!(owner_pid("td123-node"), None);
        assert_eq!(owner_pid("cni-1234"), None);
    }
}
