//! The engine shared by masquerade, spoof check and isolation: race-free table
//! creation, reading sets back, and removing elements by owner; a table whose last element goes is dropped in a
//! transaction bound to the ruleset generation (see [`Ctx::drop_if_empty`]), so a network leaves no state behind.

use std::time::Duration;

use crate::grace::wait_for_grace_period;
use crate::netlink::{Batch, Commit, Conn, Dump, Failure, KernelError, Msg, WireError};
use crate::objects::{self, Elem, SetRef, Table};
use crate::owners::{self, OwnerMap};
use crate::{names, NftError};

/// How often a transaction is recomputed when concurrent changes invalidate it. Each retry re-reads the state,
/// so this only bounds pathological contention.
pub(crate) const MAX_ATTEMPTS: u32 = 100;
/// Elements per NEWSETELEM/DELSETELEM message: keeps each nested attribute far below the 64 KiB it can hold.
const ELEMS_PER_MSG: usize = 128;
/// Keys per GETSETELEM: the kernel queues one answer per key on our socket before we read any (nonblocking, so
/// a full receive buffer would fail the lookup with EAGAIN); 32 answers of under 200 bytes stay far below it.
pub(crate) const KEYS_PER_GET: usize = 32;

/// A public call in progress: its name (for errors) and the session's socket.
pub(crate) struct Ctx<'s> {
    pub(crate) op: &'static str,
    conn: &'s mut Conn,
    /// The digest of owner comments in owner-map keys ([`crate::owners::digest`], or a test's).
    pub(crate) digest: fn(&str) -> u64,
}

