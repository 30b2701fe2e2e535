//! A box for thousands of network namespaces that cannot outlive the benchmark.
//!
//! The box is a private mount namespace (made by a thread of this process with `unshare`) whose
//! `/run/netns` is a tmpfs of its own. A namespace is made by `unshare(CLONE_NEWNET)` on the box's
//! factory thread and kept by a bind mount of `/proc/thread-self/ns/net` on `/run/netns/<name>`
//! inside the box: the path a runtime passes as `CNI_NETNS`, and a name `ip` resolves, but only for
//! threads and children inside the box. Nothing appears in the machine's own `/run/netns` or mount
//! table; `ip netns add` (a bind mount in the machine's mount namespace, and a process, per
//! namespace) would cost seconds for 3,000 and leave them behind when the run is killed.
//!
//! A side of a comparison runs in a [`View`] of the box: the box's mounts plus a procfs instance of its
//! own, as on a machine of its own (see [`NsBox::view`]).
//!
//! Cleanup needs no code to run: the mount namespaces (the box's and its views') are held by their
//! fds and by the threads inside them, all of this process; when the last goes (drop, or the process dying however it dies,
//! `panic = "abort"` and SIGKILL included) the kernel drops the mounts, then the namespaces, then
//! their veths, routes and nftables tables. [`NsBox::drop`] checks that no task still sits in any
//! namespace the box made.

use crate::driver::Driver;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where the box keeps its namespaces (a tmpfs visible inside the box and its views only).
pub const NETNS_DIR: &str = "/run/netns";

pub struct NsBox {
    factory: Option<Driver>,
    mnt: Option<Arc<OwnedFd>>,
    /// Inode numbers of the mount namespace and of every network namespace made (for the final check).
    made: Mutex<HashSet<u64>>,
    label: String,
}

/// A mount namespace of the box with its own `/proc` ([`NsBox::view`]).
pub struct View {
    mnt: Arc<OwnedFd>,
}

impl View {
    /// What a driver thread runs first to live in this view, in network namespace `netns` (a box path).
    pub fn enter(&self, netns: &Path) -> impl FnOnce() -> Result<(), String> + Send + 'static {
        enter(self.mnt.clone(), netns)
    }
}

fn enter(mnt: Arc<OwnedFd>, netns: &Path) -> impl FnOnce() -> Result<(), String> + Send + 'static {
    let netns = netns.to_path_buf();
    move || {
        join_mount_ns(&mnt)?;
        let fd = File::open(&netns).map_err(|e| format!("opening {}: {e}", netns.display()))?;
        setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns into {}: {e}", netns.display()))
    }
}

/// Move the calling thread into the mount namespace `mnt`.
fn join_mount_ns(mnt: &OwnedFd) -> Result<(), String> {
    // setns(CLONE_NEWNS) refuses a thread that shares its fs_struct with the rest of the process.
    unshare(CloneFlags::CLONE_FS).map_err(|e| format!("unshare(fs): {e}"))?;
    setns(mnt, CloneFlags::CLONE_NEWNS).map_err(|e| format!("entering a mount namespace of the box: {e}"))
}

/// The calling thread's mount namespace, held open, and its inode number.
fn own_mount_ns() -> Result<(OwnedFd, u64), String> {
    const PATH: &str = "/proc/thread-self/ns/mnt";
    let inode = ns_inode(PATH)?;
    let fd = File::open(PATH).map_err(|e| format!("opening {PATH}: {e}"))?;
    Ok((OwnedFd::from(fd), inode))
}

fn ns_inode(path: &str) -> Result<u64, String> {
    std::fs::metadata(path).map(|m| m.ino()).map_err(|e| format!("stat {path}: {e}"))
}

