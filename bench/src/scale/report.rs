//! The node-scale section of the report: medians at each B with the growth B_max / 0, the targets of
//! issue 16, and the bring-up and drain times.

use super::{key, sizes, total_key, KINDS};
use crate::cni::{Kind, Side};
use crate::metrics::{Metrics, Val};
use crate::opts::Opts;
use crate::stats::{summarize, thousands};
use std::fmt::Write as _;

fn median(m: &Metrics, key: &str, side: Side) -> Result<f64, String> {
    match m.get(key, side) {
        None => Err("not run".into()),
        Some(Val::Samples(s)) => summarize(s).map(|s| s.median).ok_or_else(|| "no samples".into()),
        Some(Val::One(v)) => Ok(*v),
        Some(Val::Error(e)) => Err(e.clone()),
        Some(Val::Check { .. }) => Err("a check".into()),
    }
}

fn ms(v: f64) -> String {
    match v {
        v if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        v if v >= 100.0 => format!("{v:.0} ms"),
        v if v >= 10.0 => format!("{v:.1} ms"),
        v => format!("{v:.2} ms"),
    }
}

fn shown(v: &Result<f64, String>) -> String {
    match v {
        Ok(v) => ms(*v),
        Err(e) if e == "not run" => "—".into(),
        Err(e) => format!("n/a ({})", e.chars().take(70).collect::<String>().replace('|', "\\|")),
    }
}

/// The rows of one kind's table: (label, metric name at each B, side).
const ROWS: [(&str, &str, Side); 10] = [
    ("tether ADD", "ADD", Side::Tether),
    ("reference ADD", "ADD", Side::Reference),
    ("`ip -batch` floor ADD", "ADD", Side::Floor),
    ("tether CHECK", "CHECK", Side::Tether),
    ("reference CHECK", "CHECK", Side::Reference),
    ("tether DEL", "DEL", Side::Tether),
    ("reference DEL", "DEL", Side::Reference),
    ("floor DEL: `ip link del` of the node end, from the node", "DEL", Side::Floor),
    ("floor DEL: `ip link del eth0`, from inside the container", "DELctr", Side::Floor),
    ("`/bin/true`, spawn → exit", "true", Side::Floor),
];

/// PASS / FAIL / n/a of one target.
fn verdict(ok: Option<bool>, counts: &mut (usize, usize, usize)) -> &'static str {
    match ok {
        Some(true) => {
            counts.0 += 1;
            "PASS"
        }
        Some(false) => {
            counts.1 += 1;
            "FAIL"
        }
        None => {
            counts.2 += 1;
            "n/a"
        }
    }
}

