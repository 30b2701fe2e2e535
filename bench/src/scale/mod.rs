//! Node scale: B live attachments on one node namespace (made by the plugin set under test), then
//! ADD / CHECK / DEL of one more container, N cycles, at each B; tether, the reference and the
//! `ip -batch` floor interleaved, ptp and bridge, IPv4, ipMasq on. Also the time to bring up and to
//! drain the largest B, one container at a time and `--scale-parallel` at once.
//!
//! Everything lives in an [`NsBox`] (a private mount namespace of this process): the namespaces
//! cost a `unshare` each, no process, and go with the process however it ends. Each side runs in a
//! view of it with a procfs of its own (`NsBox::view`), so the sides share no `/proc` dentries.

pub mod report;
mod side;

use crate::cni::{Kind, Side};
use crate::lane::{self, Ctx};
use crate::metrics::{Metrics, Series, Val};
use crate::nsbox::NsBox;
use crate::opts::Opts;
use crate::signals::stopped;
use side::{Attached, NodeSide};
use std::path::Path;
use std::time::{Duration, Instant};

/// The configurations measured (both with ipMasq on).
pub const KINDS: [Kind; 2] = [Kind::Ptp, Kind::Bridge];

/// Container-ID rounds: the background is round 0, cycles start at 1, the parallel bring-up is apart.
const PARALLEL_ROUND: usize = 1 << 30;

/// The floor's cost of any process: spawn to exit through the same driver.
pub const BARE: &str = crate::ipam::BARE;

/// `scale/<kind>/<B>/<what>`: ADD, CHECK, DEL (floor: the node end), DELctr (floor: the container end), true.
pub fn key(kind: Kind, b: usize, what: &str) -> String {
    format!("scale/{}/{b}/{what}", kind.key())
}

/// `scale/<kind>/<what>`: up-seq, down-seq, up-par, down-par (one number each, ms).
pub fn total_key(kind: Kind, what: &str) -> String {
    format!("scale/{}/{what}", kind.key())
}

/// The B values, ascending, without repeats.
pub fn sizes(opts: &Opts) -> Vec<usize> {
    let mut sizes = opts.scale_sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

pub fn run(ctx: &Ctx, opts: &Opts, m: &mut Metrics) {
    for kind in KINDS {
        if !stopped() && opts.scale_kinds.iter().any(|k| k == kind.key()) {
            run_kind(ctx, opts, kind, m);
        }
    }
}

fn run_kind(ctx: &Ctx, opts: &Opts, kind: Kind, m: &mut Metrics) {
    let sizes = sizes(opts);
    let Some(&b_max) = sizes.last() else { return };
    let warmup = opts.slow_warmup;
    eprintln!(
        "== node scale, {} + ipMasq: B = {sizes:?}, {} cycles (+{warmup} warm-up), bring-up/drain of {b_max} ({} in parallel)",
        kind.reference_type(),
        opts.scale_cycles,
        opts.scale_parallel
    );
    let started = Instant::now();
    let nsbox = match NsBox::new(&format!("{}-s{}", ctx.tag, &kind.key()[..1])) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("   {e}");
            for side in [Side::Tether, Side::Reference, Side::Floor] {
                m.set(&key(kind, 0, "ADD"), side, Val::Error(e.clone()));
            }
            return;
        }
    };
    let mut sides = Vec::new();
    let wanted = |side: Side| opts.scale_sides.iter().any(|s| s == side.key());
    for side in [Side::Tether, Side::Reference, Side::Floor].into_iter().filter(|s| wanted(*s)) {
        match NodeSide::new(ctx, &nsbox, kind, side, b_max + 1) {
            Ok(s) => sides.push(s),
            Err(e) => {
                eprintln!("   {side:?}: {e}");
                m.set(&key(kind, 0, "ADD"), side, Val::Error(e));
            }
        }
    }
    eprintln!("   {} namespaces made in {:.1} s", sides.len() * (b_max + 2), started.elapsed().as_secs_f64());

    let mut up = vec![Duration::ZERO; sides.len()];
    for (level, &b) in sizes.iter().enumerate() {
        if stopped() {
            break;
        }
        let t = Instant::now();
        grow(&mut sides, b, &mut up);
        verify_count(&mut sides);
        eprintln!("   B = {b}: reached in {:.1} s", t.elapsed().as_secs_f64());
        cycles(&mut sides, opts, kind, b, 1 + level * 100_000, m);
    }
    if b_max > 0 {
        store_totals(&sides, m, &total_key(kind, "up-seq"), &up);
        let down = drain(&mut sides);
        store_totals(&sides, m, &total_key(kind, "down-seq"), &down);
        verify_count(&mut sides);
        if opts.scale_parallel > 0 {
            parallel(&mut sides, opts.scale_parallel, b_max, kind, m);
        }
    }
    let t = Instant::now();
    drop(sides);
    drop(nsbox);
    eprintln!(
        "   {} done in {:.0} s (teardown {:.1} s)",
        kind.reference_type(),
        started.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
}

