//! The full scan: read every reservation file (the truth), optionally release the ones a filter
//! rejects (GC), and rebuild the whole index from what is left. The seal is broken first, so a
//! scan that dies halfway only leaves an index the next command rebuilds again. Memory stays small whatever the
//! store size: owner lines stream into their bucket files, and only the addresses (16 bytes each)
//! are kept, sorted, to write the occupancy chunks one at a time.
//!
//! The rules this serves: invariant 7 of `store/mod.rs`.

use super::owners::{self, Entry};
use super::{files, spare, stamp, used, FileOwner};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What a scan found and did.
#[derive(Debug, Default)]
pub struct Scan {
    /// Reservations released by the filter.
    pub released: Vec<IpAddr>,
    /// Problems met along the way (the scan went on).
    pub errors: Vec<String>,
    /// Reservations kept.
    pub kept: usize,
}

/// Files of `.tether` a rebuild starts over without: the index, and the leftovers of commands
/// that died (temp files, spares that may be second names of reservations or hold old content).
fn is_index_file(name: &str) -> bool {
    name.starts_with("o-") || used::is_chunk_name(name) || name.starts_with("tmp-") || name.starts_with(spare::PREFIX)
}

/// Rebuild the index in `meta` from the reservation files in `dir`; with `keep`, first unlink
/// every reservation whose owner it rejects.
pub fn rebuild(dir: &Path, meta: &Path, keep: Option<&dyn Fn(&FileOwner) -> bool>) -> io::Result<Scan> {
    stamp::write(meta, None)?;
    for entry in fs::read_dir(meta)? {
        let name = entry?.file_name();
        if name.to_str().is_some_and(is_index_file) {
            files::remove_opt(&meta.join(&name))?;
        }
    }
    let mut scan = Scan::default();
    let mut buckets: Vec<Option<BufWriter<File>>> = (0..256).map(|_| None).collect();
    let (mut v4, mut v6): (Vec<u32>, Vec<u128>) = (Vec::new(), Vec::new());
    let mut content = Vec::with_capacity(512);
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(ip) = entry.file_name().to_str().and_then(files::ip_of_name) else { continue };
        if !entry.file_type()?.is_file() {
            continue;
        }
        let path = entry.path();
        let (owner, readable) = match files::read_into(&path, &mut content) {
            Ok(()) => (FileOwner::parse(&content), true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                scan.errors.push(format!("read {}: {e}", path.display()));
                (FileOwner::Unknown, false)
            }
        };
        if readable && keep.is_some_and(|keep| !keep(&owner)) {
            match fs::remove_file(&path) {
                Ok(()) => {
                    scan.released.push(ip);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => scan.errors.push(format!("release {}: {e}", path.display())),
            }
        }
        scan.kept += 1;
        match ip {
            IpAddr::V4(a) => v4.push(u32::from(a)),
            IpAddr::V6(a) => v6.push(u128::from(a)),
        }
        if let Some(e) = Entry::from_file(ip, &owner) {
            let no = owners::bucket_of(&e.id);
            let slot = &mut buckets[usize::from(no)];
            if slot.is_none() {
                let path = meta.join(owners::file_name(no));
                files::overwrite(&path, owners::header().as_bytes())?;
                let file = fs::OpenOptions::new().append(true).custom_flags(files::O_NOFOLLOW).open(&path)?;
                *slot = Some(BufWriter::with_capacity(512, file));
            }
            if let Some(w) = slot {
                w.write_all(e.line().as_bytes())?;
            }
        }
    }
    for w in buckets.into_iter().flatten() {
        w.into_inner().map_err(|e| e.into_error())?;
    }
    v4.sort_unstable();
    v6.sort_unstable();
    used::write_all(meta, v4.into_iter().map(|a| (true, u128::from(a))).chain(v6.into_iter().map(|a| (false, a))))?;
    Ok(scan)
}