/// A name becomes a path below [`NETNS_DIR`]: only `[A-Za-z0-9._-]`, not `.`/`..`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl NsBox {
    pub fn new(label: &str) -> Result<NsBox, String> {
        let factory = Driver::start(&format!("{label}-box"), || {
            // CLONE_NEWNS implies CLONE_FS: this thread alone gets the new root and mount table.
            unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS).map_err(|e| format!("unshare(mount): {e}"))?;
            // Nothing mounted in the box propagates to the machine's mount namespace.
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                .map_err(|e| format!("making / private in the box: {e}"))?;
            std::fs::create_dir_all(NETNS_DIR).map_err(|e| format!("creating {NETNS_DIR}: {e}"))?;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("tmpfs"), NETNS_DIR, Some("tmpfs"), flags, Some("mode=0755"))
                .map_err(|e| format!("mounting a tmpfs on {NETNS_DIR} in the box: {e}"))
        })?;
        let (mnt, inode) = factory.call(own_mount_ns)??;
        Ok(NsBox {
            factory: Some(factory),
            mnt: Some(Arc::new(mnt)),
            made: Mutex::new(HashSet::from([inode])),
            label: label.to_string(),
        })
    }

    /// Make network namespaces `/run/netns/<name>` inside the box (one job on the factory thread).
    pub fn create(&self, names: &[String]) -> Result<Vec<PathBuf>, String> {
        if let Some(bad) = names.iter().find(|n| !valid_name(n)) {
            return Err(format!("invalid namespace name {bad:?}"));
        }
        let factory = self.factory.as_ref().ok_or("the box is closed")?;
        let names = names.to_vec();
        let (paths, inodes) = factory.call(move || {
            let mut paths = Vec::with_capacity(names.len());
            let mut inodes = Vec::with_capacity(names.len());
            for name in names {
                let path = Path::new(NETNS_DIR).join(&name);
                unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(net) for {name}: {e}"))?;
                File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
                mount(Some("/proc/thread-self/ns/net"), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .map_err(|e| format!("bind-mounting {name}: {e}"))?;
                inodes.push(ns_inode("/proc/thread-self/ns/net")?);
                paths.push(path);
            }
            Ok::<_, String>((paths, inodes))
        })??;
        self.made.lock().unwrap_or_else(|p| p.into_inner()).extend(inodes);
        Ok(paths)
    }

    /// A view of the box with a procfs instance of its own on `/proc`, for one side of a comparison.
    ///
    /// Why: a `/proc/sys/net/...` lookup walks one dentry hash chain holding every network namespace
    /// that looked up the same name through the same procfs instance (same parent dentry, same
    /// name), cold in the cache of each new process. Measured (6.18, `bench/probes/node.sh`): a
    /// tether bridge ADD's one `/proc/sys` open (the new port's `disable_ipv6`) took 25-37 us, and
    /// 0.9-1.3 ms once 1,000 containers of the reference bridge plugin (which writes sysctls inside
    /// each container through the node's `/proc`) existed on another node namespace of the same box.
    /// Two machines share no dentries; with a procfs each, the sides of one run do not either (each
    /// procfs mount is an instance of its own since Linux 5.8).
    ///
    /// The view is a copy of the box's mounts as they are now: it sees the namespaces made before it.
    pub fn view(&self) -> Result<View, String> {
        let mnt = self.mnt.clone().ok_or("the box is closed")?;
        let maker = Driver::start(&format!("{}-view", self.label), move || {
            join_mount_ns(&mnt)?;
            unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(mount) for a view: {e}"))?;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
                .map_err(|e| format!("mounting a procfs in a view of the box: {e}"))
        })?;
        let (fd, inode) = maker.call(own_mount_ns)??;
        self.made.lock().unwrap_or_else(|p| p.into_inner()).insert(inode);
        Ok(View { mnt: Arc::new(fd) })
    }

    /// Tasks of any process that are still in a namespace this box made (should be none once closed).
    fn occupants(&self) -> Vec<String> {
        let made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = Vec::new();
        let Ok(procs) = std::fs::read_dir("/proc") else { return found };
        for proc in procs.flatten().filter(|p| p.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit())) {
            let Ok(tasks) = std::fs::read_dir(proc.path().join("task")) else { continue };
            for task in tasks.flatten() {
                for kind in ["net", "mnt"] {
                    let link = task.path().join("ns").join(kind);
                    if std::fs::metadata(&link).is_ok_and(|m| made.contains(&m.ino())) {
                        found.push(link.display().to_string());
                    }
                }
            }
        }
        found
    }
}

impl Drop for NsBox {
    fn drop(&mut self) {
        drop(self.factory.take());
        drop(self.mnt.take());
        let left = self.occupants();
        if !left.is_empty() {
            eprintln!("tether-bench: cleanup: {} still inside the box {}: {}", left.len(), self.label, left.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_stay_below_the_dir() {
        assert!(valid_name("tb-12-sc-t-c999"));
        for bad in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
