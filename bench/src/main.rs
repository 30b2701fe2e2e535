//! tether-bench: tether + tether-ipam against the reference `ptp`/`bridge` + `host-local`, side by side,
//! with an `ip -batch` floor. Run through `scripts/bench` (root; test-made namespaces only).
//!
//! Modules: [`ns`] namespaces and node threads, [`runner`] spawn + `wait4` timing, [`lane`] one side of a
//! scenario, [`seq`] / [`parallel`] / [`ipam`] the scenarios, [`store`] the prefilled IPAM store,
//! [`cri`] pods under containerd's CRI, [`scale`] B live attachments on one node (in an [`nsbox`], run by
//! [`driver`] threads), [`stats`] median/p95, [`metrics`] what was measured, [`report`] the Markdown table.

mod cni;
mod cri;
mod driver;
mod ipam;
mod lane;
mod machine;
mod metrics;
mod ns;
mod nsbox;
mod opts;
mod parallel;
mod report;
mod runner;
mod scale;
mod seq;
mod signals;
mod stats;
mod store;

use cni::{Kind, Side};
use lane::Ctx;
use metrics::{Metrics, Val};
use opts::Opts;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match Opts::parse(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("tether-bench: {msg}");
            }
            eprint!("{}", opts::USAGE);
            return if msg.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    if let Err(e) = signals::install() {
        eprintln!("tether-bench: {e}");
        return ExitCode::FAILURE;
    }
    runner::start_watchdog();
    match run(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tether-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A scenario of the run, selected by its `--only` name.
type Stage<'a> = (&'static str, Box<dyn Fn(&mut Metrics) + 'a>);

/// `/tmp/tb-<pid>`, removed with everything below it on drop.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("tether-bench: cleanup: removing {}: {e}", self.0.display());
        }
    }
}

fn run(opts: &Opts) -> Result<ExitCode, String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("must run as root: it creates network namespaces (use scripts/bench)".into());
    }
    let ip = ns::ip_binary()?;
    ns::sweep_leftovers(&ip);
    if !Path::new(runner::GNU_TIME).exists() {
        return Err(format!("{} (Debian package `time`) is needed for the peak-RSS runs", runner::GNU_TIME));
    }
    for plugin in ["ptp", "bridge", "host-local"] {
        if !opts.ref_dir.join(plugin).exists() {
            return Err(format!(
                "reference plugin {} missing (apt-get install containernetworking-plugins)",
                opts.ref_dir.join(plugin).display()
            ));
        }
    }
    let tether_dir = match &opts.tether_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .ok_or("cannot find this program's directory; pass --tether-dir")?,
    };
    let tag = format!("{}{}", ns::PREFIX, std::process::id());
    let run_dir = RunDir(std::env::temp_dir().join(&tag));
    std::fs::create_dir_all(&run_dir.0).map_err(|e| format!("creating {}: {e}", run_dir.0.display()))?;
    let ctx = Ctx { ip, tether_dir, ref_dir: opts.ref_dir.clone(), run_dir: run_dir.0.clone(), tag };

    let machine = machine::Machine::probe();
    let mut m = Metrics::default();
    sizes(&ctx, &mut m);
    let stages: Vec<Stage> = vec![
        ("ptp", Box::new(|m| seq::run(&ctx, opts, Kind::Ptp, m))),
        ("masq", Box::new(|m| seq::run(&ctx, opts, Kind::PtpMasq, m))),
        ("bridge", Box::new(|m| seq::run(&ctx, opts, Kind::Bridge, m))),
        ("dual", Box::new(|m| seq::run(&ctx, opts, Kind::Dual, m))),
        ("parallel", Box::new(|m| parallel::run(&ctx, opts, Kind::Ptp, m))),
        ("parallel", Box::new(|m| parallel::run(&ctx, opts, Kind::PtpMasq, m))),
        ("ipam", Box::new(|m| ipam::run(&ctx, opts, 0, m))),
        ("ipam", Box::new(|m| ipam::run(&ctx, opts, opts.prefill.max(1), m))),
        ("cri", Box::new(|m| cri::run(&ctx, opts, m))),
        ("scale", Box::new(|m| scale::run(&ctx, opts, m))),
    ];
    for (name, stage) in &stages {
        if opts.wants(name) && !signals::stopped() {
            stage(&mut m);
        }
    }

    let interrupted = signals::stopped();
    let info = report::Info {
        machine: &machine,
        command: opts.command.clone().unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
        tether: opts.label.clone().unwrap_or_else(|| format!("binaries in {}", ctx.tether_dir.display())),
        opts,
        ref_dir: ctx.ref_dir.display().to_string(),
        interrupted,
        load_end: machine::load_average(),
    };
    let md = report::render(&m, &info);
    print_report(&md)?;
    if let Some(out) = &opts.out {
        std::fs::write(out, &md).map_err(|e| format!("writing {}: {e}", out.display()))?;
        eprintln!("tether-bench: report written to {}", out.display());
    }
    Ok(if interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

/// The report is this program's output (it is not a CNI plugin: the stdout rule of the plugins does not apply).
#[allow(clippy::disallowed_methods)]
fn print_report(md: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(md.as_bytes()).and_then(|_| out.flush()).map_err(|e| format!("writing the report: {e}"))
}

fn sizes(ctx: &Ctx, m: &mut Metrics) {
    let pairs = [("ptp", "ptp", "tether"), ("bridge", "bridge", "tether"), ("ipam", "host-local", "tether-ipam")];
    for (key, reference, tether) in pairs {
        for (side, path) in
            [(Side::Reference, ctx.ref_dir.join(reference)), (Side::Tether, ctx.tether_dir.join(tether))]
        {
            let val = match lane::size_mb(&path) {
                Some(mb) => Val::One(mb),
                None => Val::Error(format!("not found: {}", path.display())),
            };
            m.set(&format!("size/{key}"), side, val);
        }
    }
}
