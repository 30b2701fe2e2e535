//! Where reservations live: the [`Store`] seam the allocator works through, the on-disk store
//! shared with host-local ([`DiskStore`]) and an in-memory one for tests.
//!
//! On disk (`backend/disk/backend.go`, byte for byte): `<dataDir>/<network>/<ip>` holds
//! `<containerID>\r\n<ifname>` (no trailing newline; very old host-local wrote the ID alone),
//! `last_reserved_ip.<set index>` holds an address, and `lock` is `flock`ed by every command of
//! both plugins. Beside them, `.tether/` holds tether's index: `stamp` (the seal), `o-XX` (owner
//! buckets, [`owners`]), `u4-*`/`u6-*` (occupancy bitmaps, [`used`]), and `spare-N` / `tmp-res`
//! (files on their way into or out of use, [`spare`]). host-local keeps everything in one
//! directory of files and reads all of them on every command; the index makes every command cost
//! the same whatever the number of reservations. These are the rules that keep it honest; tests
//! name the invariant they check ("invariant N of store/mod.rs").
//!
//! # Invariants
//!
//! 1. **The truth is host-local's files.** An address is reserved exactly when a regular file
//!    named after it (canonical form only, [`files::ip_of_name`]) exists in the network directory;
//!    its owner is its content ([`FileOwner::parse`]). `last_reserved_ip.*` is a hint where the
//!    round-robin search resumes (overwritten in place, as host-local does, which saves a file
//!    creation and a rename per ADD: torn or missing, the search starts at the range start). Everything in `.tether/` is derived: deleting it costs
//!    one rebuild, never a reservation.
//! 2. **One command, one critical section.** ADD, DEL, CHECK and GC hold `lock` exclusively from
//!    [`DiskStore::create`] / [`DiskStore::open_existing`] until the store is dropped (after
//!    [`DiskStore::finish`]); STATUS holds it shared ([`Probe`]) and writes nothing. host-local
//!    locks the same file, so neither plugin ever sees the other halfway; `lock` is never opened
//!    through a symlink. Every rule below is read under this lock.
//! 3. **A reservation is created whole, and the link decides.** Its content is written to a
//!    private file in `.tether/` (a spare, or a new `tmp-res`), hard-linked to `<dir>/<ip>`, and
//!    the private name unlinked. The link fails when the name exists, so it, not the index, is
//!    the final word on whether an address is free, whatever the index says. A reservation file is
//!    never written after its creation. A crash leaves no reservation or a complete one, at worst
//!    with a second name in `.tether/` (`tmp-res` or `spare-N` with two links), which is never
//!    rewritten: `tmp-res` is unlinked before reuse, and a spare is reused only with one link.
//! 4. **A release moves the file, never rewrites it in place while it is a reservation.** It is
//!    renamed into a free spare slot (unlinked when all are taken) and then blanked with the spare
//!    marker. A crash in between leaves a spare holding an owner, which no command of ours reads
//!    as a reservation (wrong name) and the next rebuild unlinks (invariant 7).
//! 5. **Every change to the truth changes a directory's mtime, and the seal records the one we
//!    set.** Creating, renaming or unlinking a reservation (by us, host-local or a person) sets
//!    the network directory's mtime to now. After writing its index back a command moves the
//!    mtimes of the directory and of `.tether/` two seconds into the past and records them, with
//!    their device and inode numbers, in `.tether/stamp` ([`stamp`], checksummed). The index is
//!    trusted only while the stamp matches both directories as they are now; otherwise the next
//!    command rebuilds it from the files (invariant 7) before using it. This is how host-local's
//!    (and anyone's) reservations and releases are detected. Not detected: a file slipped in
//!    while its writer restores the mtime, a content rewritten in place, or a clock stepped back
//!    onto the recorded value; invariants 3 and 6 still hold then.
//! 6. **The index is a cache, checked before it can do harm.** An owner entry is used only after
//!    its file was read back and still names that owner ([`DiskStore::held_by`]); a mismatch or
//!    a damaged bucket rebuilds the index and answers from the rebuild, so DEL never releases
//!    another attachment's address. An occupancy bit wrongly clear costs one failed link
//!    (invariant 3) and leaves the index unsealed; a damaged chunk reads as "maybe free". An
//!    owner whose content does not parse is counted as occupied but indexed to nobody: no request
//!    can match it, and GC releases it.
//! 7. **A rebuild starts from nothing.** It breaks the seal, unlinks every index file, `tmp-*`
//!    and `spare-*` (any of which may be a second name of a reservation or hold an old owner),
//!    reads every reservation (with GC's filter, unlinking the rejected ones), and writes the
//!    buckets and chunks; [`DiskStore::finish`] seals. Killed halfway, it leaves a broken seal
//!    and the next command rebuilds again.
//! 8. **The index is written back under a broken seal.** [`DiskStore::finish`] first marks the
//!    stamp invalid, then rewrites buckets and chunks in place, then seals; so a command killed
//!    at any step before the seal leaves an index the next command does not trust. Only a
//!    session that validated or rebuilt the index seals it, and only when nothing looked wrong
//!    (a link that found an unrecorded reservation, an index file it could not write): otherwise
//!    it leaves the seal broken.
//! 9. **A crash at each step of a verb.**
//!    - ADD killed after a link but before [`DiskStore::finish`]: the reservation exists, the
//!      index files do not know it, and the link moved the directory's mtime, so the next command
//!      rebuilds and finds it. The runtime saw no answer and sends DEL, which releases it; or a
//!      repeated ADD returns it and reserves what is missing. An ADD that fails (not killed)
//!      releases every address it reserved itself, and only those, before it answers.
//!    - DEL killed between two releases: the released one is gone (or waits in a spare,
//!      invariant 4), the other is still a reservation of the attachment; the rename moved the
//!      mtime, so the next DEL rebuilds, finds it and releases it. DEL with nothing held succeeds.
//!    - GC killed halfway: the rejected reservations it unlinked are gone, the rest are still
//!      files; the seal is broken (invariant 7) and a repeated GC finishes the job.
//!    - Any verb killed while writing the index back: invariant 8.
//! 10. **host-local never mistakes our files for reservations.** Its DEL and CHECK walk the whole
//!     network directory, `.tether/` included, and compare contents with `<id>\r\n<ifname>` or
//!     `<id>`: every index file starts with a header containing a space, the stamp too, and a
//!     waiting spare holds a marker with one. Its allocation tests names only, and ours are never
//!     addresses. Only a crash inside invariant 3 or 4 leaves an owner's content in `.tether/`
//!     for host-local to see, until our next command rebuilds.
//! 11. **No fsync, as host-local.** After a power failure a reservation may read empty, or as
//!     the older content of the spare it was written into: neither names a valid attachment, so
//!     GC releases it.

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

    /// Invariant 1 of store/mod.rs: a reservation's owner is its content, read as host-local reads it.
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
