//! Network namespaces: opening `CNI_NETNS`, and switching the *current thread* into it briefly.
//!
//! `setns(2)` changes only the calling thread. tether runs a current-thread tokio runtime on the
//! main thread, so a switch is safe exactly when it is synchronous: [`Netns::enter`] returns a
//! guard that is `!Send` and restores the original namespace on drop; code holding it must not
//! await. The only things done while switched are opening sockets (a socket stays bound to the
//! namespace it was created in, whichever thread uses it later) and writing `/proc/sys/net` files
//! (resolved against the caller thread's namespace). The original namespace is saved from
//! `/proc/thread-self/ns/net`: `/proc/self` names the thread-group leader's namespace.

use crate::error::{Error, Result};
use conf::Request;
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::fstat;
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};
use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

/// `NSFS_MAGIC` from linux/magic.h: bind-mounted namespace files live on nsfs.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// The thread's own network namespace, as a path that names this thread (not the leader).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace file.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

fn netns_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Namespace { path: path.display().to_string(), cause: what.to_string() }
}

impl Netns {
    /// Open `path` and check that it is a network namespace (nsfs, or a /proc ns link).
    ///
    /// # Errors
    /// Code 101 when it cannot be opened or is not a namespace file.
    pub fn open(path: &Path) -> Result<Netns> {
        let file = File::open(path).map_err(|e| netns_error(path, e))?;
        let fs = fstatfs(&file).map_err(|e| netns_error(path, e))?;
        let magic = fs.filesystem_type();
        if magic.0 as i64 != NSFS_MAGIC && magic != PROC_SUPER_MAGIC {
            return Err(netns_error(path, format!("not a namespace file (filesystem magic {:#x})", magic.0)));
        }
        Ok(Netns { file, path: path.to_path_buf() })
    }

    /// The request's `CNI_NETNS` (conf refuses ADD and CHECK without it; this keeps the invariant
    /// an error rather than a panic).
    ///
    /// # Errors
    /// Code 4 when `CNI_NETNS` is missing, else as [`Netns::open`].
    pub fn of(request: &Request) -> Result<Netns> {
        let path = request
            .invocation
            .netns
            .as_deref()
            .ok_or_else(|| Error::Environment("required environment variable CNI_NETNS is missing".into()))?;
        Netns::open(path)
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Netns> {
        Netns::open(Path::new(THREAD_NETNS))
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw descriptor, for `IFLA_NET_NS_FD`. Valid while `self` lives.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// True when both name the same namespace (same device and inode).
    pub fn same_as(&self, other: &Netns) -> Result<bool> {
        let a = fstat(self.file.as_raw_fd()).map_err(|e| netns_error(&self.path, e))?;
        let b = fstat(other.file.as_raw_fd()).map_err(|e| netns_error(&other.path, e))?;
        Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    }

    /// Switch the calling thread into this namespace until the guard drops. Do not await while
    /// holding the guard.
    ///
    /// # Errors
    /// Code 101 when the switch fails (nothing changed then).
    pub fn enter(&self) -> Result<NetnsGuard> {
        let original = File::open(THREAD_NETNS).map_err(|e| netns_error(Path::new(THREAD_NETNS), e))?;
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| netns_error(&self.path, e))?;
        Ok(NetnsGuard { original, _not_send: PhantomData })
    }
}

/// Restores the thread's original namespace on drop.
#[must_use = "the namespace switch lasts only while the guard lives"]
pub struct NetnsGuard {
    original: File,
    /// A raw pointer makes the guard `!Send`: the switch belongs to this thread.
    _not_send: PhantomData<*const ()>,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.original.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Carrying on in the container's namespace would configure the wrong node.
            log::error!("cannot return to the original network namespace: {e}; aborting");
            std::process::abort();
        }
    }
}

/// Run `f` on a short-lived thread that has switched into `netns`, and return what it returns.
///
/// For container-side work that is not netlink, such as writing `/proc/sys/net` (resolved
/// against the namespace of the thread that opens the file). The thread never switches back: it
/// ends, so a failed restore cannot leave any thread of ours in the wrong namespace (the Go
/// plugins' throwaway-thread rule). Costs a thread start (~50 µs): keep it off the common path.
///
/// # Errors
/// Code 101 when the switch fails; 999 when `f` panics; otherwise `f`'s own error.
pub fn run_in<T: Send>(netns: &Netns, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(netns.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| netns_error(&netns.path, e))?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("namespace helper thread panicked".into())))
    })
}

/// Refuse a `CNI_NETNS` that is the plugin's own namespace, unless `CNI_NETNS_OVERRIDE` is set
/// (the Go skel's rule; wiring a container into the node's own namespace would break the node).
pub fn refuse_own(netns: &Netns) -> Result<()> {
    let overridden = std::env::var("CNI_NETNS_OVERRIDE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if !overridden && netns.same_as(&Netns::current()?)? {
        return Err(netns_error(netns.path(), "is the plugin's own network namespace"));
    }
    Ok(())
}