fn fail(side: &mut NodeSide, why: String) {
    eprintln!("   {:?}: {why}", side.side);
    side.error.get_or_insert(why);
}

/// Attach containers `live.len()..b` on every side, container by container, the sides interleaved;
/// `up` gets each side's ADD times (spawn to exit) added.
fn grow(sides: &mut [NodeSide], b: usize, up: &mut [Duration]) {
    let n = sides.len();
    for k in 0..b {
        if stopped() {
            return;
        }
        for l in lane::order(n, k) {
            let s = &mut sides[l];
            if s.error.is_some() || s.live.len() > k {
                continue;
            }
            match s.attach(k, 0) {
                Ok((a, att)) => {
                    up[l] += a.elapsed;
                    s.live.push(att);
                }
                Err(e) => fail(s, format!("bringing up container {k} of {b}: {e}")),
            }
        }
    }
}

/// Untimed: every live side's node namespace has exactly one node end per live attachment.
fn verify_count(sides: &mut [NodeSide]) {
    if stopped() {
        // The stop killed the counting `ip`, too: that is no finding about the side.
        return;
    }
    for s in sides.iter_mut().filter(|s| s.error.is_none()) {
        let expected = s.live.len();
        match s.node_veths() {
            Ok(n) if n == expected => {}
            Ok(n) => fail(s, format!("{n} veths in the node namespace, expected {expected}")),
            Err(e) => fail(s, format!("counting the node's veths: {e}")),
        }
    }
}

/// The measured cycles at B: ADD, CHECK and DEL of the cycle container on every side (the floor:
/// ADD and DEL of the node end, then ADD and DEL of the container end), and `/bin/true`.
fn cycles(sides: &mut [NodeSide], opts: &Opts, kind: Kind, b: usize, round0: usize, m: &mut Metrics) {
    let n = sides.len();
    let warmup = opts.slow_warmup;
    let (mut add, mut check, mut del) =
        (vec![Series::default(); n], vec![Series::default(); n], vec![Series::default(); n]);
    let (mut del_ctr, mut bare) = (Series::default(), Series::default());
    for i in 0..warmup + opts.scale_cycles {
        if stopped() {
            break;
        }
        let measured = i >= warmup;
        let order = lane::order(n, i);
        let mut attached: Vec<Option<Attached>> = vec![None; n];
        for &l in &order {
            let s = &mut sides[l];
            if s.error.is_some() {
                continue;
            }
            let ctr = s.cycle_ctr();
            let done = s.attach(ctr, round0 + i).and_then(|(a, att)| {
                if i == 0 {
                    s.verify_attached(ctr, &att.result)?;
                }
                Ok((a, att))
            });
            match done {
                Ok((a, att)) => {
                    if measured {
                        add[l].push(a.elapsed, a.cpu);
                    }
                    attached[l] = Some(att);
                }
                Err(e) => fail(s, format!("B = {b}: ADD: {e}")),
            }
        }
        for &l in &order {
            let s = &mut sides[l];
            let Some(att) = attached[l].as_ref().filter(|_| s.side != Side::Floor) else { continue };
            match s.check(att) {
                Ok(a) if measured => check[l].push(a.elapsed, a.cpu),
                Ok(_) => {}
                Err(e) => fail(s, format!("B = {b}: CHECK: {e}")),
            }
        }
        for &l in &order {
            let s = &mut sides[l];
            let Some(att) = attached[l].take() else { continue };
            match s.detach(&att).and_then(|a| if i == 0 { s.verify_detached(att.ctr).map(|_| a) } else { Ok(a) }) {
                Ok(a) if measured => del[l].push(a.elapsed, a.cpu),
                Ok(_) => {}
                Err(e) => fail(s, format!("B = {b}: DEL: {e}")),
            }
        }
        if let Some(floor) = sides.iter_mut().find(|s| s.side == Side::Floor && s.error.is_none()) {
            let ctr = floor.cycle_ctr();
            let done = floor.attach(ctr, round0 + i).and_then(|(_, att)| floor.detach_from_container(&att));
            match done {
                Ok(a) if measured => del_ctr.push(a.elapsed, a.cpu),
                Ok(_) => {}
                Err(e) => fail(floor, format!("B = {b}: DEL from the container: {e}")),
            }
            match floor.bare(Path::new(BARE)) {
                Ok(a) if measured => bare.push(a.elapsed, a.cpu),
                Ok(_) => {}
                Err(e) => bare.error = Some(format!("{BARE}: {e}")),
            }
        }
    }
    for (l, s) in sides.iter().enumerate() {
        let series = [("ADD", &mut add[l]), ("CHECK", &mut check[l]), ("DEL", &mut del[l])];
        for (what, series) in series {
            if what == "CHECK" && s.side == Side::Floor {
                continue;
            }
            let mut series = std::mem::take(series);
            if let Some(e) = &s.error {
                series.error.get_or_insert_with(|| e.clone());
            }
            series.store(m, &key(kind, b, what), s.side);
        }
    }
    del_ctr.store(m, &key(kind, b, "DELctr"), Side::Floor);
    bare.store(m, &key(kind, b, "true"), Side::Floor);
    let median = |k: &str, side| match m.get(k, side) {
        Some(Val::Samples(s)) => crate::stats::summarize(s).map(|s| format!("{:.2}", s.median)),
        _ => None,
    };
    for s in sides.iter() {
        let show: Vec<String> = ["ADD", "CHECK", "DEL"]
            .iter()
            .filter_map(|w| median(&key(kind, b, w), s.side).map(|v| format!("{w} {v}")))
            .collect();
        eprintln!("   B = {b} {:?}: {} ms", s.side, show.join(", "));
    }
}