impl<'s> Ctx<'s> {
    pub(crate) fn new(op: &'static str, conn: &'s mut Conn, digest: fn(&str) -> u64) -> Ctx<'s> {
        Ctx { op, conn, digest }
    }

    fn wire(&self, object: &str, e: WireError) -> NftError {
        match e {
            WireError::Io(e) => NftError::io(self.op, object, e),
            WireError::Protocol(why) => NftError::protocol(self.op, object, why),
        }
    }

    /// The error for a message of `batch` the kernel refused.
    pub(crate) fn failure(&self, batch: &Batch, f: &Failure) -> NftError {
        NftError::errno(self.op, batch.object(f.index), f.errno, f.detail.clone())
    }

    /// Apply `batch`. `what` names the transaction in errors that are not tied to one message.
    pub(crate) fn commit(&mut self, batch: &Batch, what: &str) -> Result<Commit, NftError> {
        self.conn.commit(batch).map_err(|e| self.wire(what, e))
    }

    /// The current ruleset generation, for [`Batch::if_generation`].
    pub(crate) fn generation(&mut self) -> Result<u32, NftError> {
        match self.conn.generation().map_err(|e| self.wire("ruleset generation", e))? {
            Ok(id) => Ok(id),
            Err(e) => Err(NftError::errno(self.op, "ruleset generation", e.errno, e.detail)),
        }
    }

    /// A reply about `set`: None when the set (or its table) does not exist.
    fn about_set<T>(&self, set: SetRef<'_>, reply: Result<T, KernelError>) -> Result<Option<T>, NftError> {
        match reply {
            Ok(reply) => Ok(Some(reply)),
            Err(e) if e.errno == libc::ENOENT => Ok(None),
            Err(e) => Err(NftError::errno(self.op, set.describe(), e.errno, e.detail)),
        }
    }

    fn dump_set(&mut self, set: SetRef<'_>) -> Result<Option<Dump>, NftError> {
        let reply = self.conn.dump(objects::dump_elems(set)).map_err(|e| self.wire(&set.describe(), e))?;
        self.about_set(set, reply)
    }

    /// Every element of `set`, or None when the set (or its table) does not exist.
    pub(crate) fn read_set(&mut self, set: SetRef<'_>) -> Result<Option<Vec<Elem>>, NftError> {
        Ok(self.dump_set(set)?.map(|dump| elems_of(&dump.bodies)))
    }

    /// Like [`Ctx::read_set`], but retried while the kernel flags the dump as interrupted by a concurrent change,
    /// for readers that do not follow up with a generation-checked transaction.
    pub(crate) fn read_set_consistent(&mut self, set: SetRef<'_>) -> Result<Option<Vec<Elem>>, NftError> {
        for _ in 0..MAX_ATTEMPTS {
            match self.dump_set(set)? {
                Some(dump) if dump.interrupted => continue,
                dump => return Ok(dump.map(|d| elems_of(&d.bodies))),
            }
        }
        Err(NftError::protocol(self.op, set.describe(), "set kept changing while being read"))
    }

    /// The element of `set` with `key`, or None when it (or the set) does not exist.
    pub(crate) fn get_elem(&mut self, set: SetRef<'_>, key: &[u8]) -> Result<Option<Elem>, NftError> {
        Ok(self.get_elems(set, std::slice::from_ref(&key.to_vec()))?.pop().flatten())
    }

    /// The elements of `set` with `keys`, in order, each None when absent (all None when the set is absent).
    pub(crate) fn get_elems(&mut self, set: SetRef<'_>, keys: &[Vec<u8>]) -> Result<Vec<Option<Elem>>, NftError> {
        let mut out: Vec<Option<Elem>> = Vec::with_capacity(keys.len());
        while out.len() < keys.len() {
            let (found, complete) = self.get_run(set, &keys[out.len()..])?;
            out.extend(found.into_iter().map(Some));
            if !complete {
                out.push(None); // the key the kernel stopped at
            }
        }
        Ok(out)
    }

    /// The elements of `set` with the first of `keys`, up to the first key that is absent (at most
    /// [`KEYS_PER_GET`] keys): one round trip. The flag says whether every key asked was found.
    pub(crate) fn get_run(&mut self, set: SetRef<'_>, keys: &[Vec<u8>]) -> Result<(Vec<Elem>, bool), NftError> {
        let keys = &keys[..keys.len().min(KEYS_PER_GET)];
        if keys.is_empty() {
            return Ok((Vec::new(), true));
        }
        let (reply, end) = self.conn.get(objects::get_elems(set, keys)).map_err(|e| self.wire(&set.describe(), e))?;
        let found: Vec<Elem> = reply.bodies.iter().flat_map(|b| objects::parse_elems(b)).collect();
        // The kernel answers the keys in order, one message each, and stops at the first it cannot find.
        if found.len() > keys.len() || found.iter().zip(keys).any(|(e, k)| e.key != *k) {
            return Err(NftError::protocol(self.op, set.describe(), "elements answered out of order"));
        }
        match end {
            None if found.len() == keys.len() => Ok((found, true)),
            None => Err(NftError::protocol(self.op, set.describe(), "a lookup answered fewer keys than asked")),
            Some(e) if e.errno == libc::ENOENT => Ok((found, false)),
            Some(e) => Err(NftError::errno(self.op, set.describe(), e.errno, e.detail)),
        }
    }

    /// Whether `set` holds no element; None when there is no such set. One GETSET where the kernel reports the
    /// count (`NFTA_SET_COUNT`: seen on 6.18, absent on Debian 12's 6.1); without it the set is read. 6.1 offers
    /// nothing cheaper: a transaction deleting the set only if empty (DELSET with `NLM_F_NONREC`, refused with
    /// EBUSY otherwise) would decide under the commit lock, but a refused transaction took 12-16 ms on 6.18 (one
    /// grace period, by its length; a committed one takes microseconds), a cost every non-last DEL would pay.
    fn set_is_empty(&mut self, set: SetRef<'_>) -> Result<Option<bool>, NftError> {
        match self.get_set(set)? {
            None => Ok(None),
            Some(Some(count)) => Ok(Some(count == 0)),
            Some(None) => Ok(self.read_set(set)?.map(|elems| elems.is_empty())),
        }
    }

    /// How many elements `set` holds, as the kernel reports it (`NFTA_SET_COUNT`): one GETSET. None when the set
    /// does not exist or the kernel does not report counts (Debian 12's 6.1).
    pub(crate) fn reported_count(&mut self, set: SetRef<'_>) -> Result<Option<u32>, NftError> {
        Ok(self.get_set(set)?.flatten())
    }

    /// GETSET: None when the set does not exist, else its element count if the kernel reports one.
    fn get_set(&mut self, set: SetRef<'_>) -> Result<Option<Option<u32>>, NftError> {
        let (reply, end) = self.conn.get(objects::get_set(set)).map_err(|e| self.wire(&set.describe(), e))?;
        match end {
            None => {}
            Some(e) if e.errno == libc::ENOENT => return Ok(None),
            Some(e) => return Err(NftError::errno(self.op, set.describe(), e.errno, e.detail)),
        }
        Ok(Some(reply.bodies.iter().find_map(|b| objects::set_count(b))))
    }

    /// Whether the kernel reports set element counts, asked in a throwaway table (`tether--probe`, a name no
    /// network's table can have).
    pub(crate) fn reports_set_counts(&mut self) -> Result<bool, NftError> {
        let t = Table { family: objects::Family::Inet, name: format!("{}-probe", names::TABLE_PREFIX) };
        let spec = objects::SetSpec { name: "s", key_type: 7, key_len: 4, flags: 0, key_byteorder: 2, data: None };
        self.ensure_table(&t, |b| {
            b.push(objects::new_set(&t, &spec, 1), t.set("s").describe());
        })?;
        let (reply, _) = self.conn.get(objects::get_set(t.set("s"))).map_err(|e| self.wire(&t.describe(), e))?;
        let mut batch = Batch::new();
        batch.push(objects::del_table(&t), t.describe());
        self.commit(&batch, &t.describe())?;
        Ok(reply.bodies.iter().any(|b| objects::set_count(b).is_some()))
    }

    /// Whether `set` (and its table) exists: one GETSET, no dump.
    pub(crate) fn has_set(&mut self, set: SetRef<'_>) -> Result<bool, NftError> {
        let (_, end) = self.conn.get(objects::get_set(set)).map_err(|e| self.wire(&set.describe(), e))?;
        match end {
            None => Ok(true),
            Some(e) if e.errno == libc::ENOENT => Ok(false),
            Some(e) => Err(NftError::errno(self.op, set.describe(), e.errno, e.detail)),
        }
    }

    /// Whether `table` exists: one GETTABLE, no dump.
    pub(crate) fn has_table(&mut self, table: &Table) -> Result<bool, NftError> {
        let (_, end) = self.conn.get(objects::get_table(table)).map_err(|e| self.wire(&table.describe(), e))?;
        match end {
            None => Ok(true),
            Some(e) if e.errno == libc::ENOENT => Ok(false),
            Some(e) => Err(NftError::errno(self.op, table.describe(), e.errno, e.detail)),
        }
    }

    /// None when `table` exists; when it does not, the ruleset generation it was seen absent at, to bind the
    /// transaction that creates it to ([`push_creation`]). One GETTABLE when the table is there (the usual case);
    /// when it is not, the generation and a second look, since a generation vouches only for what is read after it.
    pub(crate) fn absent_since(&mut self, table: &Table) -> Result<Option<u32>, NftError> {
        if self.has_table(table)? {
            return Ok(None);
        }
        let genid = self.generation()?;
        Ok(if self.has_table(table)? { None } else { Some(genid) })
    }

    /// Create `table` with everything `contents` adds (chains, sets, rules) in one transaction. The table message
    /// carries NLM_F_EXCL, so when another process created the table first the whole batch is refused with EEXIST
    /// on that message and nothing is duplicated: that counts as success.
    pub(crate) fn ensure_table(&mut self, table: &Table, contents: impl FnOnce(&mut Batch)) -> Result<(), NftError> {
        let mut batch = Batch::new();
        push_creation(&mut batch, table, contents);
        match self.commit(&batch, &table.describe())? {
            Commit::Done => {
                log::debug!("{}: created {}", self.op, table.describe());
                Ok(())
            }
            Commit::Failed(fs) if table_existed(&fs) => Ok(()),
            Commit::Failed(fs) => Err(self.failure(&batch, &fs[0])),
            Commit::Rejected { errno, detail } => Err(NftError::errno(self.op, table.describe(), errno, detail)),
        }
    }

    /// DEL in a table made before owner maps ([`Ctx::remove_attachment`] otherwise): remove the elements of
    /// `sets` that `owner` (an owner comment) holds, found by listing the sets; when that leaves every one of
    /// `sets` empty, drop the table and `companion` with it ([`Ctx::drop_if_empty`]).
    pub(crate) fn remove_owner_by_listing(
        &mut self,
        table: &Table,
        sets: &[&'static str],
        owner: &str,
        companion: Option<&Companion>,
    ) -> Result<usize, NftError> {
        let (removed, found) =
            self.remove_where(table, sets, &[], EmptyTable::Keep, None, |e| e.comment.as_deref() == Some(owner))?;
        if found {
            self.drop_if_empty(table, sets, companion)?;
        }
        Ok(removed)
    }

    /// Drop `table` (and `companion`) if every one of `sets` is empty, in a transaction bound to the generation
    /// read before looking: a concurrent ADD either commits first (the kernel then refuses ours with ERESTART and
    /// we look again) or finds the table gone and recreates it. Every DEL looks after its own removal, so of
    /// several DELs that empty a table together the last to commit sees it empty, whatever their interleaving.
    /// The extra cost (a read, and a grace period when the table goes) falls on DEL only, and its wait only on a
    /// network's last DEL.
    pub(crate) fn drop_if_empty(
        &mut self,
        table: &Table,
        sets: &[&'static str],
        companion: Option<&Companion>,
    ) -> Result<bool, NftError> {
        // Most DELs leave other attachments behind: a look before reading the generation settles those.
        for &name in sets {
            if self.set_is_empty(table.set(name))? == Some(false) {
                return Ok(false);
            }
        }
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt);
            let mut batch = Batch::new().if_generation(self.generation()?);
            let mut found = false;
            for &name in sets {
                match self.set_is_empty(table.set(name))? {
                    None => {}
                    Some(true) => found = true,
                    Some(false) => return Ok(false),
                }
            }
            if !found {
                return Ok(false);
            }
            self.push_drop(&mut batch, table, companion)?;
            match self.commit(&batch, &table.describe())? {
                Commit::Done => {
                    log::debug!("{}: dropped the emptied {}", self.op, table.describe());
                    wait_for_grace_period();
                    return Ok(true);
                }
                Commit::Rejected { errno: libc::ERESTART, .. } => {}
                Commit::Failed(fs) => return Err(self.failure(&batch, &fs[0])),
                Commit::Rejected { errno, detail } => {
                    return Err(NftError::errno(self.op, table.describe(), errno, detail))
                }
            }
        }
        Err(NftError::gave_up(self.op, table.describe()))
    }

    /// Add the deletion of `table`, and of `companion` when it is there and still names its owner, to `batch`.
    pub(crate) fn push_drop(
        &mut self,
        batch: &mut Batch,
        table: &Table,
        companion: Option<&Companion>,
    ) -> Result<(), NftError> {
        if let Some(c) = companion {
            self.push_companion_removal(batch, c)?;
        }
        batch.push(objects::del_table(table), table.describe());
        Ok(())
    }

    /// Add the deletion of `c`, if it is there and still names its owner, to `batch`; when it is the last element
    /// of its set, the deletion of its (shared) table instead. `batch` must be bound to the generation read
    /// before this looked, so that a concurrent ADD of another network cannot lose its element with the table.
    pub(crate) fn push_companion_removal(&mut self, batch: &mut Batch, c: &Companion) -> Result<(), NftError> {
        let set = c.table.set(c.set);
        let Some(elems) = self.read_set(set)? else { return Ok(()) };
        let ours = |e: &Elem| e.key == c.key && e.comment.as_deref() == Some(c.comment.as_str());
        if !elems.iter().any(ours) {
            return Ok(());
        }
        if elems.iter().all(ours) {
            batch.push(objects::del_table(&c.table), c.table.describe());
        } else {
            batch.push(objects::del_elems(set, &[Elem::new(c.key.clone(), None)]), set.describe());
        }
        Ok(())
    }

    /// GC: remove every element of `sets` not owned by one of `valid` ((container ID, ifname) pairs), and the
    /// table once empty. Logs what it removed, as `what` ("masquerade", ...).
    pub(crate) fn remove_owners_not_in(
        &mut self,
        table: &Table,
        sets: &[&'static str],
        maps: &[OwnerMap],
        valid: &[(String, String)],
        what: &str,
        companion: Option<&Companion>,
    ) -> Result<(), NftError> {
        // A pair that is not a valid name cannot own anything we wrote.
        let keep: Vec<String> =
            valid.iter().filter_map(|(id, ifname)| names::owner(self.op, id, ifname).ok()).collect();
        let (removed, _) = self.remove_where(table, sets, maps, EmptyTable::Drop, companion, |e| {
            !e.comment.as_ref().is_some_and(|c| keep.iter().any(|k| k == c))
        })?;
        if removed > 0 {
            log::info!("{}: removed {removed} stale {what} element(s) of {}", self.op, table.describe());
        }
        Ok(())
    }

    /// Remove every element of `sets` and every entry of the owner `maps` for which `doomed` holds, as one
    /// transaction (the entries left move down to close the holes, see [`crate::owners`]). With [`EmptyTable::Drop`] it
    /// only commits if nothing changed since the sets were read, and when no element is left in any of `sets`,
    /// the table (and `companion`) goes too (a concurrent ADD either lands before our read, and then the table
    /// stays, or finds the table gone and recreates it). A missing table is success. Returns how many elements
    /// were removed, and whether any of `sets` was found.
    fn remove_where(
        &mut self,
        table: &Table,
        sets: &[&'static str],
        maps: &[OwnerMap],
        empty_table: EmptyTable,
        companion: Option<&Companion>,
        doomed: impl Fn(&Elem) -> bool,
    ) -> Result<(usize, bool), NftError> {
        let mut last: Option<NftError> = None;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt);
            // Only dropping the table needs the whole read-then-delete to be atomic (a concurrent ADD
            // must not lose its freshly added element with the table). Deleting elements alone does
            // not: an element read here is deleted by key (its key, an address or a port name derived
            // from the attachment, stays the attachment's until after this call, so nobody else can be
            // given it meanwhile), and a concurrent change to
            // another element cannot make that wrong. Binding every DEL to the generation made 64 parallel DELs
            // restart each other (each commit moves the generation): 783 ms instead of ~200.
            let mut batch = match empty_table {
                EmptyTable::Drop => Batch::new().if_generation(self.generation()?),
                EmptyTable::Keep => Batch::new(),
            };
            let (mut removed, mut remaining, mut found) = (0, 0, false);
            for &name in sets {
                let set = table.set(name);
                let Some(elems) = self.read_set(set)? else { continue };
                found = true;
                let (gone, kept): (Vec<Elem>, Vec<Elem>) = elems.into_iter().partition(|e| doomed(e));
                removed += gone.len();
                remaining += kept.len();
                push_elems(&mut batch, set, &gone, objects::del_elems);
            }
            if !found {
                return Ok((0, false));
            }
            for map in maps {
                let set = table.set(map.name);
                for run in owners::runs(self.read_set(set)?.unwrap_or_default()) {
                    let change = owners::shrink(&run, &doomed);
                    push_elems(&mut batch, set, &change.del, objects::del_elems);
                    push_elems(&mut batch, set, &change.add, |s, c| objects::add_elems(s, c, true));
                }
            }
            if remaining == 0 && empty_table == EmptyTable::Drop {
                self.push_drop(&mut batch, table, companion)?;
            }
            if batch.is_empty() {
                return Ok((0, true));
            }
            match self.commit(&batch, &table.describe())? {
                Commit::Done => {
                    wait_for_grace_period();
                    return Ok((removed, true));
                }
                // The generation moved (ERESTART) or a concurrent call removed something first: read again.
                Commit::Rejected { errno: libc::ERESTART, .. } => {}
                Commit::Failed(fs) if fs.iter().all(|f| f.errno == libc::ENOENT) => {
                    last = Some(self.failure(&batch, &fs[0]));
                }
                Commit::Failed(fs) => return Err(self.failure(&batch, &fs[0])),
                Commit::Rejected { errno, detail } => {
                    return Err(NftError::errno(self.op, table.describe(), errno, detail))
                }
            }
        }
        Err(last.unwrap_or_else(|| NftError::gave_up(self.op, table.describe())))
    }
}

