//! Owner index: which addresses each attachment holds, so DEL, CHECK and a repeated ADD read one
//! small file instead of every reservation.
//!
//! `.tether/o-XX` (256 buckets, XX = FNV-1a of the container ID, low byte) holds one line per
//! reservation of the containers hashing there: `<ip> <containerID> <ifname>`, or
//! `<ip> <containerID>` for a legacy ID-only file. IDs and interface names never contain
//! whitespace (conf validates ours; files whose owners do not parse that way are not indexed, as
//! no request can match them). A missing bucket, or a bare header, is an empty bucket; a bucket
//! that becomes empty is retired as a spare file (see [`super::spare`]). Every bucket starts with a
//! header line containing spaces, so host-local, which reads every file under the network
//! directory and compares it with `<id>\r\n<ifname>` or `<id>`, never takes one for a
//! reservation. The index is only a cache: callers verify every address against its file.
//!
//! The rules this serves: invariant 6 of `store/mod.rs`.

use super::{files, spare};
use super::{FileOwner, Owner};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const HEADER: &str = "tether-ipam owners v1\n";

/// The bucket of a container ID.
pub fn bucket_of(id: &str) -> u8 {
    (conf::hash::fnv1a64(id.bytes()) & 0xff) as u8
}

/// The file name of a bucket.
pub fn file_name(bucket: u8) -> String {
    format!("o-{bucket:02x}")
}

/// One indexed reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The reserved address.
    pub ip: IpAddr,
    /// Container ID.
    pub id: String,
    /// Interface name; `None` for a legacy ID-only reservation.
    pub ifname: Option<String>,
}

impl Entry {
    /// The entry for a reservation file, when its owner can be indexed.
    pub fn from_file(ip: IpAddr, owner: &FileOwner) -> Option<Entry> {
        match owner {
            FileOwner::Attachment { id, ifname } => Some(Entry { ip, id: id.clone(), ifname: Some(ifname.clone()) }),
            FileOwner::Legacy { id } => Some(Entry { ip, id: id.clone(), ifname: None }),
            FileOwner::Unknown => None,
        }
    }

    /// The index line (with its newline).
    pub fn line(&self) -> String {
        match &self.ifname {
            Some(ifname) => format!("{} {} {ifname}\n", self.ip, self.id),
            None => format!("{} {}\n", self.ip, self.id),
        }
    }

    fn parse(line: &str) -> Option<Entry> {
        let mut words = line.split(' ');
        let ip = words.next()?.parse().ok()?;
        let id = words.next().filter(|w| !w.is_empty())?.to_string();
        let ifname = words.next().map(str::to_string);
        words.next().is_none().then_some(Entry { ip, id, ifname })
    }

    /// Whether this reservation file content still says the entry's owner.
    pub fn matches(&self, owner: &FileOwner) -> bool {
        match (&self.ifname, owner) {
            (Some(i), FileOwner::Attachment { id, ifname }) => *id == self.id && ifname == i,
            (None, FileOwner::Legacy { id }) => *id == self.id,
            _ => false,
        }
    }
}

/// The header every bucket file starts with.
pub fn header() -> &'static str {
    HEADER
}

#[derive(Debug, Default)]
struct Bucket {
    entries: Vec<Entry>,
    dirty: bool,
    /// Whether its file exists.
    on_disk: bool,
}

/// Loaded buckets, written back by [`Owners::flush`].
#[derive(Debug)]
pub struct Owners {
    meta: PathBuf,
    buckets: HashMap<u8, Bucket>,
}

fn damaged(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{} is damaged", path.display()))
}

impl Owners {
    /// Buckets of the index in `meta` (`.tether`).
    pub fn new(meta: &Path) -> Owners {
        Owners { meta: meta.to_path_buf(), buckets: HashMap::new() }
    }

