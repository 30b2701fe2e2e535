//! CHECK and DEL by key: what an attachment holds in a table, looked up through the owner maps
//! ([`crate::owners`]), and its removal.

use crate::grace::wait_for_grace_period;
use crate::netlink::{Batch, Commit};
use crate::objects::{self, Elem, SetRef, Table};
use crate::owners::{shrink, slot_key, OwnerMap, MAX_SLOTS};
use crate::state::{backoff, push_elems, Companion, Ctx, KEYS_PER_GET, MAX_ATTEMPTS};
use crate::NftError;

/// What an attachment holds in a table, found by key.
#[derive(Debug)]
pub(crate) struct Holdings {
    /// Per owner map: its name and the run of the owner's digest as read (other owners' entries too).
    pub(crate) runs: Vec<(&'static str, Vec<Elem>)>,
    /// The owner's elements in the looked-up sets: (set, element as read).
    pub(crate) elems: Vec<(&'static str, Elem)>,
}

impl Holdings {
    /// Whether the runs hold entries of owners other than `owner` (digests that collide).
    fn shared_with_others(&self, owner: &str) -> bool {
        self.runs.iter().flat_map(|(_, run)| run).any(|e| e.comment.as_deref() != Some(owner))
    }
}

/// The outcome of looking an attachment up by key.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(Holdings),
    /// The table has no owner map: it was made by a release before them.
    Legacy,
    /// No table.
    NoTable,
}

impl Ctx<'_> {
    /// The entries at slots 0, 1, ... of `digest` in `map`, up to the first absent slot: one round trip per 32.
    pub(crate) fn owner_run(&mut self, map: SetRef<'_>, digest: u64) -> Result<Vec<Elem>, NftError> {
        self.owner_run_from(map, digest, 0)
    }

    /// The entries at slots `start`, `start + 1`, ... of `digest` in `map`, up to the first absent slot.
    fn owner_run_from(&mut self, map: SetRef<'_>, digest: u64, start: usize) -> Result<Vec<Elem>, NftError> {
        let mut run = Vec::new();
        while start + run.len() < MAX_SLOTS {
            let from = start + run.len();
            let keys: Vec<Vec<u8>> =
                (from..(from + KEYS_PER_GET).min(MAX_SLOTS)).map(|slot| slot_key(digest, slot)).collect();
            let (found, complete) = self.get_run(map, &keys)?;
            run.extend(found);
            if !complete {
                break;
            }
        }
        Ok(run)
    }