/// What to do, in the removal transaction itself, with a table whose sets it empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmptyTable {
    /// Nothing: DEL of one container, whose removal is not bound to the generation (binding every DEL made
    /// parallel DELs restart each other); [`Ctx::drop_if_empty`] follows it.
    Keep,
    /// Remove it in the same transaction, bound to the generation: GC.
    Drop,
}

/// An element elsewhere that belongs to a per-network table's network and goes with it: the network's
/// isolation element in the shared table. Deleted only while its comment still names the network.
#[derive(Debug, Clone)]
pub(crate) struct Companion {
    /// Its table.
    pub(crate) table: Table,
    /// Its set.
    pub(crate) set: &'static str,
    /// Its key.
    pub(crate) key: Vec<u8>,
    /// The comment that marks it as the network's.
    pub(crate) comment: String,
}

/// The elements of a dump, each once. A hash set's dump can list an element twice when the kernel resizes the
/// table during the walk (rhashtable walks restart); it never skips one that stays present.
fn elems_of(bodies: &[Vec<u8>]) -> Vec<Elem> {
    let mut out: Vec<Elem> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in bodies.iter().flat_map(|b| objects::parse_elems(b)) {
        if seen.insert((e.key.clone(), e.flags)) {
            out.push(e);
        }
    }
    out
}

