//! DiskStore tests in a temp directory (no root needed).

use super::*;
use crate::allocator::allocate;
use crate::range::{Range, RangeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tether-ipam-disk-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn net(&self) -> PathBuf {
        self.0.join("net1")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sets(subnets: &[&str]) -> Vec<RangeSet> {
    subnets
        .iter()
        .map(|s| RangeSet::new(vec![Range::new(s.parse().unwrap(), None, None, None).unwrap()]).unwrap())
        .collect()
}

fn open(t: &TempDir) -> DiskStore {
    DiskStore::create(&t.0, "net1").unwrap()
}

fn add(t: &TempDir, subnets: &[&str], id: &str) -> Vec<IpAddr> {
    let mut s = open(t);
    let who = Owner { id, ifname: "eth0" };
    let held = s.held_by(&who).unwrap();
    let leases = allocate(&mut s, &sets(subnets), &who, &[], &held).unwrap();
    s.finish();
    leases.iter().map(|l| l.address.addr()).collect()
}

fn del(t: &TempDir, id: &str) -> Vec<IpAddr> {
    let mut s = DiskStore::open_existing(&t.0, "net1").unwrap().unwrap();
    let r = s.release_owner(&Owner { id, ifname: "eth0" }).unwrap();
    s.finish();
    r
}

fn held(t: &TempDir, id: &str) -> Vec<IpAddr> {
    let mut s = open(t);
    let r = s.held_by(&Owner { id, ifname: "eth0" }).unwrap();
    s.finish();
    r
}

/// Put a file in the store without moving the directory's mtime: invisible to the seal.
fn sneak(t: &TempDir, name: &str, content: &str) {
    let before = fs::metadata(t.net()).unwrap().modified().unwrap();
    fs::write(t.net().join(name), content).unwrap();
    File::open(t.net()).unwrap().set_modified(before).unwrap();
}

/// Invariants 1 and 10 of store/mod.rs: host-local's files, byte for byte, and nothing of ours that reads as one.
#[test]
fn files_are_exactly_host_locals() {
    let t = TempDir::new("format");
    assert_eq!(add(&t, &["198.18.0.0/24", "fd7e:7e7e::/64"], "ctr1"), [ip("198.18.0.2"), ip("fd7e:7e7e::2")]);
    let read = |n: &str| fs::read_to_string(t.net().join(n)).unwrap();
    assert_eq!(read("198.18.0.2"), "ctr1\r\neth0");
    assert_eq!(read("fd7e:7e7e::2"), "ctr1\r\neth0");
    assert_eq!(read("last_reserved_ip.0"), "198.18.0.2");
    assert_eq!(read("last_reserved_ip.1"), "fd7e:7e7e::2");
    let mode = |n: &str| fs::metadata(t.net().join(n)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("198.18.0.2"), 0o600);
    assert_eq!(mode("last_reserved_ip.0"), 0o600);
    assert_eq!(fs::metadata(t.net()).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(mode(".tether"), 0o755);
    assert_eq!(fs::metadata(t.net().join("198.18.0.2")).unwrap().nlink(), 1, "the temp link is gone");
    let names: Vec<String> =
        fs::read_dir(t.net()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 6, "{names:?}"); // 2 reservations, 2 last_reserved_ip, lock, .tether
                                             // every index file has a header with a space: host-local can never take it for a reservation
    for e in fs::read_dir(t.net().join(".tether")).unwrap() {
        let content = fs::read(e.unwrap().path()).unwrap();
        assert!(content.contains(&b' '));
    }
}

/// Invariants 1 and 4 of store/mod.rs: allocation and release through the files.
#[test]
fn round_robin_and_release_through_the_disk() {
    let t = TempDir::new("rr");
    let net = ["198.18.0.0/29"];
    assert_eq!(add(&t, &net, "a"), [ip("198.18.0.2")]);
    assert_eq!(add(&t, &net, "b"), [ip("198.18.0.3")]);
    assert_eq!(del(&t, "a"), [ip("198.18.0.2")]);
    assert!(!t.net().join("198.18.0.2").exists());
    assert_eq!(add(&t, &net, "c"), [ip("198.18.0.4")]);
    assert_eq!(add(&t, &net, "b"), [ip("198.18.0.3")], "a repeated ADD returns what is held");
    assert_eq!(del(&t, "nobody"), Vec::<IpAddr>::new());
    assert_eq!(del(&t, "b"), [ip("198.18.0.3")]);
    assert_eq!(del(&t, "b"), Vec::<IpAddr>::new(), "DEL twice is fine");
}

/// Invariant 5 of store/mod.rs: a matching seal is trusted; a visible change is not.
#[test]
fn the_sealed_index_is_used_without_scanning() {
    let t = TempDir::new("sealed");
    add(&t, &["198.18.0.0/24"], "a");
    // a file slipped in without moving the mtime is not seen: the index, not a scan, answered
    sneak(&t, "198.18.0.9", "ghost\r\neth0");
    assert!(held(&t, "ghost").is_empty());
    // but as soon as the directory changes visibly, the index is rebuilt and it is found
    fs::write(t.net().join("198.18.0.10"), "other\r\neth0").unwrap();
    assert_eq!(held(&t, "ghost"), [ip("198.18.0.9")]);
    assert_eq!(held(&t, "other"), [ip("198.18.0.10")]);
}

/// Invariant 5 of store/mod.rs: host-local's reservations and releases are detected.
#[test]
fn foreign_changes_are_noticed() {
    let t = TempDir::new("foreign");
    let net = ["198.18.0.0/24"];
    add(&t, &net, "a"); // .2
                        // host-local style: a new reservation and a release behind our back
    fs::write(t.net().join("198.18.0.3"), "hl\r\neth0").unwrap();
    assert_eq!(add(&t, &net, "b"), [ip("198.18.0.4")], ".3 is taken by the foreign file");
    fs::remove_file(t.net().join("198.18.0.2")).unwrap();
    assert!(held(&t, "a").is_empty());
    assert_eq!(del(&t, "hl"), [ip("198.18.0.3")]);
}

/// Invariant 6 of store/mod.rs: an owner entry is checked against its file before use.
#[test]
fn owner_entries_are_verified_against_the_files() {
    let t = TempDir::new("verify");
    add(&t, &["198.18.0.0/24"], "a"); // .2
                                      // rewrite the content in place (no directory change): the index still says "a"
    let before = fs::metadata(t.net()).unwrap().modified().unwrap();
    fs::write(t.net().join("198.18.0.2"), "z\r\neth0").unwrap();
    File::open(t.net()).unwrap().set_modified(before).unwrap();
    assert!(held(&t, "a").is_empty(), "a stale entry is never trusted");
    assert_eq!(held(&t, "z"), [ip("198.18.0.2")], "the rebuild found the real owner");
    assert!(del(&t, "a").is_empty(), "DEL never removes another container's reservation");
    assert!(t.net().join("198.18.0.2").exists());
}

/// Invariants 3 and 6 of store/mod.rs: the link, not the bitmap, decides.
#[test]
fn a_stale_occupancy_bit_never_hands_out_a_taken_address() {
    let t = TempDir::new("stale-used");
    add(&t, &["198.18.0.0/24"], "a"); // .2
    sneak(&t, "198.18.0.3", "ghost\r\neth0");
    assert_eq!(add(&t, &["198.18.0.0/24"], "b"), [ip("198.18.0.4")]);
    assert_eq!(fs::read_to_string(t.net().join("198.18.0.3")).unwrap(), "ghost\r\neth0");
    // the disagreement left the index unsealed: the next command rebuilt it and knows the owner
    assert_eq!(held(&t, "ghost"), [ip("198.18.0.3")]);
}

/// Invariant 1 of store/mod.rs: very old host-local's ID-only files are reservations too.
#[test]
fn legacy_id_only_files_are_found_and_released() {
    let t = TempDir::new("legacy");
    fs::create_dir_all(t.net()).unwrap();
    fs::write(t.net().join("198.18.0.7"), "old").unwrap();
    fs::write(t.net().join("fd7e:7e7e::7"), "old\n").unwrap();
    let mut got = held(&t, "old");
    got.sort();
    assert_eq!(got, [ip("198.18.0.7"), ip("fd7e:7e7e::7")]);
    let mut released = del(&t, "old");
    released.sort();
    assert_eq!(released, [ip("198.18.0.7"), ip("fd7e:7e7e::7")]);
    assert!(!t.net().join("198.18.0.7").exists() && !t.net().join("fd7e:7e7e::7").exists());
    // the exact id+ifname match wins over legacy files, as in host-local
    fs::write(t.net().join("198.18.0.8"), "c\r\neth0").unwrap();
    fs::write(t.net().join("198.18.0.9"), "c").unwrap();
    assert_eq!(del(&t, "c"), [ip("198.18.0.8")]);
    assert_eq!(del(&t, "c"), [ip("198.18.0.9")]);
}

/// Invariant 4 of store/mod.rs: a release moves the file into a spare, and the next ADD reuses it.
#[test]
fn released_files_are_reused_not_recreated() {
    let t = TempDir::new("spare");
    let subnets = ["198.18.0.0/24", "fd7e:7e7e::/64"];
    let bucket = |id: &str| format!(".tether/{}", super::super::owners::file_name(super::super::owners::bucket_of(id)));
    let inodes_of = |names: Vec<String>| {
        let mut inodes: Vec<u64> = names.iter().map(|n| fs::metadata(t.net().join(n)).unwrap().ino()).collect();
        inodes.sort_unstable();
        inodes
    };
    let first = add(&t, &subnets, "a-long-container-id");
    let mut names: Vec<String> = first.iter().map(IpAddr::to_string).collect();
    names.push(bucket("a-long-container-id"));
    let inodes = inodes_of(names);
    assert_eq!(del(&t, "a-long-container-id"), first);
    // two reservations and the owner bucket they emptied
    let spares = || ["spare-0", "spare-1", "spare-2", "spare-3"].map(|n| t.net().join(".tether").join(n).exists());
    assert_eq!(spares(), [true, true, true, false], "released files wait in .tether");
    assert_ne!(super::super::owners::bucket_of("a-long-container-id"), super::super::owners::bucket_of("b"));
    let second = add(&t, &subnets, "b");
    assert_eq!(spares(), [false; 4], "and become the next reservations and the new owner bucket");
    assert_eq!(second, [ip("198.18.0.3"), ip("fd7e:7e7e::3")]);
    let mut names: Vec<String> = second.iter().map(IpAddr::to_string).collect();
    names.push(bucket("b"));
    assert_eq!(inodes_of(names), inodes, "the new reservations and bucket live in the released files' inodes");
    for ip in &second {
        let path = t.net().join(ip.to_string());
        assert_eq!(fs::read_to_string(&path).unwrap(), "b\r\neth0");
        let m = fs::metadata(&path).unwrap();
        assert_eq!((m.nlink(), m.permissions().mode() & 0o777), (1, 0o600));
    }
    assert_eq!(held(&t, "b"), second);
    assert!(held(&t, "a-long-container-id").is_empty());
}

/// Invariants 3 and 6 of store/mod.rs: second names and damaged index files left by a crash.
#[test]
fn leftovers_of_a_crash_do_no_harm() {
    let t = TempDir::new("crash");
    add(&t, &["198.18.0.0/24"], "a"); // .2
                                      // died after linking, before unlinking the temp file: the temp is a second link of .2
    fs::hard_link(t.net().join("198.18.0.2"), t.net().join(".tether/tmp-res")).unwrap();
    assert_eq!(add(&t, &["198.18.0.0/24"], "b"), [ip("198.18.0.3")]);
    assert_eq!(fs::read_to_string(t.net().join("198.18.0.2")).unwrap(), "a\r\neth0", "not truncated");
    // the same with a spare as the second name, the seal intact (no rebuild clears it first)
    let meta = t.net().join(".tether");
    let before = fs::metadata(&meta).unwrap().modified().unwrap();
    fs::hard_link(t.net().join("198.18.0.2"), meta.join("spare-0")).unwrap();
    File::open(&meta).unwrap().set_modified(before).unwrap();
    assert_eq!(add(&t, &["198.18.0.0/24"], "c"), [ip("198.18.0.4")]);
    assert_eq!(del(&t, "c"), [ip("198.18.0.4")]);
    assert_eq!(fs::read_to_string(t.net().join("198.18.0.2")).unwrap(), "a\r\neth0", "not rewritten");
    assert_eq!(fs::metadata(t.net().join("198.18.0.2")).unwrap().nlink(), 1, "the second name is gone");
    assert_eq!(held(&t, "a"), [ip("198.18.0.2")]);
    // a damaged index file (torn stamp, junk bucket) only costs a rebuild
    let bucket = t.net().join(".tether").join(super::super::owners::file_name(super::super::owners::bucket_of("a")));
    let before = fs::metadata(t.net()).unwrap().modified().unwrap();
    fs::write(&bucket, "junk").unwrap();
    File::open(t.net()).unwrap().set_modified(before).unwrap();
    assert_eq!(held(&t, "a"), [ip("198.18.0.2")]);
}

#[test]
fn absent_store_is_not_created_by_existing_opens() {
    let t = TempDir::new("absent");
    assert!(DiskStore::open_existing(&t.0, "net1").unwrap().is_none());
    assert!(!t.net().exists());
    assert_eq!(DiskStore::create(&t.0, "../x").unwrap_err().code(), 7);
}

/// Invariant 7 of store/mod.rs: GC is a rebuild that unlinks what the filter rejects.
#[test]
fn gc_keeps_what_the_filter_accepts() {
    let t = TempDir::new("gc");
    for id in ["a", "b", "c"] {
        add(&t, &["198.18.0.0/24"], id);
    }
    fs::write(t.net().join("198.18.0.50"), "").unwrap();
    let mut s = open(&t);
    let scan = s.gc(&|o| matches!(o, FileOwner::Attachment { id, .. } if id == "b")).unwrap();
    s.finish();
    let mut released = scan.released.clone();
    released.sort();
    assert_eq!(released, [ip("198.18.0.2"), ip("198.18.0.4"), ip("198.18.0.50")]);
    assert_eq!(scan.kept, 1);
    assert!(scan.errors.is_empty());
    assert_eq!(held(&t, "b"), [ip("198.18.0.3")]);
    assert!(t.net().join("lock").exists() && t.net().join("last_reserved_ip.0").exists());
}

/// Invariant 5 of store/mod.rs: the seal follows a symlinked store directory.
#[test]
fn a_symlinked_store_directory_is_watched_through_the_link() {
    let t = TempDir::new("symlink");
    let real = t.0.join("real");
    fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, t.net()).unwrap();
    add(&t, &["198.18.0.0/24"], "a"); // .2
    fs::write(real.join("198.18.0.3"), "other\r\neth0").unwrap();
    assert_eq!(held(&t, "other"), [ip("198.18.0.3")]);
    assert_eq!(add(&t, &["198.18.0.0/24"], "b"), [ip("198.18.0.4")]);
}

/// Invariant 8 of store/mod.rs: only a session that validated the index seals it.
#[test]
fn an_index_never_validated_is_never_sealed() {
    let t = TempDir::new("unvalidated");
    add(&t, &["198.18.0.0/24"], "a"); // .2, sealed
    fs::write(t.net().join("198.18.0.3"), "other\r\neth0").unwrap(); // breaks the seal
    fs::remove_dir_all(t.net().join(".tether")).unwrap();
    // a session that changes the store (creates .tether) but never looks at the index
    open(&t).finish();
    assert_eq!(held(&t, "other"), [ip("198.18.0.3")], "the next session still rebuilt");
    assert_eq!(add(&t, &["198.18.0.0/24"], "b"), [ip("198.18.0.4")]);
}

/// The modification time of a directory, to put back after a change that must stay invisible.
fn mtime(path: &Path) -> std::time::SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

/// Invariants 9 and 5 of store/mod.rs: an ADD killed after its link, before it wrote the index
/// back, leaves a reservation the next command finds (the link moved the directory's mtime).
#[test]
fn an_add_killed_before_writing_the_index_back_is_found_by_the_next_command() {
    let t = TempDir::new("killed-add");
    add(&t, &["198.18.0.0/24"], "a"); // .2, sealed
    let mut s = open(&t);
    assert!(s.reserve(ip("198.18.0.3"), &Owner { id: "b", ifname: "eth0" }).unwrap());
    drop(s); // killed: no finish(); the index files and the stamp are still the previous command's
    assert_eq!(held(&t, "b"), [ip("198.18.0.3")], "the rebuild found it: DEL can release it");
    assert_eq!(add(&t, &["198.18.0.0/24"], "c"), [ip("198.18.0.4")], "and it is never handed out again");
    assert_eq!(del(&t, "b"), [ip("198.18.0.3")]);
}

/// Invariants 9, 4 and 7 of store/mod.rs: a DEL killed between its two releases, the first file
/// moved into a spare but not yet blanked (it still names its owner).
#[test]
fn a_del_killed_halfway_is_finished_by_the_next_del() {
    let t = TempDir::new("killed-del");
    let both = ["198.18.0.0/24", "fd7e:7e7e::/64"];
    assert_eq!(add(&t, &both, "a"), [ip("198.18.0.2"), ip("fd7e:7e7e::2")]);
    fs::rename(t.net().join("198.18.0.2"), t.net().join(".tether/spare-0")).unwrap();
    assert_eq!(held(&t, "a"), [ip("fd7e:7e7e::2")], "a spare is no reservation");
    assert!(!t.net().join(".tether/spare-0").exists(), "the rebuild unlinked the spare and the owner in it");
    assert_eq!(del(&t, "a"), [ip("fd7e:7e7e::2")]);
    assert!(held(&t, "a").is_empty());
    assert_eq!(add(&t, &both, "b"), [ip("198.18.0.3"), ip("fd7e:7e7e::3")]);
}

/// Invariant 8 of store/mod.rs: a command killed while writing the index back (seal broken, an
/// index file half-rewritten) leaves an index the next command does not trust, even though the
/// directories' mtimes still match the old seal.
#[test]
fn an_index_written_back_halfway_is_never_trusted() {
    let t = TempDir::new("torn-index");
    add(&t, &["198.18.0.0/24"], "a"); // .2, sealed
    let meta = t.net().join(".tether");
    let bucket = meta.join(super::super::owners::file_name(super::super::owners::bucket_of("a")));
    let hide = |change: &dyn Fn()| {
        let before = mtime(&meta);
        change();
        File::open(&meta).unwrap().set_modified(before).unwrap();
    };
    // without breaking the seal, a lost bucket goes unnoticed: only the stamp can tell
    let saved = fs::read(&bucket).unwrap();
    hide(&|| fs::remove_file(&bucket).unwrap());
    assert!(held(&t, "a").is_empty(), "the sealed index was trusted");
    hide(&|| fs::write(&bucket, &saved).unwrap());
    assert_eq!(held(&t, "a"), [ip("198.18.0.2")]);
    // killed after the seal was broken and while the bucket was being rewritten
    stamp::write(&meta, None).unwrap();
    hide(&|| fs::remove_file(&bucket).unwrap());
    assert_eq!(held(&t, "a"), [ip("198.18.0.2")], "rebuilt from the files");
}
