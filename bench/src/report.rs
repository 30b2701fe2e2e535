//! The Markdown report: machine, command, the side-by-side table with ratios and PASS/FAIL per target,
//! how it was measured, and every series in detail.

use crate::cni::{Kind, Side};
use crate::machine::Machine;
use crate::metrics::{Metrics, Val};
use crate::opts::Opts;
use crate::stats::summarize;
use crate::stats::thousands;
use crate::{cri, ipam, parallel};
use std::fmt::Write as _;

/// What else the report prints besides the metrics.
pub struct Info<'a> {
    pub machine: &'a Machine,
    pub command: String,
    pub tether: String,
    pub opts: &'a Opts,
    pub ref_dir: String,
    pub interrupted: bool,
    /// Load averages at the end of the run.
    pub load_end: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Ms,
    Mb,
}

/// Which number of a series a row shows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stat {
    /// Median (p95 shown alongside).
    Median,
    /// Largest sample (peak RSS).
    Peak,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// tether ≤ r × reference.
    Ratio(f64),
    /// tether median ≤ x ms.
    MaxMs(f64),
    /// tether peak < x MB.
    BelowMb(f64),
    /// tether median ≤ the `ip -batch` floor's median.
    Floor,
    /// tether's correctness check passed.
    Distinct,
}

struct Row {
    label: String,
    key: String,
    unit: Unit,
    stat: Stat,
    floor: bool,
    targets: Vec<Target>,
}

fn row(label: impl Into<String>, key: impl Into<String>, unit: Unit, stat: Stat, targets: &[Target]) -> Row {
    Row { label: label.into(), key: key.into(), unit, stat, floor: false, targets: targets.to_vec() }
}

fn rows(opts: &Opts) -> Vec<Row> {
    use Stat::*;
    use Target::*;
    use Unit::*;
    let n = opts.parallel;
    let full = ipam::key(opts.prefill.max(1));
    let floor = |mut r: Row| {
        r.floor = true;
        r
    };
    let par = |kind: Kind, what: &str| format!("{}/{what}", parallel::key(kind));
    vec![
        floor(row("ptp ADD", "ptp/ADD", Ms, Median, &[Ratio(0.5), Floor])),
        floor(row("ptp DEL", "ptp/DEL", Ms, Median, &[Ratio(1.0)])),
        row("ptp + ipMasq ADD", "masq/ADD", Ms, Median, &[Ratio(0.25)]),
        row("ptp + ipMasq DEL", "masq/DEL", Ms, Median, &[Ratio(0.3)]),
        floor(row("bridge ADD", "bridge/ADD", Ms, Median, &[Ratio(0.5)])),
        floor(row("bridge DEL", "bridge/DEL", Ms, Median, &[])),
        floor(row("dual stack ADD", "dual/ADD", Ms, Median, &[MaxMs(20.0)])),
        floor(row("dual stack DEL", "dual/DEL", Ms, Median, &[])),
        row(format!("{n} parallel ptp ADDs, wall"), par(Kind::Ptp, "ADD"), Ms, Median, &[Ratio(0.5)]),
        row(format!("{n} parallel ptp DELs, wall"), par(Kind::Ptp, "DEL"), Ms, Median, &[]),
        row(format!("{n} parallel ptp: addresses"), par(Kind::Ptp, "distinct"), Ms, Median, &[Distinct]),
        row(format!("{n} parallel ptp + ipMasq ADDs, wall"), par(Kind::PtpMasq, "ADD"), Ms, Median, &[Ratio(0.5)]),
        row(format!("{n} parallel ptp + ipMasq DELs, wall"), par(Kind::PtpMasq, "DEL"), Ms, Median, &[Ratio(0.2)]),
        row(format!("{n} parallel ptp + ipMasq: addresses"), par(Kind::PtpMasq, "distinct"), Ms, Median, &[Distinct]),
        row("IPAM ADD, empty store", "ipam0/ADD", Ms, Median, &[MaxMs(1.5)]),
        row("IPAM DEL, empty store", "ipam0/DEL", Ms, Median, &[]),
        row(
            format!("IPAM ADD, {} reservations", thousands(opts.prefill)),
            format!("{full}/ADD"),
            Ms,
            Median,
            &[MaxMs(10.0)],
        ),
        row(
            format!("IPAM DEL, {} reservations", thousands(opts.prefill)),
            format!("{full}/DEL"),
            Ms,
            Median,
            &[MaxMs(10.0)],
        ),
        row(
            format!("IPAM first ADD on the {} store (one run; tether-ipam builds its index)", thousands(opts.prefill)),
            format!("{full}/ADD/first"),
            Ms,
            Peak,
            &[],
        ),
        floor(row(format!("calibration: spawn → exit of `{}`", ipam::BARE), "spawn/bare", Ms, Median, &[])),
        row("peak RSS, ptp ADD", "ptp/ADD/rss", Mb, Peak, &[Ratio(0.5)]),
        row("peak RSS, ptp DEL", "ptp/DEL/rss", Mb, Peak, &[]),
        row("peak RSS, IPAM ADD+DEL, empty store", "ipam0/rss", Mb, Peak, &[]),
        row(
            format!("peak RSS, IPAM ADD+DEL, {} reservations", thousands(opts.prefill)),
            format!("{full}/rss"),
            Mb,
            Peak,
            &[BelowMb(4.0)],
        ),
        row("CRI RunPodSandbox, dual stack (containerd 1.6)", cri::key("dual", "RunPodSandbox"), Ms, Median, &[]),
        row("CRI StopPodSandbox + RemovePodSandbox, dual stack", cri::key("dual", "StopRemove"), Ms, Median, &[]),
        row("CRI RunPodSandbox, IPv4 only", cri::key("v4", "RunPodSandbox"), Ms, Median, &[]),
        row("CRI StopPodSandbox + RemovePodSandbox, IPv4 only", cri::key("v4", "StopRemove"), Ms, Median, &[]),
        row("binary size: ptp / tether", "size/ptp", Mb, Peak, &[]),
        row("binary size: bridge / tether", "size/bridge", Mb, Peak, &[]),
        row("binary size: host-local / tether-ipam", "size/ipam", Mb, Peak, &[]),
    ]
}

