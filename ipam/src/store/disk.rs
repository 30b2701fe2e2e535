//! The on-disk store, shared with host-local, plus a private index that makes every command
//! cost the same whatever the number of reservations.
//!
//! [`DiskStore`] carries out the invariants written down in `store/mod.rs`: the reservation
//! files are the truth and are created whole by a link (invariants 1, 3), a release moves them
//! into a spare (4), the whole command holds the `lock` (2), and the index in `.tether/` (owner
//! buckets, occupancy bitmaps, the seal) is trusted only while sealed, checked before use and
//! written back under a broken seal (5 to 8).

use super::files;
use super::owners::Owners;
use super::scan::{self, Scan};
use super::spare;
use super::stamp::{self, Stamp};
use super::used::Used;
use super::{FileOwner, Owner, Store};
use crate::error::{Error, IoResultExt, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// An open, locked store of one network.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    meta: PathBuf,
    owners: Owners,
    used: Used,
    checked: bool,
    rebuilt: bool,
    changed: bool,
    suspect: bool,
    _lock: Flock<File>,
}

fn lock(dir: &Path) -> io::Result<Flock<File>> {
    let path = dir.join("lock");
    // Never through a symlink (ELOOP, an error naming the lock): replacing it could not be done
    // race-free against host-local, which locks whatever the name leads to.
    let mut file = match OpenOptions::new().read(true).custom_flags(files::O_NOFOLLOW).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(files::O_NOFOLLOW)
            .open(&path)?,
        Err(e) => return Err(e),
    };
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(locked) => return Ok(locked),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, errno)) => return Err(io::Error::from(errno)),
        }
    }
}

/// `<data_dir>/<network>`, refusing a network name that could escape `data_dir` (code 7).
pub(super) fn store_dir(data_dir: &Path, network: &str) -> Result<PathBuf> {
    if !conf::names::is_identifier(network) {
        return Err(Error::config(format!("invalid network name {network:?}")));
    }
    Ok(data_dir.join(network))
}

fn lock_error(dir: &Path, e: io::Error) -> Error {
    Error::io("lock", &dir.join("lock"), e)
}

impl DiskStore {
    /// Create (when needed), open and lock the store `<data_dir>/<network>` (ADD, STATUS).
    ///
    /// # Errors
    /// Code 7 for a network name that could escape `data_dir`, code 5 when the directory or the
    /// lock cannot be created or taken.
    pub fn create(data_dir: &Path, network: &str) -> Result<DiskStore> {
        let dir = store_dir(data_dir, network)?;
        files::create_dirs(&dir).at("create", &dir)?;
        let lock = lock(&dir).map_err(|e| lock_error(&dir, e))?;
        DiskStore::locked(dir, lock)
    }

    /// Open and lock an existing store (DEL, CHECK, GC); `None` when there is none.
    ///
    /// # Errors
    /// As [`DiskStore::create`].
    pub fn open_existing(data_dir: &Path, network: &str) -> Result<Option<DiskStore>> {
        let dir = store_dir(data_dir, network)?;
        if !dir.is_dir() {
            return Ok(None);
        }
        match lock(&dir) {
            Ok(lock) => DiskStore::locked(dir, lock).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(lock_error(&dir, e)),
        }
    }

    /// The store in `dir`, whose lock is held.
    fn locked(dir: PathBuf, lock: Flock<File>) -> Result<DiskStore> {
        let meta = dir.join(".tether");
        // Our private directory, never a symlink to somewhere else: one found there is replaced
        // (the index it held, if any, is rebuilt: no seal).
        if fs::symlink_metadata(&meta).is_ok_and(|m| m.file_type().is_symlink()) {
            log::warn!("{} is a symlink: replaced by a directory of the store", meta.display());
            fs::remove_file(&meta).at("remove", &meta)?;
        }
        let created = files::create_dir(&meta).at("create", &meta)?;
        Ok(DiskStore {
            owners: Owners::new(&meta),
            used: Used::new(&meta),
            dir,
            meta,
            checked: false,
            rebuilt: false,
            changed: created,
            suspect: false,
            _lock: lock,
        })
    }

    /// Make sure the index is current: rebuild it by a full scan unless its seal still matches.
    ///
    /// # Errors
    /// Code 5 when the rebuild fails.
    pub fn ensure_index(&mut self) -> Result<()> {
        if self.checked {
            return Ok(());
        }
        self.checked = true;
        let sealed = stamp::read(&self.meta);
        if sealed.is_some() && sealed == Stamp::current(&self.dir, &self.meta).ok() {
            return Ok(());
        }
        log::info!("index of {} is not current: rebuilding it from the reservation files", self.dir.display());
        self.rebuild(None).map(|_| ())
    }

    fn rebuild(&mut self, keep: Option<&dyn Fn(&FileOwner) -> bool>) -> Result<Scan> {
        self.owners.forget();
        self.used.forget();
        self.changed = true;
        self.suspect = false;
        self.used.damaged = false;
        self.checked = true;
        self.rebuilt = true;
        scan::rebuild(&self.dir, &self.meta, keep).at("scan", &self.dir)
    }

    /// GC: release every reservation whose owner `keep` rejects, and rebuild the index.
    ///
    /// # Errors
    /// Code 5 when the directory cannot be read; per-file problems are in [`Scan::errors`].
    pub fn gc(&mut self, keep: &dyn Fn(&FileOwner) -> bool) -> Result<Scan> {
        self.rebuild(Some(keep))
    }

