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
//! never rewritten. Right after the move, a spare's content becomes [`MARKER`] (padded with
//! spaces to its length, so nothing is truncated): host-local's DEL and CHECK match the content
//! of every file under the network directory whatever its name, and a marker with a space never
//! equals `<id>\r\n<ifname>`. A command that dies between the move and that rewrite leaves the
//! index unsealed, and the rebuild that follows unlinks every spare (`scan::rebuild`).
//!
//! Like host-local, the store does not fsync: after a power failure a reservation written into a
//! spare may read as the spare's older content, as a newly created one may read empty. Either
//! names no valid attachment, so GC releases it.
//!
//! The rules this serves: invariants 3, 4 and 7 of `store/mod.rs`.

use super::files;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many spares a store keeps: a dual-stack DEL frees up to three files (two reservations
/// and the owner bucket they emptied), the next ADD takes as many.
const SLOTS: usize = 4;

/// What a spare holds while it waits.
const MARKER: &[u8] = b"tether-ipam spare\n";

/// The file-name prefix of spares.
pub const PREFIX: &str = "spare-";

fn path(meta: &Path, slot: usize) -> PathBuf {
    meta.join(format!("{PREFIX}{slot}"))
}

fn open_for_rewrite(path: &Path) -> io::Result<fs::File> {
    OpenOptions::new().write(true).custom_flags(nix::libc::O_NOFOLLOW).open(path)
}

/// A private file in `meta` holding `content`, to be linked or renamed into place: a reused
/// spare when there is one, a new `tmp-res` otherwise.
pub fn draft(meta: &Path, content: &[u8]) -> io::Result<PathBuf> {
    match fill(meta, content) {
        Ok(Some(spare)) => return Ok(spare),
        Ok(None) => {}
        Err(e) => log::debug!("reuse a spare in {}: {e}", meta.display()),
    }
    let tmp = meta.join("tmp-res");
    files::write_new(&tmp, content)?;
    Ok(tmp)
}

/// Create the file `path` (which does not exist) holding `content`, from a [`draft`].
pub fn place(meta: &Path, path: &Path, content: &[u8]) -> io::Result<()> {
    fs::rename(draft(meta, content)?, path)
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

/// Write `content` into a reusable spare and return its path, or `None` when there is none.
fn fill(meta: &Path, content: &[u8]) -> io::Result<Option<PathBuf>> {
    for slot in 0..SLOTS {
        let spare = path(meta, slot);
        let m = match fs::symlink_metadata(&spare) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !m.file_type().is_file() || m.nlink() != 1 || m.mode() & 0o7777 != 0o600 {
            files::remove_opt(&spare)?;
            continue;
        }
        files::rewrite(&open_for_rewrite(&spare)?, m.len(), content)?;
        return Ok(Some(spare));
    }
    Ok(None)
}

/// Move `file` into a free slot and blank it. `Ok(false)` when every slot is taken (the caller
/// unlinks it); an error when the move failed (the file may be gone already, or `.tether` on
/// another file system).
fn park(meta: &Path, file: &Path) -> io::Result<bool> {
    for slot in 0..SLOTS {
        let spare = path(meta, slot);
        match fs::symlink_metadata(&spare) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::rename(file, &spare)?;
                blank(&spare)?;
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Replace a parked file's content with the marker, padded with spaces to the same length.
fn blank(spare: &Path) -> io::Result<()> {
    let file = open_for_rewrite(spare)?;
    let len = file.metadata()?.len();
    let mut text = MARKER.to_vec();
    text.resize(text.len().max(len as usize), b' ');
    files::rewrite(&file, len, &text)
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

    /// Invariant 4 of store/mod.rs: a retired file is blanked, then reused.
    #[test]
    fn retire_then_draft_reuses_the_inode() {
        let d = dir("reuse");
        let r = reservation(&d.0, "198.18.0.2", "a-long-container-id\r\neth0");
        let ino = fs::metadata(&r).unwrap().ino();
        assert!(retire(&d.0, &r).unwrap());
        assert!(!r.exists());
        let waiting = fs::read(path(&d.0, 0)).unwrap();
        assert!(waiting.starts_with(MARKER) && waiting.len() == "a-long-container-id\r\neth0".len());
        assert_eq!(String::from_utf8(waiting).unwrap().trim(), "tether-ipam spare", "no owner left in it");
        let spare = draft(&d.0, b"b\r\neth1").unwrap();
        assert_eq!(spare, path(&d.0, 0));
        assert_eq!(fs::metadata(&spare).unwrap().ino(), ino);
        assert_eq!(fs::read(&spare).unwrap(), b"b\r\neth1", "rewritten and cut to the new length");
        // no spare left: a new file
        fs::rename(&spare, d.0.join("198.18.0.3")).unwrap();
        assert_eq!(draft(&d.0, b"c\r\neth0").unwrap(), d.0.join("tmp-res"));
    }

    #[test]
    fn slots_are_bounded() {
        let d = dir("bounded");
        for i in 0..SLOTS {
            assert!(retire(&d.0, &reservation(&d.0, &format!("10.0.0.{i}"), "x\r\neth0")).unwrap());
        }
        let extra = reservation(&d.0, "10.0.0.9", "x\r\neth0");
        assert!(retire(&d.0, &extra).unwrap());
        assert!(!extra.exists(), "unlinked: every slot was taken");
        assert_eq!(fs::read_dir(&d.0).unwrap().count(), SLOTS);
        assert!(!retire(&d.0, &extra).unwrap(), "already gone");
    }

    #[test]
    fn place_creates_from_a_spare() {
        let d = dir("place");
        let bucket = reservation(&d.0, "o-01", "tether-ipam owners v1\n");
        let ino = fs::metadata(&bucket).unwrap().ino();
        assert!(retire(&d.0, &bucket).unwrap());
        place(&d.0, &d.0.join("o-02"), b"tether-ipam owners v1\n198.18.0.2 b eth0\n").unwrap();
        assert_eq!(fs::metadata(d.0.join("o-02")).unwrap().ino(), ino);
        assert_eq!(fs::read_dir(&d.0).unwrap().count(), 1);
    }

    /// Invariant 3 of store/mod.rs: a second name of a reservation is never rewritten.
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
        // spare-3 is a good one
        let good = reservation(&d.0, "spare-3", "tether-ipam spare\n");
        assert_eq!(draft(&d.0, b"new\r\neth0").unwrap(), good);
        assert_eq!(fs::read(&good).unwrap(), b"new\r\neth0");
        assert_eq!(fs::read(&live).unwrap(), b"live\r\neth0");
        assert_eq!(fs::metadata(&live).unwrap().nlink(), 1);
        for slot in 0..3 {
            assert!(fs::symlink_metadata(path(&d.0, slot)).is_err(), "slot {slot} cleared");
        }
    }
}
