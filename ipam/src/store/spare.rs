//! Spare files: a released reservation (or an owner bucket that became empty) is moved into
//! `.tether/spare-<n>` instead of being unlinked, and the next file the store needs (a
//! reservation, a new owner bucket) reuses that file and its inode instead of creating one. An
//! ADD/DEL cycle therefore creates no file at all once the store has warmed up: DEL frees a
//! reservation and empties a bucket, the next ADD needs one of each.
//!
//! Why: creating a file means allocating an inode, and its cost depends on the file system's
//! recent history. On ext4 without a journal, `find_inode_bit` skips every inode of the group
//! freed in the last 5 s (305 s while its inode-table block is dirty) and checks each one
//! (`recently_deleted`): under container churn that made an ADD's create take 0.2-0.6 ms here,
//! with `recently_deleted` the top kernel symbol in a `perf record` of tether-ipam. With a
//! journal, a create and an unlink still each update the inode bitmap, the group descriptor and
//! the inode table, and free and reallocate the data block. Reusing the inode costs a rewrite of
//! a few bytes in place.
//!
//! Safety: everything happens under the store's lock. A spare is reused only when it is a plain
//! file of mode 0600 with a single link; anything else (a second name of a live reservation left
//! by a command that died between link and unlink, or a file we did not put there) is unlinked,
//! never rewritten. A spare still holds its last owner's `<id>\r\n<ifname>`: host-local's DEL of
//! that same container may delete it (it deletes every file of the store with matching content),
//! which only means the next reservation creates a file; host-local never reports one as a
//! reservation, since its name is not an address.

use super::files;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many spares a store keeps: a dual-stack DEL frees two, the next ADD takes two.
const SLOTS: usize = 4;

fn path(meta: &Path, slot: usize) -> PathBuf {
    meta.join(format!("spare-{slot}"))
}

/// Write `content` into a reusable spare and return its path (to be linked into place), or
/// `None` when there is none.
pub fn fill(meta: &Path, content: &[u8]) -> io::Result<Option<PathBuf>> {
    for slot in 0..SLOTS {
        let spare = path(meta, slot);
        let file = match OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&spare)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                files::remove_opt(&spare)?; // a symlink, a directory, a FIFO: not ours to use
                continue;
            }
        };
        let m = file.metadata()?;
        if !m.file_type().is_file() || m.nlink() != 1 || m.mode() & 0o7777 != 0o600 {
            files::remove_opt(&spare)?;
            continue;
        }
        file.write_all_at(content, 0)?;
        if m.len() > content.len() as u64 {
            file.set_len(content.len() as u64)?;
        }
        return Ok(Some(spare));
    }
    Ok(None)
}

/// Take the file at `path` out of use: into a free slot, unlinked when every slot is taken.
/// `Ok(false)` when it was already gone.
pub fn retire(meta: &Path, path: &Path) -> io::Result<bool> {
    match park(meta, path) {
        Ok(true) => Ok(true),
        Ok(false) => files::remove_opt(path),
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                log::debug!("keep {} as a spare: {e}", path.display());
            }
            files::remove_opt(path)
        }
    }
}

/// Create the file `path` (which does not exist) holding `content`: a spare renamed into place
/// when there is one, a new file otherwise.
pub fn place(meta: &Path, path: &Path, content: &[u8]) -> io::Result<()> {
    match fill(meta, content) {
        Ok(Some(spare)) => return fs::rename(spare, path),
        Ok(None) => {}
        Err(e) => log::debug!("reuse a spare in {}: {e}", meta.display()),
    }
    files::overwrite(path, content)
}

/// Move the file `reservation` into a free slot. `Ok(false)` when every
/// slot is taken (the caller unlinks it); an error when the rename failed (the file may be gone
/// already, or `.tether` on another file system).
pub fn park(meta: &Path, reservation: &Path) -> io::Result<bool> {
    for slot in 0..SLOTS {
        let spare = path(meta, slot);
        match fs::symlink_metadata(&spare) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::rename(reservation, &spare)?;
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("tether-ipam-spare-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn reservation(d: &Path, name: &str, content: &str) -> PathBuf {
        let p = d.join(name);
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&p).unwrap();
        fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn park_then_fill_reuses_the_inode() {
        let d = dir("reuse");
        let r = reservation(&d.0, "198.18.0.2", "a-long-container-id\r\neth0");
        let ino = fs::metadata(&r).unwrap().ino();
        assert!(park(&d.0, &r).unwrap());
        assert!(!r.exists());
        let spare = fill(&d.0, b"b\r\neth1").unwrap().unwrap();
        assert_eq!(fs::metadata(&spare).unwrap().ino(), ino);
        assert_eq!(fs::read(&spare).unwrap(), b"b\r\neth1", "rewritten and cut to the new length");
    }

    #[test]
    fn slots_are_bounded() {
        let d = dir("bounded");
        for i in 0..SLOTS {
            assert!(park(&d.0, &reservation(&d.0, &format!("10.0.0.{i}"), "x\r\neth0")).unwrap());
        }
        let extra = reservation(&d.0, "10.0.0.9", "x\r\neth0");
        assert!(!park(&d.0, &extra).unwrap());
        assert!(extra.exists(), "left for the caller to unlink");
        let empty = dir("bounded-empty");
        let gone = park(&empty.0, &empty.0.join("198.18.0.2")).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_second_link_or_a_foreign_file_is_never_rewritten() {
        let d = dir("unsafe");
        // a command died between link and unlink: spare-0 is a second name of a live reservation
        let live = reservation(&d.0, "198.18.0.2", "live\r\neth0");
        fs::hard_link(&live, path(&d.0, 0)).unwrap();
        // spare-1 has another mode (host-local writes 0644), spare-2 is a symlink to the live one
        let foreign = reservation(&d.0, "spare-1", "x\r\neth0");
        fs::set_permissions(&foreign, fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&live, path(&d.0, 2)).unwrap();
        assert_eq!(fill(&d.0, b"new\r\neth0").unwrap(), None);
        assert_eq!(fs::read(&live).unwrap(), b"live\r\neth0");
        for slot in 0..3 {
            assert!(fs::symlink_metadata(path(&d.0, slot)).is_err(), "slot {slot} cleared");
        }
    }
}
