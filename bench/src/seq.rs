//! Sequential ADD and DEL: one container at a time, tether / reference / floor alternating.

use crate::cni::{self, Kind, Side};
use crate::lane::{self, Ctx, Lane};
use crate::metrics::{Metrics, Series, Val};
use crate::opts::Opts;
use crate::signals::stopped;
use serde_json::Value;

/// Measure ADD and DEL of `kind` (and, for ptp, their peak RSS).
pub fn run(ctx: &Ctx, opts: &Opts, kind: Kind, m: &mut Metrics) {
    let key = kind.key();
    let (iterations, warmup) = match kind {
        Kind::Dual => (opts.dual_iterations, opts.slow_warmup),
        _ => (opts.iterations, opts.warmup),
    };
    let mut sides = vec![Side::Tether, Side::Reference];
    if kind != Kind::PtpMasq {
        sides.push(Side::Floor);
    }
    eprintln!("== {}: {iterations} iterations (+{warmup} warm-up), sides: {sides:?}", kind.label());

    let mut lanes = Vec::new();
    for side in sides {
        match prepare(ctx, kind, side) {
            Ok(lane) => lanes.push(lane),
            Err(e) => {
                eprintln!("   {side:?}: {e}");
                for op in ["ADD", "DEL"] {
                    m.set(&format!("{key}/{op}"), side, Val::Error(e.clone()));
                }
            }
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));

    let mut add = vec![Series::default(); lanes.len()];
    let mut del = vec![Series::default(); lanes.len()];
    for i in 0..warmup + iterations {
        if stopped() {
            break;
        }
        let order = lane::order(lanes.len(), i);
        let mut prev: Vec<Option<Value>> = vec![None; lanes.len()];
        let id = |lane: &Lane| cni::container_id(key, lane.side, i, 0);
        for &l in &order {
            let lane = &lanes[l];
            if add[l].error.is_some() {
                continue;
            }
            let attempt = if lane.side == Side::Floor { lane.floor_add(kind) } else { lane.add(&id(lane), false) };
            let checked = attempt.and_then(|a| {
                if i == 0 {
                    lane.verify_attached(0, &cni::result_ips(&a.result))?;
                }
                Ok(a)
            });
            match checked {
                Ok(a) => {
                    if i >= warmup {
                        add[l].push(a.elapsed, a.cpu);
                    }
                    prev[l] = Some(a.result);
                }
                Err(e) => fail(lane, &mut add[l], &mut del[l], format!("ADD: {e}")),
            }
        }
        for &l in &order {
            let lane = &lanes[l];
            let Some(result) = prev[l].take() else { continue };
            let attempt = if lane.side == Side::Floor { lane.floor_del() } else { lane.del(&id(lane), &result, false) };
            let checked = attempt.and_then(|a| {
                if i == 0 {
                    lane.verify_detached(0)?;
                }
                Ok(a)
            });
            match checked {
                Ok(a) if i >= warmup => del[l].push(a.elapsed, a.cpu),
                Ok(_) => {}
                Err(e) => {
                    del[l].error = Some(format!("DEL: {e}"));
                    add[l].error.get_or_insert_with(|| "stopped: its DEL failed".into());
                    lane.scrub();
                }
            }
        }
    }

    if kind == Kind::Ptp {
        rss(opts, key, &lanes, &add, m);
    }
    for (l, lane) in lanes.iter().enumerate() {
        let (a, d) = (std::mem::take(&mut add[l]), std::mem::take(&mut del[l]));
        report_progress(kind.label(), lane.side, &a, &d);
        a.store(m, &format!("{key}/ADD"), lane.side);
        d.store(m, &format!("{key}/DEL"), lane.side);
    }
}

fn prepare(ctx: &Ctx, kind: Kind, side: Side) -> Result<Lane, String> {
    let mut lane = Lane::new(ctx, kind.key(), side, 1)?;
    match side {
        Side::Floor => {
            if kind == Kind::Bridge {
                lane.setup_node(&lane::floor_bridge_setup())?;
            }
        }
        Side::Tether => lane.program = ctx.tether_dir.join("tether"),
        Side::Reference => lane.program = ctx.ref_dir.join(kind.reference_type()),
    }
    lane.conf = cni::netconf(side, kind, &lane.ipam_dir());
    Ok(lane)
}

/// A side failed: remember why (the column shows n/a), stop it, clean its container namespace.
fn fail(lane: &Lane, add: &mut Series, del: &mut Series, why: String) {
    eprintln!("   {:?}: {why}", lane.side);
    add.error = Some(why);
    del.error.get_or_insert_with(|| "not measured: ADD failed".into());
    lane.scrub();
}

/// Peak RSS of one ADD and one DEL under /usr/bin/time (untimed, after the timed runs).
fn rss(opts: &Opts, key: &str, lanes: &[Lane], add: &[Series], m: &mut Metrics) {
    let mut peaks = vec![(Vec::new(), Vec::new(), None::<String>); lanes.len()];
    for i in 0..opts.rss_runs {
        for l in lane::order(lanes.len(), i) {
            let lane = &lanes[l];
            if lane.side == Side::Floor || add[l].error.is_some() || peaks[l].2.is_some() {
                continue;
            }
            let id = cni::container_id(&format!("{key}-rss"), lane.side, i, 0);
            let run = lane.add(&id, true).and_then(|a| Ok((a.rss_kib, lane.del(&id, &a.result, true)?.rss_kib)));
            match run {
                Ok((Some(a), Some(d))) => {
                    peaks[l].0.push(a as f64 * 1024.0 / 1e6);
                    peaks[l].1.push(d as f64 * 1024.0 / 1e6);
                }
                Ok(_) => peaks[l].2 = Some("/usr/bin/time reported nothing".into()),
                Err(e) => {
                    peaks[l].2 = Some(e);
                    lane.scrub();
                }
            }
        }
    }
    for (l, (lane, (a, d, err))) in lanes.iter().zip(peaks).enumerate() {
        if lane.side == Side::Floor {
            continue;
        }
        let why = add[l].error.clone().or(err);
        for (op, samples) in [("ADD", a), ("DEL", d)] {
            let val = match &why {
                Some(e) => Val::Error(e.clone()),
                None if samples.is_empty() => Val::Error("not run".into()),
                None => Val::Samples(samples),
            };
            m.set(&format!("{key}/{op}/rss"), lane.side, val);
        }
    }
}

pub fn report_progress(label: &str, side: Side, add: &Series, del: &Series) {
    let show = |s: &Series| match (&s.error, crate::stats::summarize(&s.ms)) {
        (Some(e), _) => format!("n/a ({e})"),
        (None, Some(sum)) => format!("median {:.2} ms, p95 {:.2} ms", sum.median, sum.p95),
        (None, None) => "not run".into(),
    };
    eprintln!("   {label} {side:?}: ADD {}; DEL {}", show(add), show(del));
}
