//! IPAM alone: tether-ipam against host-local, invoked directly as their plugin would invoke them,
//! on an empty store and on a store prefilled in host-local's format (identical for both, reset
//! between measurements so both always see the same state).

use crate::cni::{self, Kind, Side};
use crate::lane::{self, Ctx, Lane};
use crate::metrics::{Metrics, Series, Val};
use crate::opts::Opts;
use crate::signals::stopped;
use crate::store::Plan;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr};

/// Timed for calibration, interleaved with the empty-store IPAM runs: a C program that does nothing,
/// i.e. what spawning, loading and reaping any process costs on this machine.
pub const BARE: &str = "/bin/true";

/// Metric key for a store with `prefill` reservations.
pub fn key(prefill: usize) -> &'static str {
    if prefill == 0 {
        "ipam0"
    } else {
        "ipamfull"
    }
}

pub fn run(ctx: &Ctx, opts: &Opts, prefill: usize, m: &mut Metrics) {
    let key = key(prefill);
    let (iterations, warmup) =
        if prefill == 0 { (opts.iterations, opts.warmup) } else { (opts.ipam_iterations, opts.slow_warmup) };
    eprintln!("== IPAM, {prefill} reservations: {iterations} iterations (+{warmup} warm-up)");
    let plan = Plan::new(prefill);
    let mut lanes = Vec::new();
    for side in [Side::Tether, Side::Reference] {
        match prepare(ctx, key, side, &plan) {
            Ok(lane) => lanes.push(lane),
            Err(e) => {
                for op in ["ADD", "DEL", "rss"] {
                    m.set(&format!("{key}/{op}"), side, Val::Error(e.clone()));
                }
            }
        }
    }

    let mut add = vec![Series::default(); lanes.len()];
    let mut del = vec![Series::default(); lanes.len()];
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); lanes.len()];
    // The very first ADD: on the full store, tether-ipam builds its private index then.
    let mut first_add: Vec<Option<f64>> = vec![None; lanes.len()];
    // Calibration on the empty store: what spawning any process costs here, interleaved with the IPAMs.
    let mut bare = Series::default();
    let rss_start = warmup + iterations;
    for i in 0..rss_start + opts.rss_runs {
        if stopped() {
            break;
        }
        let measure_rss = i >= rss_start;
        if prefill == 0 && i >= warmup && !measure_rss {
            if let Some(lane) = lanes.first() {
                match lane.run_bare(std::path::Path::new(BARE)) {
                    Ok(a) => bare.push(a.elapsed, a.cpu),
                    Err(e) => bare.error = Some(format!("{BARE}: {e}")),
                }
            }
        }
        let order = lane::order(lanes.len(), i);
        let mut prev: Vec<Option<(Value, Vec<Ipv4Addr>)>> = vec![None; lanes.len()];
        let id = |lane: &Lane| cni::container_id(key, lane.side, i, 0);
        for &l in &order {
            let lane = &lanes[l];
            if add[l].error.is_some() {
                continue;
            }
            let checked = lane.add(&id(lane), measure_rss).and_then(|a| {
                let ips = check_add(lane, &plan, &a.result, i == 0)?;
                Ok((a, ips))
            });
            match checked {
                Ok((a, ips)) => {
                    if i == 0 {
                        first_add[l] = Some(a.elapsed.as_secs_f64() * 1e3);
                    }
                    if measure_rss {
                        rss[l].extend(a.rss_kib.map(|k| k as f64 * 1024.0 / 1e6));
                    } else if i >= warmup {
                        add[l].push(a.elapsed, a.cpu);
                    }
                    prev[l] = Some((a.result, ips));
                }
                Err(e) => {
                    eprintln!("   {:?}: ADD: {e}", lane.side);
                    add[l].error = Some(format!("ADD: {e}"));
                    del[l].error.get_or_insert_with(|| "not measured: ADD failed".into());
                }
            }
        }
        for &l in &order {
            let lane = &lanes[l];
            let Some((result, ips)) = prev[l].take() else { continue };
            let checked = lane.del(&id(lane), &result, measure_rss).and_then(|a| {
                if i == 0 {
                    if let Some(ip) = ips.iter().find(|ip| lane::store_dir(lane).join(ip.to_string()).exists()) {
                        return Err(format!("DEL left the reservation file of {ip}"));
                    }
                }
                Ok(a)
            });
            match checked {
                Ok(a) if measure_rss => rss[l].extend(a.rss_kib.map(|k| k as f64 * 1024.0 / 1e6)),
                Ok(a) if i >= warmup => del[l].push(a.elapsed, a.cpu),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("   {:?}: DEL: {e}", lane.side);
                    del[l].error = Some(format!("DEL: {e}"));
                    add[l].error.get_or_insert_with(|| "stopped: its DEL failed".into());
                }
            }
            // Untimed: the store back to the prefilled state (cursor and any leftover reservation).
            if let Err(e) = plan.reset(&lane::store_dir(lane), &ips) {
                add[l].error.get_or_insert_with(|| format!("resetting the store: {e}"));
            }
        }
    }

    for (l, lane) in lanes.iter().enumerate() {
        let (a, d) = (std::mem::take(&mut add[l]), std::mem::take(&mut del[l]));
        let peak = match (&a.error, std::mem::take(&mut rss[l])) {
            (Some(e), _) => Val::Error(e.clone()),
            (None, samples) if samples.is_empty() => Val::Error("not run".into()),
            (None, samples) => Val::Samples(samples),
        };
        m.set(&format!("{key}/rss"), lane.side, peak);
        if let (None, Some(ms)) = (&a.error, first_add[l]) {
            m.set(&format!("{key}/ADD/first"), lane.side, Val::Samples(vec![ms]));
        }
        crate::seq::report_progress(&format!("IPAM ({prefill} reserved)"), lane.side, &a, &d);
        a.store(m, &format!("{key}/ADD"), lane.side);
        d.store(m, &format!("{key}/DEL"), lane.side);
    }
    if prefill == 0 {
        bare.store(m, "spawn/bare", Side::Floor);
    }
    // Free the disk space now (the run directory goes at exit anyway).
    for lane in &lanes {
        let _ = std::fs::remove_dir_all(lane.ipam_dir());
    }
}

