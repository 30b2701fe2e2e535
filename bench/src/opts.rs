//! Command line.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: tether-bench [options]   (root; normally run through scripts/bench)

  --quick                 smoke run: few iterations (overridable by the options below)
  --iterations N          sequential ADD+DEL iterations for ptp, ptp+ipMasq, bridge, empty IPAM (200)
  --dual-iterations N     iterations for dual stack, whose reference waits for DAD (20)
  --ipam-iterations N     iterations for IPAM with the prefilled store (30)
  --warmup N              warm-up iterations per scenario, excluded (5; 2 for dual stack and the full store)
  --parallel N            containers added then deleted at once (64)
  --rounds N              measured parallel rounds (3, plus 1 warm-up round)
  --rss-runs N            runs under /usr/bin/time for peak RSS (5)
  --prefill N             reservations in the prefilled IPAM store (65000)
  --cri-iterations N      CRI pods per side and family under containerd (10)
  --scale-sizes LIST      node scale: the B values, live attachments on the node (0,1,100,1000)
  --scale-cycles N        node scale: ADD/CHECK/DEL cycles at each B (60)
  --scale-parallel N      node scale: containers brought up / drained at once (16; 0 skips it)
  --scale-kinds LIST      node scale: ptp,bridge or one of them (both)
  --scale-sides LIST      node scale: which of tether,reference,floor run (all; fewer to see what the
                          others' kernel work adds to a side's times)
  --only LIST             comma-separated subset of: ptp,masq,bridge,dual,parallel,ipam,cri,scale
                          (default: all but scale, which takes 5-6 minutes per kind at full size)
  --tether-dir DIR        where tether and tether-ipam are (default: this program's directory)
  --ref-dir DIR           the reference plugins (/usr/lib/cni)
  --out FILE              also write the Markdown report to FILE
  --label TEXT            what tether build this is (printed in the report)
  --command TEXT          the command line to print in the report (default: this program's argv)
";

pub const SCENARIOS: [&str; 8] = ["ptp", "masq", "bridge", "dual", "parallel", "ipam", "cri", "scale"];

/// What a run without `--only` measures: node scale is asked for by name (`--only scale`), it takes
/// longer than all the others together (the reference's 1,000 ADDs and DELs, four times per kind).
pub const DEFAULT_SCENARIOS: [&str; 7] = ["ptp", "masq", "bridge", "dual", "parallel", "ipam", "cri"];

/// The node-scale sides, by `--scale-sides` name.
pub const SCALE_SIDES: [&str; 3] = ["tether", "reference", "floor"];

/// The node-scale kinds, by `--scale-kinds` name.
pub const SCALE_KINDS: [&str; 2] = ["ptp", "bridge"];

#[derive(Debug, Clone)]
pub struct Opts {
    pub quick: bool,
    pub iterations: usize,
    pub dual_iterations: usize,
    pub ipam_iterations: usize,
    pub cri_iterations: usize,
    pub warmup: usize,
    pub slow_warmup: usize,
    pub parallel: usize,
    pub rounds: usize,
    pub par_warmup: usize,
    pub rss_runs: usize,
    pub prefill: usize,
    pub scale_sizes: Vec<usize>,
    pub scale_cycles: usize,
    pub scale_parallel: usize,
    pub scale_kinds: Vec<String>,
    pub scale_sides: Vec<String>,
    pub only: Vec<String>,
    pub tether_dir: Option<PathBuf>,
    pub ref_dir: PathBuf,
    pub out: Option<PathBuf>,
    pub label: Option<String>,
    pub command: Option<String>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            quick: false,
            iterations: 200,
            dual_iterations: 20,
            ipam_iterations: 30,
            cri_iterations: 10,
            warmup: 5,
            slow_warmup: 2,
            parallel: 64,
            rounds: 3,
            par_warmup: 1,
            rss_runs: 5,
            prefill: 65_000,
            scale_sizes: vec![0, 1, 100, 1000],
            scale_cycles: 60,
            scale_parallel: 16,
            scale_kinds: SCALE_KINDS.iter().map(|s| s.to_string()).collect(),
            scale_sides: SCALE_SIDES.iter().map(|s| s.to_string()).collect(),
            only: DEFAULT_SCENARIOS.iter().map(|s| s.to_string()).collect(),
            tether_dir: None,
            ref_dir: PathBuf::from("/usr/lib/cni"),
            out: None,
            label: None,
            command: None,
        }
    }
}