fn fmt(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ms if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Unit::Ms if v >= 100.0 => format!("{v:.0} ms"),
        Unit::Ms if v >= 10.0 => format!("{v:.1} ms"),
        Unit::Ms => format!("{v:.2} ms"),
        Unit::Mb if v >= 10.0 => format!("{v:.1} MB"),
        Unit::Mb => format!("{v:.2} MB"),
    }
}

/// Text safe inside a Markdown table cell, at most `max` characters.
fn cell_text(s: &str, max: usize) -> String {
    let flat: String = s.replace(['\n', '\r'], " ").replace('|', "\\|");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

/// The number a row compares, or why there is none.
fn number(m: &Metrics, key: &str, side: Side, stat: Stat) -> Result<f64, String> {
    match m.get(key, side) {
        None => Err("not run".into()),
        Some(Val::Error(e)) => Err(e.clone()),
        Some(Val::One(v)) => Ok(*v),
        Some(Val::Check { .. }) => Err("a check, not a number".into()),
        Some(Val::Samples(s)) => summarize(s)
            .map(|sum| if stat == Stat::Peak { sum.max } else { sum.median })
            .ok_or_else(|| "no samples".into()),
    }
}

fn cell(m: &Metrics, r: &Row, side: Side) -> String {
    match m.get(&r.key, side) {
        None => "—".into(),
        Some(Val::Error(e)) if e.starts_with("not ") => format!("n/a ({})", cell_text(e, 60)),
        Some(Val::Error(e)) => format!("n/a (error: {})", cell_text(e, 90)),
        Some(Val::Check { text, .. }) => cell_text(text, 60),
        Some(Val::One(v)) => fmt(r.unit, *v),
        Some(Val::Samples(s)) => match summarize(s) {
            None => "n/a (no samples)".into(),
            Some(sum) if r.stat == Stat::Peak => fmt(r.unit, sum.max),
            Some(sum) => format!("{} (p95 {})", fmt(r.unit, sum.median), fmt(r.unit, sum.p95)),
        },
    }
}

fn target_text(t: Target) -> String {
    match t {
        Target::Ratio(r) => format!("≤ {r}× ref"),
        Target::MaxMs(x) => format!("≤ {x} ms"),
        Target::BelowMb(x) => format!("< {x} MB"),
        Target::Floor => "≤ floor".into(),
        Target::Distinct => "no duplicates".into(),
    }
}

/// PASS / FAIL, or `None` when tether (or what it is compared with) has no number.
fn verdict(m: &Metrics, r: &Row, t: Target) -> Option<bool> {
    let tether = || number(m, &r.key, Side::Tether, r.stat).ok();
    match t {
        Target::Ratio(x) => Some(tether()? <= x * number(m, &r.key, Side::Reference, r.stat).ok()?),
        Target::MaxMs(x) => Some(tether()? <= x),
        Target::BelowMb(x) => Some(tether()? < x),
        Target::Floor => Some(tether()? <= number(m, &r.key, Side::Floor, r.stat).ok()?),
        Target::Distinct => match m.get(&r.key, Side::Tether)? {
            Val::Check { ok, .. } => Some(*ok),
            _ => None,
        },
    }
}

pub fn render(m: &Metrics, info: &Info) -> String {
    let o = info.opts;
    let mut md = String::new();
    let mc = info.machine;
    let _ = writeln!(md, "### tether vs reference CNI plugins: {}\n", mc.date);
    if info.interrupted {
        let _ = writeln!(md, "**Interrupted: incomplete run.**\n");
    }
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| command | `{}` |", cell_text(&info.command, 200));
    let _ =
        writeln!(md, "| machine | {} cores ({}), {} |", mc.cores, cell_text(&mc.cpu, 80), cell_text(&mc.kernel, 120));
    let _ = writeln!(md, "| load average (1/5/15 min) | {} at start, {} at end |", mc.load, info.load_end);
    let _ = writeln!(md, "| tether | {} |", cell_text(&info.tether, 160));
    let _ = writeln!(
        md,
        "| reference | {}, `{}`; ipMasq backend: iptables (`{}`) |",
        cell_text(&mc.reference, 80),
        info.ref_dir,
        cell_text(&mc.iptables, 60)
    );
    let _ = writeln!(
        md,
        "| runs | sequential: {} ADD+DEL (dual stack {}, IPAM with full store {}) after {} warm-up ({} for the slow ones); \
         parallel: {} containers × {} rounds after {} warm-up; peak RSS: {} runs; CRI: {} pods per side and family |\n",
        o.iterations,
        o.dual_iterations,
        o.ipam_iterations,
        o.warmup,
        o.slow_warmup,
        o.parallel,
        o.rounds,
        o.par_warmup,
        o.rss_runs,
        o.cri_iterations
    );

    let _ = writeln!(md, "| Measurement | reference | tether | tether / ref | `ip -batch` floor | target | result |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|---|");
    let (mut pass, mut fail, mut na) = (0, 0, 0);
    for r in rows(o) {
        let ratio = match (number(m, &r.key, Side::Tether, r.stat), number(m, &r.key, Side::Reference, r.stat)) {
            (Ok(t), Ok(rf)) if rf > 0.0 && t / rf < 0.095 => format!("{:.3}×", t / rf),
            (Ok(t), Ok(rf)) if rf > 0.0 => format!("{:.2}×", t / rf),
            _ => "—".into(),
        };
        let floor = if r.floor { cell(m, &r, Side::Floor) } else { "—".into() };
        let targets: Vec<String> = r.targets.iter().map(|t| target_text(*t)).collect();
        let results: Vec<&str> = r
            .targets
            .iter()
            .map(|t| match verdict(m, &r, *t) {
                Some(true) => {
                    pass += 1;
                    "PASS"
                }
                Some(false) => {
                    fail += 1;
                    "FAIL"
                }
                None => {
                    na += 1;
                    "n/a"
                }
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            cell(m, &r, Side::Reference),
            cell(m, &r, Side::Tether),
            ratio,
            floor,
            if targets.is_empty() { "—".into() } else { targets.join("; ") },
            if results.is_empty() { "—".into() } else { results.join("; ") },
        );
    }
    let _ = writeln!(md, "\nTargets: {pass} PASS, {fail} FAIL, {na} n/a.\n");
    crate::scale::report::section(&mut md, m, o);
    notes(&mut md);
    details(&mut md, m);
    md
}

fn notes(md: &mut String) {
    let lines = [
        "Times are medians (p95 in parentheses), in ms, from `spawn()` of the plugin to the return of its `wait4()`. \
         Plugins are started exactly as a runtime starts them (environment `CNI_*` + `PATH` only, config on stdin, \
         DEL with `prevResult` = the ADD's result) from a thread that has `setns`-ed into a node namespace made for \
         the scenario (no `ip netns exec` in the timed region); container namespaces exist before the clock starts.",
        "tether and the reference each have their own node namespace, container namespaces and IPAM `dataDir`, and \
         alternate invocation by invocation, the first side rotating each iteration; warm-up runs are excluded.",
        "`ip -batch` floor: the same kernel work done by the leanest existing tool, one `ip -batch` in the node \
         namespace (veth with its peer created in the container namespace, host address + host route or bridge port) \
         plus one `ip -n <ctr> -batch` (address, link up, routes; IPv6 with `nodad`), no IPAM; DEL = one \
         `ip -n <ctr> link del eth0`. It is the sum of both processes' spawn-to-exit times.",
        "Parallel: all containers' ADDs started at once (each in its own pre-made namespace), wall time from the \
         first spawn to the last exit; then all DELs. Every round checks that no address was handed out twice.",
        "Peak RSS: `/usr/bin/time -f %M` (GNU time; max RSS of the plugin and of every child it waited for, e.g. \
         the IPAM plugin or iptables), the largest of the runs; MB = 10^6 bytes. Not `wait4()`'s `ru_maxrss` of our \
         own child: a child records its parent's resident set when it execs, which would add the benchmark's size.",
        "IPAM alone: the IPAM binary invoked directly with its plugin's configuration, as delegation does. The full \
         store is 198.18.0.0/16 prefilled in host-local's format (`<dataDir>/<net>/<ip>` files holding \
         `<containerID>\\r\\neth0`, `last_reserved_ip.0`), free addresses scattered, identical for both IPAMs; \
         after every DEL the cursor is rewritten in place (no directory entry changes) so both always see the \
         same state. tether-ipam keeps a private index (`.tether/`), built by its first command on the store \
         (the \"first ADD\" row, a warm-up run) and valid afterwards, as in a store only it writes.",
        "CRI: containerd 1.6 (Debian's) started by the benchmark in a private mount + PID namespace inside a node \
         namespace of its own, one containerd per side, both running, called alternately through the project's CRI \
         client (tests/runtimes); the conflist is ptp + ipMasq + portmap with tether-ipam or host-local, as in the \
         runtime tests. Wall time of the CRI call as the kubelet sees it: containerd's own work (sandbox container, \
         runc, shim) included, so the ratio is of whole pod starts, not of plugins.",
        "cniVersion 1.0.0 for both sides (Debian's reference plugins speak up to 1.0.0). Addresses: 198.18.0.0/16 \
         and fd7e:7e7e::/64 only; no traffic is sent. Ratios are tether / reference.",
    ];
    let _ = writeln!(md, "How it was measured:\n");
    for line in lines {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(md, "- Sizes are of the stripped release binaries; both tether modes are one binary.");
    let _ = writeln!(md);
}

fn details(md: &mut String, m: &Metrics) {
    let _ = writeln!(md, "<details><summary>All series</summary>\n");
    let _ = writeln!(md, "| metric | side | n | median | p95 | min | max | mean | CPU median |");
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (key, side) in m.keys() {
        let Some(Val::Samples(s)) = m.get(key, *side) else { continue };
        let Some(sum) = summarize(s) else { continue };
        let unit = if key.ends_with("/rss") { Unit::Mb } else { Unit::Ms };
        let cpu = m.cpu(key, *side).and_then(|c| summarize(c)).map(|c| fmt(Unit::Ms, c.median)).unwrap_or("—".into());
        let _ = writeln!(
            md,
            "| {key} | {side:?} | {} | {} | {} | {} | {} | {} | {cpu} |",
            sum.n,
            fmt(unit, sum.median),
            fmt(unit, sum.p95),
            fmt(unit, sum.min),
            fmt(unit, sum.max),
            fmt(unit, sum.mean)
        );
    }
    let _ = writeln!(md, "\n</details>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_ratio_floor_targets_and_errors() {
        let mut m = Metrics::default();
        m.set("ptp/ADD", Side::Reference, Val::Samples(vec![7.0, 7.2, 7.1]));
        m.set("ptp/ADD", Side::Tether, Val::Samples(vec![3.0, 3.1, 2.9]));
        m.set("ptp/ADD", Side::Floor, Val::Samples(vec![4.0]));
        m.set("ptp/DEL", Side::Reference, Val::Samples(vec![17.0]));
        m.set("ptp/DEL", Side::Tether, Val::Error("code 999: tether: DEL | not yet".into()));
        m.set("dual/ADD", Side::Tether, Val::Samples(vec![25.0]));
        let opts = Opts::default();
        let machine = Machine::default();
        let info = Info {
            machine: &machine,
            command: "scripts/bench".into(),
            tether: "test".into(),
            opts: &opts,
            ref_dir: "/usr/lib/cni".into(),
            interrupted: false,
            load_end: "0.1 0.1 0.1".into(),
        };
        let md = render(&m, &info);
        let line = |start: &str| md.lines().find(|l| l.starts_with(start)).unwrap().to_string();
        assert_eq!(
            line("| ptp ADD |"),
            "| ptp ADD | 7.10 ms (p95 7.20 ms) | 3.00 ms (p95 3.10 ms) | 0.42× | 4.00 ms (p95 4.00 ms) | ≤ 0.5× ref; ≤ floor | PASS; PASS |"
        );
        assert!(line("| ptp DEL |").contains("n/a (error: code 999: tether: DEL \\| not yet) | — |"));
        assert!(line("| ptp DEL |").ends_with("| ≤ 1× ref | n/a |"));
        assert!(line("| dual stack ADD |").ends_with("| ≤ 20 ms | FAIL |"));
        assert!(md.contains("Targets: 2 PASS, 1 FAIL,"));
        assert_eq!(thousands(65000), "65,000");
    }
}
