//! The index's seal: proof that nobody changed the store directory since we last indexed it.
//!
//! Every reservation change host-local makes creates, renames or unlinks an entry of the
//! network directory, and each of those sets the directory's mtime to the current time. After our
//! own changes we set the mtime of the directory (and of `.tether`) ourselves to a value two
//! seconds in the past and record what the file system then reports, with the inode numbers, in
//! `.tether/stamp`. Any later change by anyone sets the mtime to "now", which cannot equal the
//! recorded past value (even with coarse timestamps or a one-second file-system granularity), so
//! a stamp that still matches proves the index is current. Everything happens under the store's
//! `flock`, so there is no window between the check and the use.
//!
//! The stamp record is rewritten in place (`pwrite`), which changes no directory. It carries a
//! checksum, so a torn write reads as "no stamp" and leads to a rebuild.
//!
//! The rules this serves: invariants 5 and 8 of `store/mod.rs`.

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

const FILE: &str = "stamp";
const LEN: usize = 160;
const MAGIC: &str = "tether-ipam stamp v1";

/// Identity and mtime of the store directory and of `.tether`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    fields: [i64; 8],
}

fn dir_fields(path: &Path) -> io::Result<[i64; 4]> {
    let m = std::fs::metadata(path)?; // follows a symlinked store directory to the real one
    Ok([m.dev() as i64, m.ino() as i64, m.mtime(), m.mtime_nsec()])
}

fn checksum(fields: &[i64; 8]) -> u64 {
    conf::hash::fnv1a64(fields.iter().flat_map(|f| f.to_le_bytes()))
}

impl Stamp {
    /// The stamp of the directories as they are now.
    pub fn current(dir: &Path, meta: &Path) -> io::Result<Stamp> {
        let (a, b) = (dir_fields(dir)?, dir_fields(meta)?);
        Ok(Stamp { fields: [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]] })
    }

    fn encode(stamp: Option<&Stamp>) -> [u8; LEN] {
        let text = match stamp {
            Some(s) => {
                let nums: Vec<String> = s.fields.iter().map(i64::to_string).collect();
                format!("{MAGIC} {} {:016x}", nums.join(" "), checksum(&s.fields))
            }
            None => format!("{MAGIC} invalid"),
        };
        let mut out = [b' '; LEN];
        let n = text.len().min(LEN - 1);
        out[..n].copy_from_slice(&text.as_bytes()[..n]);
        out[LEN - 1] = b'\n';
        out
    }

    fn decode(bytes: &[u8]) -> Option<Stamp> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut words = text.strip_prefix(MAGIC)?.split_whitespace();
        let mut fields = [0i64; 8];
        for f in &mut fields {
            *f = words.next()?.parse().ok()?;
        }
        let sum = u64::from_str_radix(words.next()?, 16).ok()?;
        (sum == checksum(&fields) && words.next().is_none()).then_some(Stamp { fields })
    }
}

/// The recorded stamp, if there is a valid one.
pub fn read(meta: &Path) -> Option<Stamp> {
    let bytes = std::fs::read(meta.join(FILE)).ok()?;
    Stamp::decode(&bytes)
}

fn open(meta: &Path) -> io::Result<File> {
    super::files::open_own(&meta.join(FILE))
}

/// Record `stamp`, or with `None` make sure no valid stamp is left (the next command rebuilds).
pub fn write(meta: &Path, stamp: Option<&Stamp>) -> io::Result<()> {
    open(meta)?.write_all_at(&Stamp::encode(stamp), 0)
}

/// Seal the index after our changes: move both mtimes into the past, then record them.
pub fn seal(dir: &Path, meta: &Path) -> io::Result<()> {
    let file = open(meta)?; // created before the mtimes are set: creating it changes `.tether`
    let past = SystemTime::now().checked_sub(Duration::from_secs(2)).unwrap_or(SystemTime::UNIX_EPOCH);
    let since_epoch = past.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mtime = TimeSpec::from_duration(since_epoch);
    for path in [dir, meta] {
        utimensat(None, path, &TimeSpec::UTIME_OMIT, &mtime, UtimensatFlags::FollowSymlink).map_err(io::Error::from)?;
    }
    let stamp = Stamp::current(dir, meta)?;
    file.write_all_at(&Stamp::encode(Some(&stamp)), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Invariants 5 and 10 of store/mod.rs: a torn stamp is no stamp, and it never reads as a reservation.
    #[test]
    fn encode_decode_and_reject_damage() {
        let s = Stamp { fields: [1, 2, 1_700_000_000, 999_999_999, 1, 3, -5, 0] };
        let bytes = Stamp::encode(Some(&s));
        assert_eq!(bytes.len(), LEN);
        assert_eq!(Stamp::decode(&bytes), Some(s));
        let mut torn = bytes;
        torn[25] = b'9';
        assert_eq!(Stamp::decode(&torn), None);
        assert_eq!(Stamp::decode(&Stamp::encode(None)), None);
        // the content never looks like a host-local reservation: it contains spaces
        assert!(std::str::from_utf8(&bytes).unwrap().trim().contains(' '));
    }
}
