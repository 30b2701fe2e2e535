//! Small file-system helpers with the modes and atomicity the store promises: directories 0755,
//! files 0600, reservation content written to a private temp file first and then linked into place.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;

/// `mkdir -p` with mode 0755.
pub fn create_dirs(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o755).create(path)
}

/// `mkdir` with mode 0755; `Ok(false)` when it already exists.
pub fn create_dir(path: &Path) -> io::Result<bool> {
    match DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Write `bytes` to a new file at `path` (mode 0600). A leftover file of that name is unlinked
/// first, never truncated: it may be a second link of a live reservation.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    remove_opt(path)?;
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

/// Overwrite `path` in place with `bytes` (creating it, mode 0600). Only for files where a torn
/// write is harmless: index files (the index's seal is broken before they are rewritten and only
/// restored afterwards) and `last_reserved_ip.*` (a hint; unreadable means "start at the range
/// start").
///
/// The file is truncated only when it was longer: a truncate is one more journalled inode update
/// (and, when it frees blocks, a discard on file systems mounted with `discard`), while a
/// rewrite of equal or greater length changes nothing but the bytes.
pub fn overwrite(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let f = open_own(path)?;
    let old_len = f.metadata()?.len();
    rewrite(&f, old_len, bytes)
}

/// Open (creating it, mode 0600) a file of the store that only the store's own writers name, for
/// writing, never through a symlink: one found there (anyone who can write the store directory
/// may leave one) is removed first, so nothing outside the store is ever written. Callers hold the
/// store's lock.
pub fn open_own(path: &Path) -> io::Result<fs::File> {
    let open =
        || OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).custom_flags(O_NOFOLLOW).open(path);
    match open() {
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            log::warn!("{} is a symlink: replaced by a file of the store", path.display());
            fs::remove_file(path)?;
            open()
        }
        other => other,
    }
}

/// `open(2)`'s O_NOFOLLOW: fail with ELOOP when the last component is a symlink.
pub const O_NOFOLLOW: i32 = nix::libc::O_NOFOLLOW;

/// Replace the content of `file`, `old_len` bytes long, with `bytes`, in place; truncate only
/// when it gets shorter (see [`overwrite`]).
pub fn rewrite(file: &fs::File, old_len: u64, bytes: &[u8]) -> io::Result<()> {
    file.write_all_at(bytes, 0)?;
    if old_len > bytes.len() as u64 {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

/// Read a small file into `buf` without the size probe `fs::read` makes.
pub fn read_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut f = fs::File::open(path)?;
    let mut chunk = [0u8; 512];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The file's bytes, or `None` when it does not exist.
pub fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Unlink; `Ok(false)` when it was already gone.
pub fn remove_opt(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The address a reservation file is named after. Only canonical names count (the way both
/// plugins write them: IPv4 dotted quad, IPv6 compressed lower case), so `lock`,
/// `last_reserved_ip.*`, `.tether` and foreign files are never mistaken for reservations.
pub fn ip_of_name(name: &str) -> Option<IpAddr> {
    let ip: IpAddr = name.parse().ok()?;
    (ip.to_string() == name).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_names_are_reservations() {
        assert!(ip_of_name("198.18.0.5").is_some());
        assert!(ip_of_name("fd7e:7e7e::5").is_some());
        for other in ["lock", "last_reserved_ip.0", ".tether", "FD7E:7E7E::5", "fd7e:7e7e:0::5", "198.18.0.5 "] {
            assert!(ip_of_name(other).is_none(), "{other}");
        }
    }
}