pub fn section(md: &mut String, m: &Metrics, opts: &Opts) {
    let sizes = sizes(opts);
    let (Some(&first), Some(&last)) = (sizes.first(), sizes.last()) else { return };
    // The kinds this run measured (--scale-kinds), each with a table of its own.
    let ran = |k: &Kind| {
        [Side::Tether, Side::Reference, Side::Floor].iter().any(|s| m.get(&key(*k, first, "ADD"), *s).is_some())
    };
    let kinds: Vec<Kind> = KINDS.iter().copied().filter(ran).collect();
    if kinds.is_empty() {
        return;
    }
    // The targets' base: B = 1 when measured (see the note on ipMasq at B = 0), else the smallest B.
    let base = sizes.iter().copied().find(|&b| b == 1).unwrap_or(first);
    let _ = writeln!(
        md,
        "### Node scale: B live attachments on one node, then ADD / CHECK / DEL of one more\n\n\
         IPv4, ipMasq on; medians of {cycles} cycles (after {warmup} warm-up) at each B; tether, the reference \
         and the floors interleaved in the same run; in parentheses, the growth: value at B / value at B = {first}. \
         With ipMasq, a tether ADD at B = 0 also creates its nftables table (the last DEL removes it): B = 1 is \
         the first node with the table in place, and the growth targets below compare B = {last} with B = {base}.\n",
        last = thousands(last),
        first = thousands(first),
        base = thousands(base),
        cycles = opts.scale_cycles,
        warmup = opts.slow_warmup,
    );
    let mut counts = (0, 0, 0);
    let mut targets = Vec::new();
    for &kind in &kinds {
        let name = kind.reference_type();
        let _ = write!(md, "| {name} |");
        for b in &sizes {
            let _ = write!(md, " B = {} |", thousands(*b));
        }
        let _ = writeln!(md, "\n|---|{}", "---:|".repeat(sizes.len()));
        for (label, what, side) in ROWS {
            let vals: Vec<Result<f64, String>> = sizes.iter().map(|b| median(m, &key(kind, *b, what), side)).collect();
            // Each B after the first with its growth over the first: "5.13 ms (1.63×)".
            let cells: Vec<String> = vals
                .iter()
                .enumerate()
                .map(|(i, v)| match (vals.first(), v) {
                    (Some(Ok(a)), Ok(z)) if i > 0 && *a > 0.0 => format!("{} ({:.2}×)", ms(*z), z / a),
                    _ => shown(v),
                })
                .collect();
            let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
        }
        let _ = writeln!(md);

        let at = |b: usize, what: &str, side: Side| median(m, &key(kind, b, what), side).ok();
        let growth = |what: &str| Some(at(last, what, Side::Tether)? / at(base, what, Side::Tether)?);
        let flat: &[&str] = if kind == Kind::Ptp { &["ADD", "CHECK", "DEL"] } else { &["CHECK", "DEL"] };
        for what in flat {
            let g = growth(what);
            targets.push((
                format!("{name} {what}: tether at B = {} within 1.2× of B = {}", thousands(last), thousands(base)),
                g.map(|g| format!("{g:.2}×")).unwrap_or("—".into()),
                g.map(|g| g <= 1.2),
            ));
        }
        if kind == Kind::Bridge {
            let extra = (|| {
                let t = at(last, "ADD", Side::Tether)? - at(base, "ADD", Side::Tether)?;
                let f = at(last, "ADD", Side::Floor)? - at(base, "ADD", Side::Floor)?;
                Some((t, f))
            })();
            targets.push((
                "bridge ADD: tether's growth within 1 ms of the `ip -batch` floor's".into(),
                extra.map(|(t, f)| format!("tether {t:+.2} ms, floor {f:+.2} ms")).unwrap_or("—".into()),
                extra.map(|(t, f)| t - f <= 1.0),
            ));
        }
        for b in [base, last] {
            if kind == Kind::Ptp {
                let r = (|| Some((at(b, "ADD", Side::Tether)?, at(b, "true", Side::Floor)?)))();
                targets.push((
                    format!("ptp ADD at B = {}: at most 2× `/bin/true`", thousands(b)),
                    r.map(|(a, t)| format!("{:.2}×", a / t)).unwrap_or("—".into()),
                    r.map(|(a, t)| a <= 2.0 * t),
                ));
            }
            let r = (|| Some((at(b, "DEL", Side::Tether)?, at(b, "DEL", Side::Floor)?)))();
            targets.push((
                format!("{name} DEL at B = {}: within 1.1× of the `ip link del` floor", thousands(b)),
                r.map(|(d, f)| format!("{:.2}×", d / f)).unwrap_or("—".into()),
                r.map(|(d, f)| d <= 1.1 * f),
            ));
        }
    }

    let _ =
        writeln!(md, "| bring-up and drain of {} attachments | reference | tether | tether / ref |", thousands(last));
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for &kind in &kinds {
        let name = kind.reference_type();
        let par = opts.scale_parallel;
        let rows = [
            ("up-seq", format!("{name} bring-up, one at a time (sum of ADDs)")),
            ("down-seq", format!("{name} drain, one at a time (sum of DELs)")),
            ("up-par", format!("{name} bring-up, {par} at a time (wall)")),
            ("down-par", format!("{name} drain, {par} at a time (wall)")),
        ];
        for (what, label) in rows {
            let (r, t) =
                (median(m, &total_key(kind, what), Side::Reference), median(m, &total_key(kind, what), Side::Tether));
            let ratio = match (&t, &r) {
                (Ok(t), Ok(r)) if *r > 0.0 => format!("{:.2}×", t / r),
                _ => "—".into(),
            };
            let _ = writeln!(md, "| {label} | {} | {} | {ratio} |", shown(&r), shown(&t));
        }
        let floor = median(m, &total_key(kind, "up-seq"), Side::Floor);
        let _ = writeln!(md, "| {name} bring-up of the `ip -batch` floor (sum) | — | — | {} |", shown(&floor));
    }
    let _ = writeln!(md, "\n| node-scale target (issue 16) | value | result |\n|---|---|---|");
    for (label, value, ok) in targets {
        let v = verdict(ok, &mut counts);
        let _ = writeln!(md, "| {label} | {value} | {v} |");
    }
    let _ = writeln!(md, "\nNode-scale targets: {} PASS, {} FAIL, {} n/a.\n", counts.0, counts.1, counts.2);
    let _ = writeln!(
        md,
        "Node scale, how: each side has its own node namespace and B + 1 container namespaces, made with \
         `unshare(CLONE_NEWNET)` and bind-mounted under `/run/netns` of a private mount namespace of the \
         benchmark (nothing in the machine's mount table; the kernel removes all of it when the process ends). \
         Each side sees the box through a mount namespace of its own with its own procfs instance on `/proc`, \
         as on a machine of its own: a `/proc/sys/net` lookup walks a dentry hash chain holding every namespace \
         that looked up the same name through the same procfs, so the reference's in-container sysctl writes \
         (1,000 bridge containers: one `/proc/sys` open 25 µs → 0.9 ms) would otherwise be paid by tether's ADD. \
         A driver thread enters the side's view and node namespace once and spawns every invocation from there \
         (spawn → `wait4()`), so no `ip netns exec` sits in the timed region. The B background attachments are \
         made by the side itself (plugin ADDs, interleaved container by container; the floor: its own `ip -batch` \
         ADDs). Floor ADD = one `ip -batch` in the node (bridge: the veth created already enslaved and up, its peer \
         in the container; ptp: node end up, host address and route) + one `ip -batch` spawned inside the \
         container (address, up, routes): the sum. Parallel: `--scale-parallel` threads, each inside the node \
         namespace, take the next container as soon as their last one exited.\n"
    );
}
