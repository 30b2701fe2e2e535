//! The kubelet's view: CRI RunPodSandbox, and StopPodSandbox + RemovePodSandbox, against containerd
//! 1.6 with tether (ptp, tether-ipam) and with the reference ptp + host-local, dual stack and IPv4
//! only, both sides' containerds running at once and called alternately. Reuses the runtime tests'
//! containerd fixture and CRI client (tests/runtimes): containerd in a private node box, in a
//! node namespace of its own, removed at the end.

use crate::cni::Side;
use crate::lane::Ctx;
use crate::metrics::{Metrics, Series, Val};
use crate::opts::Opts;
use crate::signals::stopped;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};
use tether_runtime_tests::containerd::{CniSetup, Containerd};
use tether_runtime_tests::networks::Variant;
use tether_tests::Family;

/// Metric keys of one family: `cri/<family>/RunPodSandbox`, `cri/<family>/StopRemove`.
pub fn key(family: &str, what: &str) -> String {
    format!("cri/{family}/{what}")
}

/// The families measured, with their key names.
pub const FAMILIES: [(&str, Family); 2] = [("dual", Family::Dual), ("v4", Family::V4)];

/// The text of a caught panic (the fixtures panic with the full context).
fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// containerd for one side, or why it did not start.
fn start(ctx: &Ctx, side: Side, family: Family) -> Result<Containerd, String> {
    let variant = if side == Side::Tether { Variant::TetherPtp } else { Variant::ReferencePtp };
    let tether_dir = ctx.tether_dir.clone();
    catch_unwind(AssertUnwindSafe(|| {
        Containerd::start(&format!("bench-{}", side.letter()), |data| CniSetup {
            conflists: vec![variant.conflist("bench", 60, family, data)],
            tether_dir: Some(tether_dir),
            ..CniSetup::default()
        })
    }))
    .map_err(|e| format!("containerd did not start: {}", panic_text(e)))
}

/// One pod's life on `c`: (RunPodSandbox, Stop + Remove) wall times.
fn one_pod(c: &Containerd, name: &str) -> Result<(Duration, Duration), String> {
    let config = c.pod_config(name, &format!("uid-{name}"));
    let t0 = Instant::now();
    let id = c.cri.run_pod(&config).map_err(|e| e.to_string())?;
    let run = t0.elapsed();
    let t1 = Instant::now();
    c.cri.stop_pod(&id).map_err(|e| e.to_string())?;
    c.cri.remove_pod(&id).map_err(|e| e.to_string())?;
    Ok((run, t1.elapsed()))
}

/// Measure both families.
pub fn run(ctx: &Ctx, opts: &Opts, m: &mut Metrics) {
    for (name, family) in FAMILIES {
        if stopped() {
            return;
        }
        eprintln!(
            "== CRI pods ({name}): {} iterations (+{} warm-up), tether and reference",
            opts.cri_iterations, opts.slow_warmup
        );
        let mut lanes = Vec::new();
        for side in [Side::Tether, Side::Reference] {
            match start(ctx, side, family) {
                Ok(c) => lanes.push((side, c, Series::default(), Series::default())),
                Err(e) => {
                    eprintln!("   {side:?}: {e}");
                    for what in ["RunPodSandbox", "StopRemove"] {
                        m.set(&key(name, what), side, Val::Error(e.clone()));
                    }
                }
            }
        }
        for i in 0..opts.slow_warmup + opts.cri_iterations {
            if stopped() {
                break;
            }
            // Alternate which side goes first, as the other scenarios do.
            let n = lanes.len();
            for k in 0..n {
                let (_, c, run, stop) = &mut lanes[(i + k) % n];
                if run.error.is_some() {
                    continue;
                }
                match one_pod(c, &format!("b{i}")) {
                    Ok((r, s)) if i >= opts.slow_warmup => {
                        run.push(r, Duration::ZERO);
                        stop.push(s, Duration::ZERO);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        run.error = Some(e.clone());
                        stop.error = Some(e);
                    }
                }
            }
        }
        for (side, c, run, stop) in lanes {
            store(run, m, &key(name, "RunPodSandbox"), side);
            store(stop, m, &key(name, "StopRemove"), side);
            drop(c);
        }
    }
}

/// Record a series without CPU figures (the work is containerd's, not a child of ours).
fn store(series: Series, m: &mut Metrics, key: &str, side: Side) {
    Series { cpu_ms: Vec::new(), ..series }.store(m, key, side);
}
