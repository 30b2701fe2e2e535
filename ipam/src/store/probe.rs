//! A read-only look at a store, for STATUS: which addresses are taken, without creating the store,
//! writing the index or taking the exclusive lock.
//!
//! The kubelet asks for STATUS every few seconds (through containerd's CRI Status), so it must be
//! cheap and must never stall or race the ADDs it reports on. The probe takes the store's `lock`
//! shared (host-local and our writers take it exclusively, so the files cannot change under the
//! probe), trusts the occupancy index only while its seal matches, and otherwise reads the
//! directory's entry names, never their contents. A store that does not exist yet is empty.
//!
//! The rules this serves: invariants 2 and 5 of `store/mod.rs`.

use super::files;
use super::stamp::{self, Stamp};
use super::used::Used;
use crate::error::{Error, Result};
use crate::range::first_not_taken;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::AccessFlags;
use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::path::Path;

/// What is known to be taken in one store.
#[derive(Debug)]
enum Taken {
    /// No store yet: nothing is taken.
    Nothing,
    /// The sealed occupancy index.
    Index(Used),
    /// The reservation files' names.
    Names(BTreeSet<IpAddr>),
}

/// A store opened for reading, with its lock held shared until dropped.
#[derive(Debug)]
pub struct Probe {
    taken: Taken,
    _lock: Option<Flock<File>>,
}

/// The nearest of `path` and its ancestors that exists: where a store would be created.
fn nearest_existing(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

fn writable(dir: &Path) -> Result<()> {
    nix::unistd::access(dir, AccessFlags::W_OK)
        .map_err(|errno| Error::Unavailable(format!("store {} is not writable: {errno}", dir.display())))
}

fn lock_shared(dir: &Path) -> io::Result<Option<Flock<File>>> {
    let file = match File::open(dir.join("lock")) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockShared) {
            Ok(locked) => return Ok(Some(locked)),
            Err((f, nix::errno::Errno::EINTR)) => file = f,
            Err((_, errno)) => return Err(io::Error::from(errno)),
        }
    }
}

fn reservation_names(dir: &Path) -> io::Result<BTreeSet<IpAddr>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        if let Some(ip) = entry?.file_name().to_str().and_then(files::ip_of_name) {
            names.insert(ip);
        }
    }
    Ok(names)
}

impl Probe {
    /// Look at the store `<data_dir>/<network>`.
    ///
    /// # Errors
    /// Code 7 for a network name that could escape `data_dir`; code 50 when the store, or the
    /// directory it would be created in, is not writable or cannot be read.
    pub fn open(data_dir: &Path, network: &str) -> Result<Probe> {
        let dir = super::disk::store_dir(data_dir, network)?;
        if !dir.is_dir() {
            let parent = nearest_existing(&dir).unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return Err(Error::Unavailable(format!(
                    "store {} cannot be created: {} is not a directory",
                    dir.display(),
                    parent.display()
                )));
            }
            writable(parent)?;
            return Ok(Probe { taken: Taken::Nothing, _lock: None });
        }
        writable(&dir)?;
        let unreadable = |e: io::Error| Error::Unavailable(Error::io("read store", &dir, e).to_string());
        let lock = lock_shared(&dir).map_err(unreadable)?;
        let meta = dir.join(".tether");
        let sealed = stamp::read(&meta);
        let taken = if sealed.is_some() && sealed == Stamp::current(&dir, &meta).ok() {
            Taken::Index(Used::new(&meta))
        } else {
            Taken::Names(reservation_names(&dir).map_err(unreadable)?)
        };
        Ok(Probe { taken, _lock: lock })
    }

    /// The first address of `from..=to` (one family) that is not taken.
    ///
    /// # Errors
    /// Code 50 when an index file cannot be read.
    pub fn next_untaken(&mut self, from: IpAddr, to: IpAddr) -> Result<Option<IpAddr>> {
        match &mut self.taken {
            Taken::Nothing => Ok(Some(from)),
            Taken::Index(used) => {
                let next = used.next_clear(from, to);
                if used.damaged {
                    return Err(Error::Unavailable("the store's index is damaged; the next ADD rebuilds it".into()));
                }
                next.map_err(|e| Error::Unavailable(format!("read the store's index: {e}")))
            }
            Taken::Names(names) => Ok(first_not_taken(names.range(from..=to).copied(), from, to)),
        }
    }
}
