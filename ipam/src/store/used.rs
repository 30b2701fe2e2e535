//! Occupancy index: which addresses have a reservation file, as bitmaps of 65,536 addresses, so
//! that finding the next free address never probes the directory address by address.
//!
//! `.tether/u4-XXXX` covers the IPv4 /16 whose first 16 bits are XXXX; `.tether/u6-<28 hex>`
//! covers the IPv6 /112 with those first 112 bits. A file is a header line (with spaces, so
//! host-local never mistakes it for a reservation) and 8,192 bytes of bits, bit `n % 8` of byte
//! `n / 8` for the n-th address; a bare header means "all free", and so does a missing chunk,
//! so an IPv6 /64 costs nothing. A chunk file is created for the first reservation in its span
//! and then only the bytes that change are rewritten, in place: once empty it keeps its size
//! with every bit clear, so a store that goes empty and back neither creates a file nor frees
//! and reallocates blocks (each free is a journalled change, and a discard on file systems
//! mounted with `discard`); a full scan drops the empty ones. There are thus never more
//! chunk files than reservations made since the last scan. The bitmaps are a hint: the O_EXCL link decides, and a bit found
//! wrong is corrected and makes the store rebuild its index next time.
//!
//! The rules this serves: invariant 6 of `store/mod.rs`.

use super::files;
use crate::range::{from_u128, to_u128};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const HEADER: &[u8] = b"tether-ipam used v1\n";
const SPAN: u128 = 1 << 16;
const BYTES: usize = 1 << 13;

/// A chunk: family (true = IPv4) and first address.
pub type Key = (bool, u128);

/// The chunk of `ip` and its bit number in it.
pub fn locate(ip: IpAddr) -> (Key, usize) {
    let v = to_u128(ip);
    ((ip.is_ipv4(), v & !(SPAN - 1)), (v & (SPAN - 1)) as usize)
}

/// The file name of a chunk.
pub fn file_name(key: Key) -> String {
    match key {
        (true, base) => format!("u4-{:04x}", base >> 16),
        (false, base) => format!("u6-{:028x}", base >> 16),
    }
}

/// Whether `name` is a chunk file of ours.
pub fn is_chunk_name(name: &str) -> bool {
    name.starts_with("u4-") || name.starts_with("u6-")
}

#[derive(Debug)]
enum Bits {
    /// No file: nothing reserved in this chunk.
    Absent,
    /// The file's bits.
    Present(Vec<u8>),
    /// The file is damaged: every address is "maybe free" and the O_EXCL link decides.
    Unknown,
}

/// What the chunk's file holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDisk {
    Missing,
    /// A bare header (all free).
    Header,
    /// Header and all the bits.
    Full,
}

#[derive(Debug)]
struct Chunk {
    bits: Bits,
    file: OnDisk,
    /// The bytes of `bits` changed since loaded: first and last index.
    dirty: Option<(usize, usize)>,
}

/// Loaded chunks, written back by [`Used::flush`].
#[derive(Debug)]
pub struct Used {
    meta: PathBuf,
    chunks: HashMap<Key, Chunk>,
    /// Set when a chunk file was found damaged (the index must be rebuilt).
    pub damaged: bool,
}

