//! N containers added at once, then deleted at once: wall time, and no address handed out twice.

use crate::cni::{self, Kind, Side};
use crate::lane::{self, Ctx, Lane};
use crate::metrics::{Metrics, Series, Val};
use crate::opts::Opts;
use crate::signals::stopped;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

/// Metric key of the parallel scenario for `kind`.
pub fn key(kind: Kind) -> String {
    format!("par-{}", kind.key())
}

pub fn run(ctx: &Ctx, opts: &Opts, kind: Kind, m: &mut Metrics) {
    let key = key(kind);
    let n = opts.parallel;
    eprintln!("== {n} parallel {}: {} rounds (+{} warm-up)", kind.label(), opts.rounds, opts.par_warmup);
    let mut lanes = Vec::new();
    for side in [Side::Tether, Side::Reference] {
        let lane = Lane::new(ctx, &key, side, n).map(|mut lane| {
            lane.program = match side {
                Side::Tether => ctx.tether_dir.join("tether"),
                _ => ctx.ref_dir.join(kind.reference_type()),
            };
            lane.conf = cni::netconf(side, kind, &lane.ipam_dir());
            lane
        });
        match lane {
            Ok(lane) => lanes.push(lane),
            Err(e) => {
                for op in ["ADD", "DEL", "distinct"] {
                    m.set(&format!("{key}/{op}"), side, Val::Error(e.clone()));
                }
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));

    let mut add = vec![Series::default(); lanes.len()];
    let mut del = vec![Series::default(); lanes.len()];
    let mut distinct: Vec<Result<usize, String>> = vec![Ok(0); lanes.len()];
    for round in 0..opts.par_warmup + opts.rounds {
        if stopped() {
            break;
        }
        let order = lane::order(lanes.len(), round);
        // Per side: (container namespace, container ID, ADD result) of every successful ADD.
        let mut added: Vec<Vec<(usize, String, Option<Value>)>> = vec![Vec::new(); lanes.len()];
        for &l in &order {
            let lane = &lanes[l];
            if add[l].error.is_some() {
                continue;
            }
            let jobs: Vec<_> = (0..n).map(|k| (k, cni::container_id(&key, lane.side, round, k), None)).collect();
            let (answers, wall) = lane.batch(&jobs);
            let mut failures = Vec::new();
            let mut cpu = Duration::ZERO;
            for ((k, id, _), answer) in jobs.into_iter().zip(answers) {
                match answer {
                    Ok(a) => {
                        cpu += a.cpu;
                        added[l].push((k, id, Some(a.result)));
                    }
                    Err(e) => failures.push(e),
                }
            }
            if let Some(first) = failures.first() {
                let why = format!("ADD: {} of {n} failed, first: {first}", failures.len());
                eprintln!("   {:?}: {why}", lane.side);
                add[l].error = Some(why);
                del[l].error.get_or_insert_with(|| "not measured: ADD failed".into());
                continue;
            }
            if round >= opts.par_warmup {
                add[l].push(wall, cpu);
            }
            if let Ok(rounds) = &mut distinct[l] {
                match duplicates(added[l].iter().filter_map(|(_, _, r)| r.as_ref())) {
                    None => *rounds += 1,
                    Some(dup) => distinct[l] = Err(format!("round {round}: {dup}")),
                }
            }
        }
        for &l in &order {
            let lane = &lanes[l];
            if added[l].is_empty() {
                continue;
            }
            let (answers, wall) = lane.batch(&std::mem::take(&mut added[l]));
            let failures: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
            if del[l].error.is_some() {
                // Cleanup after a failed ADD batch: not measured.
                lane.scrub();
            } else if let Some(first) = failures.first() {
                let why = format!("DEL: {} of {n} failed, first: {first}", failures.len());
                eprintln!("   {:?}: {why}", lane.side);
                del[l].error = Some(why);
                add[l].error.get_or_insert_with(|| "stopped: its DEL failed".into());
                lane.scrub();
            } else if round >= opts.par_warmup {
                del[l].push(wall, answers.iter().flatten().map(|a| a.cpu).sum());
            }
        }
    }

    for (l, lane) in lanes.iter().enumerate() {
        let check = match (&add[l].error, &distinct[l]) {
            (Some(e), _) => Val::Error(e.clone()),
            (None, Ok(rounds)) => Val::Check { ok: true, text: format!("{n}/{n} distinct in each of {rounds} rounds") },
            (None, Err(e)) => Val::Check { ok: false, text: format!("DUPLICATE {e}") },
        };
        m.set(&format!("{key}/distinct"), lane.side, check);
        let (a, d) = (std::mem::take(&mut add[l]), std::mem::take(&mut del[l]));
        crate::seq::report_progress(&format!("{n}× {}", kind.label()), lane.side, &a, &d);
        a.store(m, &format!("{key}/ADD"), lane.side);
        d.store(m, &format!("{key}/DEL"), lane.side);
    }
}

/// The first address found in more than one result, if any.
fn duplicates<'a>(results: impl Iterator<Item = &'a Value>) -> Option<String> {
    let mut seen = HashSet::new();
    for ip in results.flat_map(cni::result_ips) {
        if !seen.insert(ip) {
            return Some(format!("{ip} handed out twice"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_addresses_are_found() {
        let a = json!({"ips":[{"address":"198.18.0.2/16"}]});
        let b = json!({"ips":[{"address":"198.18.0.3/16"}]});
        assert_eq!(duplicates([&a, &b].into_iter()), None);
        assert_eq!(duplicates([&a, &b, &a].into_iter()), Some("198.18.0.2 handed out twice".into()));
    }
}