    /// What `owner` holds in `table`, as one state of the ruleset, and the generation of that state.
    ///
    /// The kernel answers element lookups without the commit lock (`NFT_MSG_GETSETELEM` is an RCU call in
    /// nfnetlink), so a commit landing during our lookups can show some keys before it and some after, or none of
    /// a key it moves (its deletion done, its re-addition not yet active): a run then looks cut short. A DEL that
    /// read such a run found none of its owner's entries and removed nothing (a colliding-digest run: 7 of 150 runs
    /// of `colliding_owners_coming_and_going_in_parallel_lose_nothing` on 6.18). Read between two equal
    /// generations, the lookup is of one state; a commit bound to that generation acts on exactly that state.
    pub(crate) fn holdings(
        &mut self,
        table: &Table,
        maps: &[OwnerMap],
        sets: &[&'static str],
        owner: &str,
    ) -> Result<(Lookup, u32), NftError> {
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt);
            let before = self.generation()?;
            let lookup = self.read_holdings(table, maps, sets, owner)?;
            if self.generation()? == before {
                return Ok((lookup, before));
            }
        }
        Err(NftError::gave_up(self.op, table.describe()))
    }

    /// The runs of `owner`'s digest in `maps`, and the elements their entries name whose comment is `owner`'s, as
    /// read (see [`Ctx::holdings`]). `sets` are the table's looked-up sets (to tell an old table from none).
    fn read_holdings(
        &mut self,
        table: &Table,
        maps: &[OwnerMap],
        sets: &[&'static str],
        owner: &str,
    ) -> Result<Lookup, NftError> {
        let digest = (self.digest)(owner);
        let ours = |e: &Elem| e.comment.as_deref() == Some(owner);
        let mut runs = Vec::new();
        let mut wanted: Vec<(&'static str, Vec<Vec<u8>>)> = Vec::new();
        for map in maps {
            let run = self.owner_run(table.set(map.name), digest)?;
            for data in run.iter().filter(|e| ours(e)).filter_map(|e| e.data.as_deref()) {
                for (set, key) in (map.targets)(data) {
                    match wanted.iter_mut().find(|(s, _)| *s == set) {
                        Some((_, keys)) if keys.contains(&key) => {}
                        Some((_, keys)) => keys.push(key),
                        None => wanted.push((set, vec![key])),
                    }
                }
            }
            runs.push((map.name, run));
        }
        if runs.iter().all(|(_, run)| run.is_empty()) && !self.has_set(table.set(maps[0].name))? {
            // A table made by a release before owner maps records nothing by key: its state is found by listing,
            // the old way, until the network's last DEL drops it and the next ADD makes it anew with the maps.
            return Ok(if self.has_set(table.set(sets[0]))? { Lookup::Legacy } else { Lookup::NoTable });
        }
        let mut elems = Vec::new();
        for (set, keys) in wanted {
            for e in self.get_elems(table.set(set), &keys)?.into_iter().flatten() {
                if ours(&e) {
                    elems.push((set, e));
                }
            }
        }
        Ok(Lookup::Found(Holdings { runs, elems }))
    }

    /// DEL: remove the elements of `sets` that `owner` holds and its entries in `maps`, found by key; then drop
    /// the table (and `companion`) if that left `sets` empty. A table without owner maps is handled by listing.
    /// Returns how many elements were removed.
    pub(crate) fn remove_attachment(
        &mut self,
        table: &Table,
        maps: &[OwnerMap],
        sets: &[&'static str],
        owner: &str,
        companion: Option<&Companion>,
    ) -> Result<usize, NftError> {
        let digest = (self.digest)(owner);
        let mut last: Option<NftError> = None;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt);
            let (lookup, read_at) = self.holdings(table, maps, sets, owner)?;
            let holdings = match lookup {
                Lookup::Found(h) => h,
                Lookup::Legacy => return self.remove_owner_by_listing(table, sets, owner, companion),
                Lookup::NoTable => return Ok(0),
            };
            if self.holds_everything(table, sets, owner, &holdings)? {
                // The network's last attachment: its elements go with the table, in one transaction bound to the
                // state they were read from. Two (the elements, then the emptied table) made the kernel's destroy
                // worker wait out two grace periods in a row, and the DEL with it.
                let mut batch = Batch::new().if_generation(read_at);
                self.push_drop(&mut batch, table, companion)?;
                match self.commit(&batch, &table.describe())? {
                    Commit::Done => {
                        wait_for_grace_period();
                        return Ok(holdings.elems.len());
                    }
                    Commit::Rejected { errno: libc::ERESTART, .. } => continue,
                    Commit::Failed(fs) => return Err(self.failure(&batch, &fs[0])),
                    Commit::Rejected { errno, detail } => {
                        return Err(NftError::errno(self.op, table.describe(), errno, detail))
                    }
                }
            }
            // Not bound to the generation (parallel DELs would restart each other), except when the owner's digest
            // is shared (the runs hold other owners' entries): then the runs must not change between our read and
            // our commit, since entries may move and a concurrent ADD of theirs appends after what we read.
            let shared = holdings.shared_with_others(owner);
            let mut batch = if shared { Batch::new().if_generation(read_at) } else { Batch::new() };
            for (map, run) in &holdings.runs {
                let change = shrink(run, |e| e.comment.as_deref() == Some(owner));
                push_elems(&mut batch, table.set(map), &change.del, objects::del_elems);
                push_elems(&mut batch, table.set(map), &change.add, |s, c| objects::add_elems(s, c, true));
            }
            for set in sets {
                let doomed: Vec<Elem> = holdings
                    .elems
                    .iter()
                    .filter(|(s, _)| s == set)
                    .map(|(_, e)| Elem { key: e.key.clone(), flags: e.flags, comment: None, data: None })
                    .collect();
                push_elems(&mut batch, table.set(set), &doomed, objects::del_elems);
            }
            if !batch.is_empty() {
                match self.commit(&batch, &table.describe())? {
                    Commit::Done => {
                        wait_for_grace_period();
                        if !shared {
                            self.close_stranded_runs(table, &holdings.runs, digest)?;
                        }
                    }
                    // The generation moved, or a concurrent call removed or moved an entry first: read again.
                    Commit::Rejected { errno: libc::ERESTART, .. } => continue,
                    Commit::Failed(fs) if fs.iter().all(|f| matches!(f.errno, libc::ENOENT | libc::EEXIST)) => {
                        last = Some(self.failure(&batch, &fs[0]));
                        continue;
                    }
                    Commit::Failed(fs) => return Err(self.failure(&batch, &fs[0])),
                    Commit::Rejected { errno, detail } => {
                        return Err(NftError::errno(self.op, table.describe(), errno, detail))
                    }
                }
            }
            self.drop_if_empty(table, sets, companion)?;
            return Ok(holdings.elems.len());
        }
        Err(last.unwrap_or_else(|| NftError::gave_up(self.op, table.describe())))
    }

    /// Whether `holdings` are every element of `sets`, by the counts the kernel reports (`NFTA_SET_COUNT`). False
    /// without asking when the owner maps name another owner (whose elements are there too), and when a set's count
    /// is not reported (6.1): [`Ctx::drop_if_empty`] decides after the removal there.
    fn holds_everything(
        &mut self,
        table: &Table,
        sets: &[&'static str],
        owner: &str,
        holdings: &Holdings,
    ) -> Result<bool, NftError> {
        if holdings.shared_with_others(owner) {
            return Ok(false);
        }
        for &set in sets {
            let ours = holdings.elems.iter().filter(|(s, _)| *s == set).count();
            match self.reported_count(table.set(set))? {
                Some(count) if count as usize == ours => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// After an unbound DEL emptied the runs of its digest (it found no other owner in them): an owner with the same
    /// digest may have appended after what we read, its ADD committing before our deletion, and would now sit
    /// behind a hole. One lookup of the slot after each run finds out; such entries move down (bound to the
    /// generation). Only digest collisions ever get past the lookup.
    fn close_stranded_runs(
        &mut self,
        table: &Table,
        runs: &[(&'static str, Vec<Elem>)],
        digest: u64,
    ) -> Result<(), NftError> {
        for (map, run) in runs.iter().filter(|(_, run)| !run.is_empty()) {
            let set = table.set(map);
            if self.get_run(set, &[slot_key(digest, run.len())])?.0.is_empty() {
                continue;
            }
            for attempt in 0..MAX_ATTEMPTS {
                backoff(attempt);
                let mut batch = Batch::new().if_generation(self.generation()?);
                let mut entries = self.owner_run(set, digest)?;
                entries.extend(self.owner_run_from(set, digest, entries.len().max(run.len()))?);
                let change = shrink(&entries, |_| false);
                if !change.moves() {
                    break;
                }
                push_elems(&mut batch, set, &change.del, objects::del_elems);
                push_elems(&mut batch, set, &change.add, |s, c| objects::add_elems(s, c, true));
                match self.commit(&batch, &set.describe())? {
                    Commit::Done => break,
                    Commit::Rejected { errno: libc::ERESTART, .. } => {}
                    Commit::Failed(fs) => return Err(self.failure(&batch, &fs[0])),
                    Commit::Rejected { errno, detail } => {
                        return Err(NftError::errno(self.op, set.describe(), errno, detail))
                    }
                }
            }
        }
        Ok(())
    }
}