    fn bucket(&mut self, id: &str) -> io::Result<&mut Bucket> {
        let no = bucket_of(id);
        if !self.buckets.contains_key(&no) {
            let path = self.meta.join(file_name(no));
            let mut bucket = Bucket::default();
            if let Some(bytes) = files::read_opt(&path)? {
                bucket.on_disk = true;
                let text = std::str::from_utf8(&bytes).map_err(|_| damaged(&path))?;
                let body = text.strip_prefix(HEADER).ok_or_else(|| damaged(&path))?;
                for line in body.lines() {
                    bucket.entries.push(Entry::parse(line).ok_or_else(|| damaged(&path))?);
                }
            }
            self.buckets.insert(no, bucket);
        }
        self.buckets.get_mut(&no).ok_or_else(|| damaged(&self.meta))
    }

    /// The entries of `owner`: those naming its interface, else its legacy ID-only ones.
    pub fn lookup(&mut self, owner: &Owner) -> io::Result<Vec<Entry>> {
        let bucket = self.bucket(owner.id)?;
        let pick = |ifname: Option<&str>| -> Vec<Entry> {
            bucket.entries.iter().filter(|e| e.id == owner.id && e.ifname.as_deref() == ifname).cloned().collect()
        };
        let exact = pick(Some(owner.ifname));
        Ok(if exact.is_empty() { pick(None) } else { exact })
    }

    /// Record a new reservation of `ip` for `owner`.
    pub fn insert(&mut self, ip: IpAddr, owner: &Owner) -> io::Result<()> {
        let bucket = self.bucket(owner.id)?;
        bucket.entries.retain(|e| e.ip != ip);
        bucket.entries.push(Entry { ip, id: owner.id.to_string(), ifname: Some(owner.ifname.to_string()) });
        bucket.dirty = true;
        Ok(())
    }

    /// Forget the reservation of `ip` by container `id`.
    pub fn remove(&mut self, ip: IpAddr, id: &str) -> io::Result<()> {
        let bucket = self.bucket(id)?;
        let before = bucket.entries.len();
        bucket.entries.retain(|e| e.ip != ip);
        bucket.dirty |= bucket.entries.len() != before;
        Ok(())
    }

    /// Drop everything loaded (after a rebuild rewrote the files).
    pub fn forget(&mut self) {
        self.buckets.clear();
    }

    /// Write changed buckets back: in place (see [`files::overwrite`]), a new one from a spare
    /// file, an empty one retired as a spare.
    pub fn flush(&mut self) -> io::Result<()> {
        for (no, bucket) in self.buckets.iter_mut().filter(|(_, b)| b.dirty) {
            let path = self.meta.join(file_name(*no));
            if bucket.entries.is_empty() {
                if bucket.on_disk {
                    spare::retire(&self.meta, &path)?;
                }
            } else {
                let mut text = String::from(HEADER);
                bucket.entries.iter().for_each(|e| text.push_str(&e.line()));
                if bucket.on_disk {
                    files::overwrite(&path, text.as_bytes())?;
                } else {
                    spare::place(&self.meta, &path, text.as_bytes())?;
                }
            }
            bucket.on_disk = !bucket.entries.is_empty();
            bucket.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for e in [
            Entry { ip: "198.18.0.5".parse().unwrap(), id: "c1".into(), ifname: Some("eth0".into()) },
            Entry { ip: "fd7e:7e7e::5".parse().unwrap(), id: "c1".into(), ifname: None },
        ] {
            assert_eq!(Entry::parse(e.line().trim_end()), Some(e.clone()));
        }
        assert_eq!(Entry::parse("nope c1"), None);
        assert_eq!(Entry::parse("198.18.0.5"), None);
        assert_eq!(Entry::parse("198.18.0.5 a b c"), None);
    }

    #[test]
    fn buckets_spread_and_are_stable() {
        assert_eq!(bucket_of("c1"), 0x59, "bucket files on disk are named after it");
        let distinct: std::collections::HashSet<u8> = (0..1000).map(|i| bucket_of(&format!("ctr-{i}"))).collect();
        assert!(distinct.len() > 200);
        assert_eq!(file_name(7), "o-07");
    }
}