fn first_clear(bits: &[u8], lo: usize, hi: usize) -> Option<usize> {
    let mut i = lo;
    while i <= hi {
        let byte = bits[i / 8];
        if byte == 0xff && i % 8 == 0 {
            i += 8;
        } else if byte & (1 << (i % 8)) == 0 {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

impl Used {
    /// Chunks of the index in `meta` (`.tether`).
    pub fn new(meta: &Path) -> Used {
        Used { meta: meta.to_path_buf(), chunks: HashMap::new(), damaged: false }
    }

    fn chunk(&mut self, key: Key) -> io::Result<&mut Chunk> {
        if !self.chunks.contains_key(&key) {
            let chunk = match files::read_opt(&self.meta.join(file_name(key)))? {
                None => Chunk { bits: Bits::Absent, file: OnDisk::Missing, dirty: None },
                Some(b) if b == HEADER => Chunk { bits: Bits::Absent, file: OnDisk::Header, dirty: None },
                Some(b) if b.len() == HEADER.len() + BYTES && b.starts_with(HEADER) => {
                    Chunk { bits: Bits::Present(b[HEADER.len()..].to_vec()), file: OnDisk::Full, dirty: None }
                }
                Some(_) => {
                    self.damaged = true;
                    Chunk { bits: Bits::Unknown, file: OnDisk::Full, dirty: None }
                }
            };
            self.chunks.insert(key, chunk);
        }
        self.chunks.get_mut(&key).ok_or_else(|| io::Error::other("chunk vanished"))
    }

    /// Whether `ip` is marked reserved (`false` when unknown).
    pub fn is_set(&mut self, ip: IpAddr) -> io::Result<bool> {
        let (key, bit) = locate(ip);
        Ok(match &self.chunk(key)?.bits {
            Bits::Present(bits) => bits[bit / 8] & (1 << (bit % 8)) != 0,
            Bits::Absent | Bits::Unknown => false,
        })
    }

    /// Mark `ip` reserved (`on`) or free.
    pub fn set(&mut self, ip: IpAddr, on: bool) -> io::Result<()> {
        let (key, bit) = locate(ip);
        let chunk = self.chunk(key)?;
        if let Bits::Absent = chunk.bits {
            if !on {
                return Ok(());
            }
            chunk.bits = Bits::Present(vec![0; BYTES]);
        }
        if let Bits::Present(bits) = &mut chunk.bits {
            let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
            let before = bits[byte];
            bits[byte] = if on { before | mask } else { before & !mask };
            if bits[byte] != before {
                chunk.dirty = Some(chunk.dirty.map_or((byte, byte), |(lo, hi)| (lo.min(byte), hi.max(byte))));
            }
        }
        Ok(())
    }

    /// The first address of `from..=to` (one family) not marked reserved.
    pub fn next_clear(&mut self, from: IpAddr, to: IpAddr) -> io::Result<Option<IpAddr>> {
        let v4 = from.is_ipv4();
        let (mut cur, end) = (to_u128(from), to_u128(to));
        while cur <= end {
            let base = cur & !(SPAN - 1);
            let last = end.min(base + (SPAN - 1));
            match &self.chunk((v4, base))?.bits {
                Bits::Absent | Bits::Unknown => return Ok(Some(from_u128(cur, v4))),
                Bits::Present(bits) => {
                    if let Some(bit) = first_clear(bits, (cur - base) as usize, (last - base) as usize) {
                        return Ok(Some(from_u128(base + bit as u128, v4)));
                    }
                }
            }
            if last == end {
                break;
            }
            cur = last + 1;
        }
        Ok(None)
    }

    /// Drop everything loaded (after a rebuild rewrote the files).
    pub fn forget(&mut self) {
        self.chunks.clear();
    }

    /// Write changed chunks back in place: only the changed bytes of a full file, the whole
    /// chunk otherwise (none at all when a chunk without bits on disk ends up empty).
    pub fn flush(&mut self) -> io::Result<()> {
        for (key, chunk) in self.chunks.iter_mut() {
            let (Some((lo, hi)), Bits::Present(bits)) = (chunk.dirty, &chunk.bits) else { continue };
            if chunk.file != OnDisk::Full && bits.iter().all(|b| *b == 0) {
                // set and cleared again: a missing file or a bare header already says "all free"
            } else if chunk.file == OnDisk::Full {
                let path = self.meta.join(file_name(*key));
                let file = {
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new().write(true).custom_flags(files::O_NOFOLLOW).open(path)?
                };
                file.write_all_at(&bits[lo..=hi], (HEADER.len() + lo) as u64)?;
            } else {
                write_chunk(&self.meta, *key, bits)?;
                chunk.file = OnDisk::Full;
            }
            chunk.dirty = None;
        }
        Ok(())
    }
}

/// Write a whole chunk file, in place (see [`files::overwrite`]).
pub fn write_chunk(meta: &Path, key: Key, bits: &[u8]) -> io::Result<()> {
    let mut content = Vec::with_capacity(HEADER.len() + BYTES);
    content.extend_from_slice(HEADER);
    content.extend_from_slice(bits);
    content.resize(HEADER.len() + BYTES, 0);
    files::overwrite(&meta.join(file_name(key)), &content)
}

/// Build chunk files from reserved addresses (family, value) in ascending order, one at a time.
pub fn write_all(meta: &Path, sorted: impl Iterator<Item = (bool, u128)>) -> io::Result<()> {
    let mut current: Option<(Key, Vec<u8>)> = None;
    for (v4, value) in sorted {
        let key = (v4, value & !(SPAN - 1));
        if current.as_ref().is_some_and(|(k, _)| *k != key) {
            if let Some((k, bits)) = current.take() {
                write_chunk(meta, k, &bits)?;
            }
        }
        let (_, bits) = current.get_or_insert_with(|| (key, vec![0u8; BYTES]));
        let bit = (value & (SPAN - 1)) as usize;
        bits[bit / 8] |= 1 << (bit % 8);
    }
    match current {
        Some((k, bits)) => write_chunk(meta, k, &bits),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_and_locations() {
        assert_eq!(locate(ip("198.18.1.2")), ((true, 0xc612_0000), 0x0102));
        assert_eq!(file_name(locate(ip("198.18.1.2")).0), "u4-c612");
        assert_eq!(file_name(locate(ip("fd7e:7e7e::1:2")).0), "u6-fd7e7e7e00000000000000000001");
        assert!(is_chunk_name("u4-c612") && !is_chunk_name("o-01"));
    }

    /// Invariant 6 of store/mod.rs (a damaged chunk reads as "maybe free"), and the chunk format.
    #[test]
    fn bits_search_and_persist() {
        let dir = std::env::temp_dir().join(format!("tether-ipam-used-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut used = Used::new(&dir);
        assert_eq!(used.next_clear(ip("198.18.0.2"), ip("198.18.0.9")).unwrap(), Some(ip("198.18.0.2")));
        for i in 2..=8 {
            used.set(ip(&format!("198.18.0.{i}")), true).unwrap();
        }
        assert_eq!(used.next_clear(ip("198.18.0.2"), ip("198.18.0.9")).unwrap(), Some(ip("198.18.0.9")));
        assert_eq!(used.next_clear(ip("198.18.0.2"), ip("198.18.0.8")).unwrap(), None);
        // across a chunk boundary: 198.18.255.255 full, next chunk absent
        used.set(ip("198.18.255.255"), true).unwrap();
        assert_eq!(used.next_clear(ip("198.18.255.255"), ip("198.19.0.5")).unwrap(), Some(ip("198.19.0.0")));
        used.flush().unwrap();
        let mut again = Used::new(&dir);
        assert!(again.is_set(ip("198.18.0.5")).unwrap());
        again.set(ip("198.18.0.5"), false).unwrap();
        again.flush().unwrap();
        assert!(!Used::new(&dir).is_set(ip("198.18.0.5")).unwrap());
        // an IPv6 /64 with nothing reserved answers at once
        let mut v6 = Used::new(&dir);
        let (lo, hi) = (ip("fd7e:7e7e::1"), ip("fd7e:7e7e::ffff:ffff:ffff:ffff"));
        assert_eq!(v6.next_clear(lo, hi).unwrap(), Some(lo));
        // emptied chunks keep their size, every bit clear, and read as "all free"
        let mut u = Used::new(&dir);
        u.set(ip("198.18.255.255"), false).unwrap();
        for i in 2..=8 {
            u.set(ip(&format!("198.18.0.{i}")), false).unwrap();
        }
        u.flush().unwrap();
        let emptied = std::fs::read(dir.join("u4-c612")).unwrap();
        assert_eq!(emptied.len(), HEADER.len() + BYTES);
        assert!(emptied.starts_with(HEADER) && emptied[HEADER.len()..].iter().all(|b| *b == 0));
        assert_eq!(Used::new(&dir).next_clear(ip("198.18.0.2"), ip("198.18.0.9")).unwrap(), Some(ip("198.18.0.2")));
        let mut refill = Used::new(&dir);
        refill.set(ip("198.18.0.7"), true).unwrap();
        refill.flush().unwrap();
        assert!(Used::new(&dir).is_set(ip("198.18.0.7")).unwrap());
        // a bare header (as versions before in-place writes left an emptied chunk) is "all free"
        // and grows to a full chunk
        std::fs::write(dir.join("u4-c613"), HEADER).unwrap();
        let mut bare = Used::new(&dir);
        assert_eq!(bare.next_clear(ip("198.19.0.0"), ip("198.19.0.9")).unwrap(), Some(ip("198.19.0.0")));
        bare.set(ip("198.19.1.1"), true).unwrap();
        bare.flush().unwrap();
        assert_eq!(std::fs::metadata(dir.join("u4-c613")).unwrap().len(), (HEADER.len() + BYTES) as u64);
        assert!(Used::new(&dir).is_set(ip("198.19.1.1")).unwrap());
        std::fs::remove_file(dir.join("u4-c613")).unwrap();
        // set and cleared again before a flush: nothing to write, no file created
        let mut transient = Used::new(&dir);
        transient.set(ip("198.18.200.1"), true).unwrap();
        transient.set(ip("198.18.200.1"), false).unwrap();
        transient.set(ip("fd7e:7e7e:9::1"), true).unwrap();
        transient.set(ip("fd7e:7e7e:9::1"), false).unwrap();
        transient.flush().unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // damaged ones become unknown
        std::fs::write(dir.join("u4-c612"), b"junk").unwrap();
        let mut d = Used::new(&dir);
        assert_eq!(d.next_clear(ip("198.18.0.2"), ip("198.18.0.9")).unwrap(), Some(ip("198.18.0.2")));
        assert!(d.damaged);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_all_groups_by_chunk() {
        let dir = std::env::temp_dir().join(format!("tether-ipam-used-all-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut list: Vec<(bool, u128)> =
            ["198.18.0.2", "198.19.0.2", "fd7e:7e7e::2"].iter().map(|s| (ip(s).is_ipv4(), to_u128(ip(s)))).collect();
        list.sort_unstable();
        write_all(&dir, list.into_iter()).unwrap();
        let mut used = Used::new(&dir);
        for s in ["198.18.0.2", "198.19.0.2", "fd7e:7e7e::2"] {
            assert!(used.is_set(ip(s)).unwrap(), "{s}");
        }
        assert!(!used.is_set(ip("198.18.0.3")).unwrap());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