/// Start `batch` (empty so far) with the creation of `table` and everything `contents` adds (chains, sets, rules);
/// returns how many messages that is. A network's first ADD follows them with its elements, so that creating the
/// table and filling it is one transaction: bound to the generation the table was seen absent at
/// ([`Ctx::absent_since`]), a concurrent creator that commits first makes the kernel reject it whole with
/// ERESTART, before any message is tried (no abort, whose grace period would stall every nf_tables transaction of
/// the namespace; only a batch that made the kernel load a module was aborted before its refusal); and the table
/// message is exclusive, so even an unbound batch cannot duplicate the table's rules: it fails with EEXIST on that
/// message ([`table_existed`]).
pub(crate) fn push_creation(batch: &mut Batch, table: &Table, contents: impl FnOnce(&mut Batch)) -> usize {
    debug_assert!(batch.is_empty(), "the table message must come first");
    batch.push(objects::new_table(table), table.describe());
    contents(batch);
    batch.len()
}

/// Whether a batch started by [`push_creation`] failed because the table existed: its first message was refused
/// with EEXIST (the kernel tries every message of a batch, so the others may have failed too, in consequence).
pub(crate) fn table_existed(failures: &[Failure]) -> bool {
    failures.iter().any(|f| f.index == 0 && f.errno == libc::EEXIST)
}

