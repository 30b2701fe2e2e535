//! Which ptp attachments use which gateway address of the node: the record that decides when the
//! node's copy of a gateway (on `lo`, see [`super::gateway`]) can go.
//!
//! On disk, under `<root>/<node>/` (`<node>` names the node's network namespace by its cookie, so
//! test nodes sharing one `/run` keep apart records): a directory per gateway address holding an
//! empty file per user, named by the user's node end (`veth` + hex digits, derived from validated
//! names). Every change is made under an exclusive `flock` of `<root>/<node>/lock`, held by
//! [`Users`] for as long as it lives; the kernel drops the lock with the process, so a killed ADD
//! or DEL never leaves it held. Why files: the kernel keeps one alias of a gateway's local route per
//! link that carries it and walks them all on every address added (`fib_table_insert`), so the
//! gateway is held once on the node and its users are counted here instead.
//!
//! Invariant: a user's file exists before anything relies on the gateway (ADD writes it first) and
//! is removed only once the user's node end is gone (DEL, a failed ADD, GC), so a gateway is never
//! dropped under a live attachment. A crash can only leave a stale user behind (a DEL killed
//! between the link and the record: the repeated DEL or GC clears it), or an empty directory (the
//! next release of any user removes its gateway).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::IpAddr;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Where the records of every node namespace live (tmpfs: gone at boot, as the kernel's state).
pub const ROOT: &str = "/run/tether/gateways";

/// The node's record, locked: one at a time per node.
pub struct Users {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Users {
    /// Lock the record of the calling thread's network namespace under `root`, creating it.
    ///
    /// # Errors
    /// When the directory or the lock file cannot be made, or the lock cannot be taken.
    pub fn lock(root: &Path) -> io::Result<Users> {
        let dir = root.join(node_key()?);
        fs::create_dir_all(&dir)?;
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io::Error::from(errno))?;
        Ok(Users { dir, _lock: lock })
    }

    /// Record that `user` relies on `gateway`.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn add(&self, gateway: IpAddr, user: &str) -> io::Result<()> {
        let dir = self.dir.join(gateway.to_string());
        fs::create_dir_all(&dir)?;
        OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(user)).map(drop)
    }

    /// Forget `user` for every gateway it was recorded with (none is fine).
    ///
    /// # Errors
    /// When the record cannot be read or a file cannot be removed.
    pub fn remove(&self, user: &str) -> io::Result<()> {
        for (gateway, _) in self.gateways()? {
            self.remove_from(gateway, user)?;
        }
        Ok(())
    }

    /// Forget `user` for `gateway` (not recorded is fine).
    ///
    /// # Errors
    /// When the file exists but cannot be removed.
    pub fn remove_from(&self, gateway: IpAddr, user: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(gateway.to_string()).join(user)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every (gateway, user) recorded.
    ///
    /// # Errors
    /// When the record cannot be read.
    pub fn all(&self) -> io::Result<Vec<(IpAddr, String)>> {
        let mut all = Vec::new();
        for (gateway, dir) in self.gateways()? {
            for entry in fs::read_dir(dir)? {
                if let Some(user) = entry?.file_name().to_str() {
                    all.push((gateway, user.to_string()));
                }
            }
        }
        Ok(all)
    }

    /// The gateways no user relies on any more: the caller removes each from the node, then
    /// [`forget`](Users::forget)s it (in that order, so a crash leaves the gateway recorded).
    ///
    /// # Errors
    /// When the record cannot be read.
    pub fn unused(&self) -> io::Result<Vec<IpAddr>> {
        let mut unused = Vec::new();
        for (gateway, dir) in self.gateways()? {
            if fs::read_dir(dir)?.next().is_none() {
                unused.push(gateway);
            }
        }
        Ok(unused)
    }

    /// Drop the record of an unused `gateway` (a user added since keeps it).
    ///
    /// # Errors
    /// When the directory exists, is empty, and cannot be removed.
    pub fn forget(&self, gateway: IpAddr) -> io::Result<()> {
        match fs::remove_dir(self.dir.join(gateway.to_string())) {
            Err(e) if !matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty) => Err(e),
            _ => Ok(()),
        }
    }

    /// The gateway directories (entries whose name is no address are not ours: skipped).
    fn gateways(&self) -> io::Result<Vec<(IpAddr, PathBuf)>> {
        let mut gateways = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(gateway) = entry.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()) {
                gateways.push((gateway, entry.path()));
            }
        }
        Ok(gateways)
    }
}