/// Delete every live attachment of the plugin sides, one at a time, last first, interleaved;
/// returns each side's DEL times (spawn to exit) summed. The floor keeps its attachments.
fn drain(sides: &mut [NodeSide]) -> Vec<Duration> {
    let n = sides.len();
    let mut down = vec![Duration::ZERO; n];
    let most = sides.iter().map(|s| s.live.len()).max().unwrap_or(0);
    for k in 0..most {
        if stopped() {
            break;
        }
        for l in lane::order(n, k) {
            let s = &mut sides[l];
            if s.side == Side::Floor || s.error.is_some() {
                continue;
            }
            let Some(att) = s.live.pop() else { continue };
            match s.detach(&att) {
                Ok(a) => down[l] += a.elapsed,
                Err(e) => fail(s, format!("draining container {}: {e}", att.ctr)),
            }
        }
    }
    down
}

fn store_totals(sides: &[NodeSide], m: &mut Metrics, key: &str, totals: &[Duration]) {
    for (s, total) in sides.iter().zip(totals) {
        let val = match &s.error {
            Some(e) => Val::Error(e.clone()),
            None if stopped() => Val::Error("not run: interrupted".into()),
            None => Val::One(total.as_secs_f64() * 1e3),
        };
        if s.side != Side::Floor || key.ends_with("up-seq") {
            m.set(key, s.side, val);
        }
    }
}

/// Bring up `b` containers `width` at a time on each plugin side, then drain them the same way.
fn parallel(sides: &mut [NodeSide], width: usize, b: usize, kind: Kind, m: &mut Metrics) {
    let n = sides.len();
    for pass in ["up-par", "down-par"] {
        for l in lane::order(n, usize::from(pass == "down-par")) {
            let s = &mut sides[l];
            if s.side == Side::Floor || stopped() {
                continue;
            }
            if let Some(e) = &s.error {
                m.set(&total_key(kind, pass), s.side, Val::Error(e.clone()));
                continue;
            }
            let jobs: Vec<(usize, String, Option<serde_json::Value>)> = if pass == "up-par" {
                (0..b).map(|k| (k, s.container_id(k, PARALLEL_ROUND), None)).collect()
            } else {
                s.live.drain(..).map(|a| (a.ctr, a.id, Some(a.result))).collect()
            };
            let outcome = s.pool(&jobs, width).and_then(|(answers, wall)| {
                let mut failures = Vec::new();
                for ((ctr, id, _), answer) in jobs.iter().zip(answers) {
                    match answer {
                        Ok(result) if pass == "up-par" => s.live.push(Attached { ctr: *ctr, id: id.clone(), result }),
                        Ok(_) => {}
                        Err(e) => failures.push(e),
                    }
                }
                match failures.first() {
                    Some(first) => Err(format!("{pass}: {} of {b} failed, first: {first}", failures.len())),
                    None => Ok(wall),
                }
            });
            match outcome {
                Ok(wall) => {
                    eprintln!("   {pass} {:?}: {b} in {:.2} s", s.side, wall.as_secs_f64());
                    m.set(&total_key(kind, pass), s.side, Val::One(wall.as_secs_f64() * 1e3));
                }
                Err(e) => {
                    m.set(&total_key(kind, pass), s.side, Val::Error(e.clone()));
                    fail(s, e);
                }
            }
        }
        verify_count(sides);
    }
}