/// Append messages built by `build` for `elems`, split into chunks; returns how many.
pub(crate) fn push_elems(
    batch: &mut Batch,
    set: SetRef<'_>,
    elems: &[Elem],
    build: impl Fn(SetRef<'_>, &[Elem]) -> Msg,
) -> usize {
    elems.chunks(ELEMS_PER_MSG).map(|chunk| batch.push(build(set, chunk), set.describe())).count()
}

/// Pause before retry `attempt` (none before the first), growing to 2 ms, to let a competing writer finish.
pub(crate) fn backoff(attempt: u32) {
    if attempt > 0 {
        std::thread::sleep(Duration::from_micros(u64::from(attempt.min(40)) * 50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Family, SetSpec};

    /// Run `f` on a thread that has moved into a new, empty network namespace (never the machine's own).
    /// Returns None (after printing SKIPPED) when not root, and fails under CI.
    fn in_new_netns<T: Send>(test: &str, f: impl FnOnce() -> T + Send) -> Option<T> {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "{test}: must run as root under CI");
            eprintln!("SKIPPED: {test}: not root");
            return None;
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
        .into()
    }

    fn test_table() -> Table {
        Table { family: Family::Inet, name: "tether-unit".into() }
    }

    fn with_set(t: &Table, b: &mut Batch) {
        let spec = SetSpec { name: "s", key_type: 7, key_len: 4, flags: 0, key_byteorder: 2, data: None };
        b.push(objects::new_set(t, &spec, 1), t.set("s").describe());
    }

    #[test]
    fn a_batch_bound_to_an_old_generation_is_refused() {
        in_new_netns("a_batch_bound_to_an_old_generation_is_refused", || {
            let t = test_table();
            let mut session = crate::Session::open().unwrap();
            let mut ctx = session.ctx("test");
            ctx.ensure_table(&t, |b| with_set(&t, b)).unwrap();
            let old = ctx.generation().unwrap();
            let mut b = Batch::new();
            b.push(objects::add_elems(t.set("s"), &[Elem::new(vec![198, 18, 0, 1], Some("x"))], true), "e".into());
            assert!(matches!(ctx.commit(&b, "add").unwrap(), Commit::Done));
            assert_ne!(ctx.generation().unwrap(), old);
            let mut b = Batch::new().if_generation(old);
            b.push(objects::del_elems(t.set("s"), &[Elem::new(vec![198, 18, 0, 1], None)]), "e".into());
            match ctx.commit(&b, "del").unwrap() {
                Commit::Rejected { errno, .. } => assert_eq!(errno, libc::ERESTART),
                other => panic!("expected ERESTART, got {other:?}"),
            }
            // with the current generation it goes through
            let now = ctx.generation().unwrap();
            let mut b = Batch::new().if_generation(now);
            b.push(objects::del_elems(t.set("s"), &[Elem::new(vec![198, 18, 0, 1], None)]), "e".into());
            assert!(matches!(ctx.commit(&b, "del").unwrap(), Commit::Done));
        });
    }

    /// nf_tables loads a module a message needs with its commit lock released, then replays the batch. When the
    /// generation moved meanwhile, the replay is refused with one ERESTART naming that message instead of the batch,
    /// and no other message is answered: on 6.1 such a commit waited 10 s for ACKs that never came, or, of one
    /// message, was taken for that message's failure instead of a reason to read again and retry. Here every
    /// attempt carries a rule of an expression no kernel has (a module request each time) while a second socket
    /// commits in a loop. A kernel without modules never replays (then this checks the other two answers).
    #[test]
    fn a_batch_refused_on_its_replay_after_a_module_request_is_answered() {
        let modules = std::path::Path::new("/proc/modules").exists();
        in_new_netns("a_batch_refused_on_its_replay_after_a_module_request_is_answered", || {
            let t = test_table();
            let chain = objects::BaseChain { name: "c", kind: "filter", hook: 4, priority: 0 };
            let mut session = crate::Session::open().unwrap();
            let mut ctx = session.ctx("test");
            ctx.ensure_table(&t, |b| {
                objects::push_contents(b, &t, &chain, &[], &[]);
                with_set(&t, b);
            })
            .unwrap();
            let stop = std::sync::atomic::AtomicBool::new(false);
            let (mut refused, mut restarted) = (0u32, 0u32);
            /// Stops the second socket's loop however this thread leaves the scope (the scope joins it).
            struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            std::thread::scope(|s| {
                // Same namespace: a thread starts in its creator's.
                s.spawn(|| {
                    let mut session = crate::Session::open().unwrap();
                    let mut ctx = session.ctx("churn");
                    let elem = || [Elem::new(vec![198, 18, 0, 1], None)];
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for msg in
                            [objects::add_elems(t.set("s"), &elem(), false), objects::del_elems(t.set("s"), &elem())]
                        {
                            let mut b = Batch::new();
                            b.push(msg, "e".into());
                            assert!(matches!(ctx.commit(&b, "churn").unwrap(), Commit::Done));
                        }
                    }
                });
                let _stop = StopOnDrop(&stop);
                for attempt in 0..20 {
                    let mut b = Batch::new().if_generation(ctx.generation().unwrap());
                    // Alone, the refused rule looks answered; after an element, the element's ACK never comes.
                    if attempt % 2 == 1 {
                        b.push(
                            objects::add_elems(t.set("s"), &[Elem::new(vec![198, 18, 0, 2], None)], false),
                            "e".into(),
                        );
                    }
                    b.push(objects::rule_of_unknown_expression(&t, "c", "tetherunknown"), "rule".into());
                    match ctx.commit(&b, "probe") {
                        Ok(Commit::Rejected { errno: libc::ERESTART, .. }) => restarted += 1,
                        Ok(Commit::Failed(fs)) if fs.len() == 1 && fs[0].errno == libc::ENOENT => refused += 1,
                        other => panic!("expected ERESTART or ENOENT for the rule, got {other:?}"),
                    }
                }
            });
            // Both kinds of ERESTART count: the replay's, and the refusal at the batch's begin when the second socket
            // committed between our generation read and our send. What may not happen is waiting for more.
            eprintln!("kernel with modules: {modules}; ERESTART {restarted}, ENOENT {refused}");
        });
    }

    #[test]
    fn a_creation_with_elements_is_one_transaction_and_its_loser_is_rejected_unopened() {
        in_new_netns("a_creation_with_elements_is_one_transaction_and_its_loser_is_rejected_unopened", || {
            let t = test_table();
            let mut session = crate::Session::open().unwrap();
            let mut ctx = session.ctx("test");
            let creation = |elem: u8| {
                let mut b = Batch::new();
                assert_eq!(push_creation(&mut b, &t, |b| with_set(&t, b)), 2);
                b.push(objects::add_elems(t.set("s"), &[Elem::new(vec![198, 18, 0, elem], None)], true), "e".into());
                b
            };
            let absent_at = ctx.absent_since(&t).unwrap().expect("no table yet");
            // Two creators saw the table absent at the same generation; the first commits.
            assert!(matches!(ctx.commit(&creation(1).if_generation(absent_at), "create").unwrap(), Commit::Done));
            assert_eq!(ctx.absent_since(&t).unwrap(), None);
            // The second is rejected whole before any message is tried: its element into a set that does not exist
            // would have been refused (ENOENT) had the kernel looked at it.
            let mut late = creation(2).if_generation(absent_at);
            late.push(objects::add_elems(t.set("nope"), &[Elem::new(vec![198, 18, 0, 3], None)], true), "x".into());
            match ctx.commit(&late, "create").unwrap() {
                Commit::Rejected { errno, .. } => assert_eq!(errno, libc::ERESTART),
                other => panic!("expected ERESTART, got {other:?}"),
            }
            // Unbound, the exclusive table message is what stops it: EEXIST on message 0, nothing applied.
            match ctx.commit(&creation(2), "create").unwrap() {
                Commit::Failed(fs) => assert!(table_existed(&fs), "{fs:?}"),
                other => panic!("expected EEXIST on the table, got {other:?}"),
            }
            let keys: Vec<Vec<u8>> = ctx.read_set(t.set("s")).unwrap().unwrap().into_iter().map(|e| e.key).collect();
            assert_eq!(keys, [vec![198, 18, 0, 1]]);
            assert_eq!((session.batches_sent(), session.batches_refused()), (3, 1), "only the unbound loser aborted");
        });
    }

    #[test]
    fn table_creation_reports_the_failing_message_and_tolerates_a_winner() {
        in_new_netns("table_creation_reports_the_failing_message_and_tolerates_a_winner", || {
            let t = test_table();
            let mut session = crate::Session::open().unwrap();
            let mut ctx = session.ctx("test");
            ctx.ensure_table(&t, |b| with_set(&t, b)).unwrap();
            ctx.ensure_table(&t, |b| with_set(&t, b)).unwrap(); // EEXIST on the table: fine
                                                                // A bad message in a batch is reported against that message's object, with its errno.
            let mut b = Batch::new();
            b.push(objects::add_elems(t.set("s"), &[Elem::new(vec![198, 18, 0, 1], None)], true), "first".into());
            b.push(objects::add_elems(t.set("nope"), &[Elem::new(vec![198, 18, 0, 2], None)], true), "set nope".into());
            match ctx.commit(&b, "batch").unwrap() {
                Commit::Failed(fs) => {
                    assert_eq!(fs.len(), 1);
                    assert_eq!((fs[0].index, fs[0].errno), (1, libc::ENOENT));
                    let e = ctx.failure(&b, &fs[0]);
                    assert_eq!(e.object(), "set nope");
                    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
                }
                other => panic!("expected a failure, got {other:?}"),
            }
            // all or nothing: the first element was not added either
            assert_eq!(ctx.read_set(t.set("s")).unwrap(), Some(vec![]));
            assert_eq!(ctx.read_set(t.set("nope")).unwrap(), None);
            assert_eq!(ctx.get_elem(t.set("s"), &[198, 18, 0, 1]).unwrap(), None);
        });
    }

    #[test]
    fn a_lookup_of_several_keys_answers_up_to_the_first_absent_one() {
        in_new_netns("a_lookup_of_several_keys_answers_up_to_the_first_absent_one", || {
            let t = test_table();
            let mut session = crate::Session::open().unwrap();
            let mut ctx = session.ctx("test");
            ctx.ensure_table(&t, |b| with_set(&t, b)).unwrap();
            let k = |i: u8| vec![198, 18, 0, i];
            let mut b = Batch::new();
            let elems: Vec<Elem> = (1..=3).map(|i| Elem::new(k(i), Some(&format!("c{i}")))).collect();
            b.push(objects::add_elems(t.set("s"), &elems, true), "e".into());
            assert!(matches!(ctx.commit(&b, "add").unwrap(), Commit::Done));
            // One GETSETELEM (no dump): the kernel answers 1 and 2, then ENOENT for 4, and never gets to 3.
            let (found, complete) = ctx.get_run(t.set("s"), &[k(1), k(2), k(4), k(3)]).unwrap();
            assert_eq!(found, elems[..2]);
            assert!(!complete);
            let (found, complete) = ctx.get_run(t.set("s"), &[k(3), k(1)]).unwrap();
            assert_eq!((found.len(), complete), (2, true));
            let all = ctx.get_elems(t.set("s"), &[k(4), k(3), k(9), k(1)]).unwrap();
            assert_eq!(all, [None, Some(elems[2].clone()), None, Some(elems[0].clone())]);
            assert_eq!(ctx.get_elems(t.set("nope"), &[k(1)]).unwrap(), [None]);
            assert_eq!(session.dumps_sent(), 0);
        });
    }

    #[test]
    fn emptiness_is_known_for_full_empty_and_absent_sets() {
        in_new_netns("emptiness_is_known_for_full_empty_and_absent_sets", || {
            let t = test_table();
            let mut session = crate::Session::open().unwrap();
            let mut ctx = session.ctx("test");
            ctx.ensure_table(&t, |b| with_set(&t, b)).unwrap();
            assert_eq!(ctx.set_is_empty(t.set("s")).unwrap(), Some(true));
            assert_eq!(ctx.set_is_empty(t.set("nope")).unwrap(), None);
            let mut b = Batch::new();
            b.push(objects::add_elems(t.set("s"), &[Elem::new(vec![198, 18, 0, 1], None)], true), "e".into());
            assert!(matches!(ctx.commit(&b, "add").unwrap(), Commit::Done));
            assert_eq!(ctx.set_is_empty(t.set("s")).unwrap(), Some(false));
            assert!(ctx.has_set(t.set("s")).unwrap());
            assert!(!ctx.has_set(t.set("nope")).unwrap());
            // The kernel's count (when it reports one) is what is read: no dump then.
            let counts = ctx.reports_set_counts().unwrap();
            assert_eq!(session.dumps_sent(), if counts { 0 } else { 2 });
        });
    }
}