fn prepare(ctx: &Ctx, key: &str, side: Side, plan: &Plan) -> Result<Lane, String> {
    let mut lane = Lane::new(ctx, key, side, 1)?;
    lane.program = match side {
        Side::Tether => ctx.tether_dir.join("tether-ipam"),
        _ => ctx.ref_dir.join("host-local"),
    };
    // The IPAM gets its plugin's whole configuration, as delegation passes it on.
    lane.conf = cni::netconf(side, Kind::Ptp, &lane.ipam_dir());
    if plan.count > 0 {
        eprintln!("   prefilling {} reservations for {side:?}", plan.count);
    }
    let store = lane::store_dir(&lane);
    plan.write(&store).map_err(|e| format!("prefilling {}: {e}", store.display()))?;
    Ok(lane)
}

/// The ADD result is one IPv4 address that the prefill had not reserved; on the first run also check that
/// the reservation is in host-local's format (so both IPAMs really work on the same store).
fn check_add(lane: &Lane, plan: &Plan, result: &Value, first: bool) -> Result<Vec<Ipv4Addr>, String> {
    let ips: Vec<Ipv4Addr> = cni::result_ips(result)
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    let [ip] = ips[..] else {
        return Err(format!("expected one IPv4 address in the result, got {result}"));
    };
    if plan.is_reserved(ip) {
        return Err(format!("handed out {ip}, which the store already reserves"));
    }
    if first {
        let file = lane::store_dir(lane).join(ip.to_string());
        let content = std::fs::read_to_string(&file)
            .map_err(|e| format!("no reservation file {} in host-local's format: {e}", file.display()))?;
        if !content.trim().ends_with(&format!("\r\n{}", cni::IFNAME)) {
            return Err(format!("{} holds {content:?}, not \"<id>\\r\\n<ifname>\"", file.display()));
        }
    }
    Ok(ips)
}