impl Opts {
    /// Parse the arguments (without argv[0]). `Err` carries the message to print (with the usage).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Opts, String> {
        let args: Vec<String> = args.into_iter().collect();
        let mut o = Opts::default();
        if args.iter().any(|a| a == "--quick") {
            o.quick = true;
            o.iterations = 20;
            o.dual_iterations = 3;
            o.ipam_iterations = 3;
            o.cri_iterations = 3;
            o.warmup = 1;
            o.slow_warmup = 1;
            o.rounds = 1;
            o.par_warmup = 0;
            o.rss_runs = 2;
            o.scale_sizes = vec![0, 1, 20];
            o.scale_cycles = 3;
        }
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            if arg == "--quick" {
                continue;
            }
            if arg == "-h" || arg == "--help" {
                return Err(String::new());
            }
            let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
            let num = |v: String| v.parse::<usize>().map_err(|_| format!("{arg}: not a number: {v}"));
            match arg.as_str() {
                "--iterations" => o.iterations = num(value()?)?,
                "--dual-iterations" => o.dual_iterations = num(value()?)?,
                "--ipam-iterations" => o.ipam_iterations = num(value()?)?,
                "--cri-iterations" => o.cri_iterations = num(value()?)?,
                "--warmup" => {
                    o.warmup = num(value()?)?;
                    o.slow_warmup = o.slow_warmup.min(o.warmup);
                }
                "--parallel" => o.parallel = num(value()?)?.max(1),
                "--rounds" => o.rounds = num(value()?)?,
                "--rss-runs" => o.rss_runs = num(value()?)?,
                "--prefill" => o.prefill = num(value()?)?,
                "--scale-sizes" => {
                    let list = value()?;
                    o.scale_sizes = list.split(',').map(|s| num(s.trim().to_string())).collect::<Result<_, _>>()?;
                    if o.scale_sizes.is_empty() {
                        return Err("--scale-sizes: give at least one B".into());
                    }
                }
                "--scale-cycles" => o.scale_cycles = num(value()?)?,
                "--scale-parallel" => o.scale_parallel = num(value()?)?,
                "--scale-kinds" => {
                    let list = value()?;
                    o.scale_kinds = list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                    if let Some(bad) = o.scale_kinds.iter().find(|s| !SCALE_KINDS.contains(&s.as_str())) {
                        return Err(format!("--scale-kinds: unknown kind {bad} (known: {})", SCALE_KINDS.join(",")));
                    }
                }
                "--scale-sides" => {
                    let list = value()?;
                    o.scale_sides = list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                    if let Some(bad) = o.scale_sides.iter().find(|s| !SCALE_SIDES.contains(&s.as_str())) {
                        return Err(format!("--scale-sides: unknown side {bad} (known: {})", SCALE_SIDES.join(",")));
                    }
                }
                "--only" => {
                    let list = value()?;
                    o.only = list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                    if let Some(bad) = o.only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
                        return Err(format!("--only: unknown scenario {bad} (known: {})", SCENARIOS.join(",")));
                    }
                }
                "--tether-dir" => o.tether_dir = Some(PathBuf::from(value()?)),
                "--ref-dir" => o.ref_dir = PathBuf::from(value()?),
                "--out" => o.out = Some(PathBuf::from(value()?)),
                "--label" => o.label = Some(value()?),
                "--command" => o.command = Some(value()?),
                other => return Err(format!("unknown argument: {other}")),
            }
        }
        Ok(o)
    }

    pub fn wants(&self, scenario: &str) -> bool {
        self.only.iter().any(|s| s == scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Opts, String> {
        Opts::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_quick_and_overrides() {
        let o = parse(&[]).unwrap();
        assert_eq!((o.iterations, o.parallel, o.prefill), (200, 64, 65_000));
        assert!(o.wants("ipam"));
        let o = parse(&["--iterations", "7", "--quick", "--only", "ptp,ipam"]).unwrap();
        assert_eq!((o.iterations, o.dual_iterations, o.quick), (7, 3, true));
        assert!(o.wants("ptp") && !o.wants("masq"));
        assert!(parse(&["--only", "nope"]).is_err());
        assert!(parse(&["--iterations"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        let o = parse(&["--scale-sizes", "0, 5", "--scale-cycles", "2", "--only", "scale"]).unwrap();
        assert_eq!((o.scale_sizes, o.scale_cycles, o.scale_parallel), (vec![0, 5], 2, 16));
        assert!(parse(&["--scale-sizes", "1,x"]).is_err());
        assert!(!parse(&[]).unwrap().wants("scale"), "node scale is asked for by name");
        assert_eq!(parse(&["--scale-kinds", "bridge"]).unwrap().scale_kinds, vec!["bridge"]);
        assert!(parse(&["--scale-kinds", "macvlan"]).is_err());
        assert_eq!(parse(&["--scale-sides", "tether,floor"]).unwrap().scale_sides, vec!["tether", "floor"]);
        assert!(parse(&["--scale-sides", "cilium"]).is_err());
    }
}