    /// DEL: release every reservation of `owner` (or, when it has none, of its container ID in
    /// the legacy format). Returns the addresses released.
    ///
    /// # Errors
    /// Code 5 naming the files that could not be removed (the others are released anyway).
    pub fn release_owner(&mut self, owner: &Owner) -> Result<Vec<IpAddr>> {
        let ips = self.held_by(owner)?;
        let mut failed = Vec::new();
        for ip in &ips {
            let path = self.dir.join(ip.to_string());
            self.changed = true;
            match spare::retire(&self.meta, &path) {
                Ok(_) => self.forget(*ip, owner.id),
                Err(e) => failed.push((path, e)),
            }
        }
        if failed.is_empty() {
            Ok(ips)
        } else {
            Err(Error::Release(failed))
        }
    }

    /// Whether the reservation file of `ip` still names the owner `check` expects.
    fn verify(&self, ip: IpAddr, check: &dyn Fn(&FileOwner) -> bool) -> bool {
        match fs::read(self.dir.join(ip.to_string())) {
            Ok(content) => check(&FileOwner::parse(&content)),
            Err(_) => false,
        }
    }

    fn note(&mut self, what: &str, result: io::Result<()>) {
        if let Err(e) = result {
            log::warn!("index of {}: {what}: {e}; it will be rebuilt", self.dir.display());
            self.suspect = true;
        }
    }

    fn forget(&mut self, ip: IpAddr, id: &str) {
        let r = self.used.set(ip, false).and_then(|()| self.owners.remove(ip, id));
        self.note("forget a reservation", r);
    }

    /// Write the index back and seal it (or leave it unsealed when something looked wrong).
    /// Failures only cost a rebuild next time, so they are logged, not returned.
    pub fn finish(mut self) {
        // Only an index this session validated (or rebuilt) may be sealed; otherwise our own
        // changes have already broken the seal and the next command rebuilds.
        if !self.checked || !(self.changed || self.suspect || self.used.damaged) {
            return;
        }
        // Index files are rewritten in place: break the seal first, so that a command killed
        // halfway through leaves an index the next one rebuilds.
        let flushed =
            stamp::write(&self.meta, None).and_then(|()| self.owners.flush()).and_then(|()| self.used.flush());
        let result = match flushed {
            Ok(()) if !self.suspect && !self.used.damaged => stamp::seal(&self.dir, &self.meta),
            Ok(()) => stamp::write(&self.meta, None),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            log::warn!("index of {}: cannot write it back: {e}; it will be rebuilt", self.dir.display());
            let _ = stamp::write(&self.meta, None);
        }
    }
}

impl Store for DiskStore {
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool> {
        self.ensure_index()?;
        let path = self.dir.join(ip.to_string());
        self.changed = true;
        let tmp = spare::draft(&self.meta, owner.file_content().as_bytes()).at("write a reservation in", &self.meta)?;
        let linked = fs::hard_link(&tmp, &path);
        if let Err(e) = fs::remove_file(&tmp) {
            log::warn!("remove {}: {e}", tmp.display());
        }
        match linked {
            Ok(()) => {
                let r = self.used.set(ip, true).and_then(|()| self.owners.insert(ip, owner));
                self.note("record a reservation", r);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !self.used.is_set(ip).unwrap_or(false) {
                    let r = self.used.set(ip, true);
                    self.note("unrecorded reservation found", r);
                    self.suspect = true;
                }
                Ok(false)
            }
            Err(e) => Err(Error::io("reserve", &path, e)),
        }
    }

    fn release(&mut self, ip: IpAddr, owner: &Owner) -> Result<()> {
        let path = self.dir.join(ip.to_string());
        self.changed = true;
        spare::retire(&self.meta, &path).at("release", &path)?;
        self.forget(ip, owner.id);
        Ok(())
    }

    fn next_untaken(&mut self, from: IpAddr, to: IpAddr) -> Result<Option<IpAddr>> {
        self.ensure_index()?;
        match self.used.next_clear(from, to) {
            Ok(next) => Ok(next),
            Err(e) => {
                self.note("read occupancy", Err(e));
                Ok(Some(from))
            }
        }
    }

    fn last_reserved(&mut self, set: usize) -> Result<Option<IpAddr>> {
        let path = self.dir.join(format!("last_reserved_ip.{set}"));
        let bytes = files::read_opt(&path).at("read", &path)?;
        Ok(bytes.and_then(|b| String::from_utf8_lossy(&b).trim().parse::<IpAddr>().ok()).map(|ip| ip.to_canonical()))
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<()> {
        let path = self.dir.join(format!("last_reserved_ip.{set}"));
        self.changed = true;
        files::overwrite(&path, ip.to_string().as_bytes()).at("write", &path)
    }

    fn held_by(&mut self, owner: &Owner) -> Result<Vec<IpAddr>> {
        self.ensure_index()?;
        loop {
            let entries = match self.owners.lookup(owner) {
                Ok(entries) => entries,
                Err(e) if !self.rebuilt => {
                    log::warn!("index of {}: {e}; rebuilding it", self.dir.display());
                    self.rebuild(None)?;
                    continue;
                }
                Err(e) => return Err(Error::io("read index of", &self.dir, e)),
            };
            let verified: Vec<IpAddr> =
                entries.iter().filter(|e| self.verify(e.ip, &|f| e.matches(f))).map(|e| e.ip).collect();
            if verified.len() == entries.len() || self.rebuilt {
                return Ok(verified);
            }
            log::warn!("index of {} disagrees with the reservation files; rebuilding it", self.dir.display());
            self.rebuild(None)?;
        }
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