/// The calling thread's network namespace, as a directory name: its cookie (`SO_NETNS_COOKIE`,
/// Linux 5.14, never reused while the machine is up), or on older kernels the inode of its
/// namespace file (unique among live namespaces; a dead node's record can then be found again by
/// a new one, whose GC clears what is stale).
fn node_key() -> io::Result<String> {
    let socket = UnixDatagram::unbound()?;
    if let Some(cookie) = netns_cookie(&socket) {
        return Ok(format!("{cookie:016x}"));
    }
    let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata("/proc/thread-self/ns/net")?);
    Ok(format!("inode-{inode}"))
}

/// `SO_NETNS_COOKIE` of `socket`'s namespace; `None` when the kernel does not know the option.
#[allow(unsafe_code)]
fn netns_cookie(socket: &UnixDatagram) -> Option<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as nix::libc::socklen_t;
    // SAFETY: `cookie` and `len` are valid for writes and `len` is the size of `cookie`; the fd
    // is open for the call (borrowed from `socket`).
    let rc = unsafe {
        nix::libc::getsockopt(
            socket.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            nix::libc::SO_NETNS_COOKIE,
            std::ptr::addr_of_mut!(cookie).cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize == std::mem::size_of::<u64>()).then_some(cookie)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn root(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tether-users-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_gateway_is_unused_only_after_its_last_user_leaves() {
        let root = root("last");
        let users = Users::lock(&root).unwrap();
        users.add(ip("198.18.7.1"), "veth0000000000a").unwrap();
        users.add(ip("198.18.7.1"), "veth0000000000b").unwrap();
        users.add(ip("fd7e:7e7e:7::1"), "veth0000000000a").unwrap();
        assert!(users.unused().unwrap().is_empty());
        users.remove("veth0000000000a").unwrap();
        assert_eq!(users.unused().unwrap(), vec![ip("fd7e:7e7e:7::1")]);
        users.forget(ip("fd7e:7e7e:7::1")).unwrap();
        users.remove("veth0000000000b").unwrap();
        assert_eq!(users.unused().unwrap(), vec![ip("198.18.7.1")]);
        users.forget(ip("198.18.7.1")).unwrap();
        assert!(users.all().unwrap().is_empty() && users.unused().unwrap().is_empty());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn removing_and_forgetting_what_is_not_there_is_done() {
        let root = root("absent");
        let users = Users::lock(&root).unwrap();
        users.remove("veth0000000000a").unwrap();
        users.remove_from(ip("198.18.7.1"), "veth0000000000a").unwrap();
        users.forget(ip("198.18.7.1")).unwrap();
        // A gateway that gained a user since it was found unused keeps its record.
        users.add(ip("198.18.7.1"), "veth0000000000a").unwrap();
        users.forget(ip("198.18.7.1")).unwrap();
        assert_eq!(users.all().unwrap(), vec![(ip("198.18.7.1"), "veth0000000000a".to_string())]);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn entries_that_are_no_address_are_left_alone() {
        let root = root("foreign");
        let users = Users::lock(&root).unwrap();
        fs::create_dir(users.dir.join("not-an-address")).unwrap();
        assert!(users.unused().unwrap().is_empty());
        users.remove("veth0000000000a").unwrap();
        assert!(users.dir.join("not-an-address").exists());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_record_is_held_by_one_at_a_time() {
        let root = root("lock");
        let first = Users::lock(&root).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn({
            let root = root.clone();
            move || {
                let second = Users::lock(&root).unwrap();
                tx.send(second.all().unwrap().len()).unwrap();
            }
        });
        // The waiter cannot see the record until the first holder is done with it.
        first.add(ip("198.18.7.1"), "veth0000000000a").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(rx.try_recv().is_err(), "a second holder got the lock while the first held it");
        drop(first);
        assert_eq!(rx.recv().unwrap(), 1);
        waiter.join().unwrap();
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_node_is_named_by_its_namespace() {
        let here = node_key().unwrap();
        assert_eq!(node_key().unwrap(), here, "stable within a namespace");
        assert!(here.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{here}");
    }
}
