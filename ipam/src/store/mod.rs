//! Where reservations live: the [`Store`] seam the allocator works through, the on-disk store
//! shared with host-local ([`DiskStore`]) and an in-memory one for tests.
//!
//! On disk (`backend/disk/backend.go`, byte for byte): `<dataDir>/<network>/<ip>` holds
//! `<containerID>\r\n<ifname>` (no trailing newline; very old host-local wrote the ID alone),
//! `last_reserved_ip.<set index>` holds an address, and `lock` is `flock`ed by every command of
//! both plugins. Our private index lives in `.tether/` beside them (see [`disk`]).

pub mod disk;
mod files;
#[cfg(test)]
pub mod mem;
mod owners;
mod probe;
mod scan;
mod spare;
mod stamp;
mod used;

pub use disk::DiskStore;
pub use probe::Probe;

use crate::error::Result;
use std::net::IpAddr;

/// The attachment a reservation belongs to: container ID and interface name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    /// `CNI_CONTAINERID` (validated by conf: no whitespace, no `/`).
    pub id: &'a str,
    /// `CNI_IFNAME` (validated by conf: no whitespace, no `/`).
    pub ifname: &'a str,
}

impl Owner<'_> {
    /// The reservation file's content for this owner.
    pub fn file_content(&self) -> String {
        format!("{}\r\n{}", self.id.trim(), self.ifname)
    }
}

/// Who a reservation file says it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOwner {
    /// `<id>\r\n<ifname>`.
    Attachment {
        /// Container ID.
        id: String,
        /// Interface name.
        ifname: String,
    },
    /// `<id>` alone (host-local before interface names).
    Legacy {
        /// Container ID.
        id: String,
    },
    /// Anything else (empty, garbage): no request can match it.
    Unknown,
}

impl FileOwner {
    /// Parse a reservation file's content (compared trimmed, as host-local does).
    pub fn parse(content: &[u8]) -> FileOwner {
        let Ok(text) = std::str::from_utf8(content) else {
            return FileOwner::Unknown;
        };
        let text = text.trim();
        let word = |s: &str| !s.is_empty() && !s.chars().any(char::is_whitespace);
        match text.split_once("\r\n") {
            Some((id, ifname)) if word(id) && word(ifname) => {
                FileOwner::Attachment { id: id.to_string(), ifname: ifname.to_string() }
            }
            None if word(text) => FileOwner::Legacy { id: text.to_string() },
            _ => FileOwner::Unknown,
        }
    }
}

/// The operations allocation needs. Every method runs with the store locked.
pub trait Store {
    /// Reserve `ip` for `owner`; `false` when the address is already reserved.
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool>;
    /// Undo a reservation this command made.
    fn release(&mut self, ip: IpAddr, owner: &Owner) -> Result<()>;
    /// The first address of `from..=to` (one family) not known to be reserved, if any. A store
    /// may answer optimistically; `reserve` is the final word.
    fn next_untaken(&mut self, from: IpAddr, to: IpAddr) -> Result<Option<IpAddr>>;
    /// `last_reserved_ip.<set>`.
    fn last_reserved(&mut self, set: usize) -> Result<Option<IpAddr>>;
    /// Record `ip` in `last_reserved_ip.<set>`.
    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<()>;
    /// The addresses reserved for `owner`; when there are none, those of its container ID in
    /// the legacy format (host-local's fallback).
    fn held_by(&mut self, owner: &Owner) -> Result<Vec<IpAddr>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_parsing_matches_host_local() {
        let o = Owner { id: "c1", ifname: "eth0" };
        assert_eq!(o.file_content(), "c1\r\neth0");
        let attachment = |id: &str, ifname: &str| FileOwner::Attachment { id: id.into(), ifname: ifname.into() };
        let legacy = |id: &str| FileOwner::Legacy { id: id.into() };
        assert_eq!(FileOwner::parse(b"c1\r\neth0"), attachment("c1", "eth0"));
        assert_eq!(FileOwner::parse(b"  c1\r\neth0\n"), attachment("c1", "eth0"));
        assert_eq!(FileOwner::parse(b"c1"), legacy("c1"));
        assert_eq!(FileOwner::parse(b"c1\n"), legacy("c1"));
        assert_eq!(FileOwner::parse(b"c1\r\n"), legacy("c1"));
        assert_eq!(FileOwner::parse(b""), FileOwner::Unknown);
        assert_eq!(FileOwner::parse(b"a b"), FileOwner::Unknown);
        assert_eq!(FileOwner::parse(b"a \r\neth0"), FileOwner::Unknown);
        assert_eq!(FileOwner::parse(&[0xff, 0xfe]), FileOwner::Unknown);
    }
}
