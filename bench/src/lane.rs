//! One side of one scenario: its node namespace (and thread), container namespaces, scratch directory,
//! and the invocations it makes (a plugin, an IPAM plugin, or the `ip -batch` floor).

use crate::cni::{self, Kind, Side, BRIDGE, IFNAME};
use crate::ns::{self, Netns, Node};
use crate::runner::{Outcome, Spawn};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Per-invocation timeout (the reference's dual-stack ADD waits up to 5 s for DAD).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout for a whole parallel batch.
const BATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Paths and names shared by every scenario of a run.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub ip: PathBuf,
    pub tether_dir: PathBuf,
    pub ref_dir: PathBuf,
    /// `/tmp/tb-<pid>`: every side's scratch directory lives below it.
    pub run_dir: PathBuf,
    /// `tb-<pid>`: prefix of every namespace of this run.
    pub tag: String,
}

/// One timed invocation (or, for the floor's ADD, the two `ip` processes together).
#[derive(Debug, Clone)]
pub struct Attempt {
    pub elapsed: Duration,
    pub cpu: Duration,
    pub result: Value,
    pub rss_kib: Option<u64>,
}

/// A side in a scenario. Field order is drop order: the thread leaves before its namespaces go.
pub struct Lane {
    node: Node,
    ctrs: Vec<Netns>,
    node_ns: Netns,
    pub side: Side,
    /// The side's scratch directory (stderr files, IPAM dataDir).
    pub dir: PathBuf,
    /// The binary invoked (plugin, IPAM plugin, or `ip` for the floor).
    pub program: PathBuf,
    /// The network configuration sent on stdin (unused by the floor).
    pub conf: Value,
    cni_path: PathBuf,
    ip: PathBuf,
}

impl Lane {
    /// Namespaces `<tag>-<scenario>-<side>n` (node) and `...c<k>` (containers), and `<run>/<scenario>-<side>/`.
    pub fn new(ctx: &Ctx, scenario: &str, side: Side, containers: usize) -> Result<Lane, String> {
        let base = format!("{}-{}-{}", ctx.tag, scenario, side.letter());
        let dir = ctx.run_dir.join(format!("{scenario}-{}", side.letter()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let node_ns = Netns::create(&ctx.ip, &format!("{base}n"))?;
        let ctrs =
            (0..containers).map(|k| Netns::create(&ctx.ip, &format!("{base}c{k}"))).collect::<Result<Vec<_>, _>>()?;
        let node = Node::start(&node_ns)?;
        let cni_path = if side == Side::Tether { ctx.tether_dir.clone() } else { ctx.ref_dir.clone() };
        Ok(Lane {
            node,
            ctrs,
            node_ns,
            side,
            dir,
            program: ctx.ip.clone(),
            conf: Value::Null,
            cni_path,
            ip: ctx.ip.clone(),
        })
    }

    /// The IPAM `dataDir` of this side.
    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }

    /// Run `ip -n <node> -batch -` from the machine's namespace (setup, untimed).
    pub fn setup_node(&self, script: &str) -> Result<(), String> {
        ns::ip(&self.ip, &["-n", self.node_ns.name(), "-batch", "-"], Some(script)).map(|_| ())
    }

    fn spawn(&self, args: Vec<String>, env: Vec<(String, String)>, stdin: Vec<u8>, slot: usize, rss: bool) -> Spawn {
        Spawn {
            program: self.program.clone(),
            args,
            env,
            stdin,
            stderr_file: self.dir.join(format!("stderr.{slot}")),
            rss_file: rss.then(|| self.dir.join(format!("rss.{slot}"))),
            timeout: TIMEOUT,
        }
    }

    /// The spawn of one CNI invocation (`stdin` = the config, with `prevResult` for DEL).
    fn cni_spawn(&self, command: &str, id: &str, ctr: usize, stdin: &Value, slot: usize, rss: bool) -> Spawn {
        let env = cni::env(command, id, &self.ctrs[ctr].path(), &self.cni_path);
        self.spawn(Vec::new(), env, serde_json::to_vec(stdin).unwrap_or_default(), slot, rss)
    }

    fn answer(out: &Outcome) -> Result<Attempt, String> {
        let result = cni::parse_answer(&out.stdout, out.ok())?;
        Ok(Attempt { elapsed: out.elapsed, cpu: out.cpu, result, rss_kib: out.rss_kib })
    }

    /// CNI ADD of container `id` into container namespace 0.
    pub fn add(&self, id: &str, rss: bool) -> Result<Attempt, String> {
        Self::answer(&self.node.run_one(self.cni_spawn("ADD", id, 0, &self.conf, 0, rss)))
    }

    /// CNI DEL with `prevResult` = the ADD's result.
    pub fn del(&self, id: &str, prev: &Value, rss: bool) -> Result<Attempt, String> {
        let stdin = cni::with_prev_result(&self.conf, prev);
        Self::answer(&self.node.run_one(self.cni_spawn("DEL", id, 0, &stdin, 0, rss)))
    }

    /// Many invocations at once, each `(container namespace index, container ID, prevResult)`: ADD when
    /// `prevResult` is `None`, DEL with it otherwise. Returns every answer and the wall time of the batch.
    pub fn batch(&self, jobs: &[(usize, String, Option<Value>)]) -> (Vec<Result<Attempt, String>>, Duration) {
        let spawns = jobs
            .iter()
            .enumerate()
            .map(|(slot, (ctr, id, prev))| {
                let (verb, stdin) = match prev {
                    Some(prev) => ("DEL", cni::with_prev_result(&self.conf, prev)),
                    None => ("ADD", self.conf.clone()),
                };
                let mut spawn = self.cni_spawn(verb, id, *ctr, &stdin, slot, false);
                spawn.timeout = BATCH_TIMEOUT;
                spawn
            })
            .collect();
        let (outs, wall) = self.node.run(spawns);
        (outs.iter().map(Self::answer).collect(), wall)
    }

    /// The floor's ADD: one `ip -batch` in the node namespace (veth with its peer created in the container
    /// namespace, host-side address and route), then one `ip -n <ctr> -batch` (addresses, link up, routes).
    pub fn floor_add(&self, kind: Kind) -> Result<Attempt, String> {
        let (host, ctr) = floor_scripts(kind, self.ctrs[0].name());
        let ctr_args = vec!["-n".into(), self.ctrs[0].name().into(), "-batch".into(), "-".into()];
        let a =
            self.node.run_one(self.spawn(vec!["-batch".into(), "-".into()], path_env(), host.into_bytes(), 0, false));
        a.ok().map_err(|e| format!("ip -batch (node): {e}"))?;
        let b = self.node.run_one(self.spawn(ctr_args, path_env(), ctr.into_bytes(), 0, false));
        b.ok().map_err(|e| format!("ip -n <ctr> -batch: {e}"))?;
        let mut ips = vec![json!({ "address": "198.18.0.2/16" })];
        if kind == Kind::Dual {
            ips.push(json!({ "address": "fd7e:7e7e::2/64" }));
        }
        Ok(Attempt { elapsed: a.elapsed + b.elapsed, cpu: a.cpu + b.cpu, result: json!({ "ips": ips }), rss_kib: None })
    }

    /// Spawn `program` with no arguments and an empty stdin inside the node namespace (calibration).
    pub fn run_bare(&self, program: &Path) -> Result<Attempt, String> {
        let mut spawn = self.spawn(Vec::new(), path_env(), Vec::new(), 0, false);
        spawn.program = program.to_path_buf();
        let out = self.node.run_one(spawn);
        out.ok()?;
        Ok(Attempt { elapsed: out.elapsed, cpu: out.cpu, result: Value::Null, rss_kib: None })
    }

    /// The floor's DEL: `ip -n <ctr> link del eth0` (the peer, its address and routes go with it).
    pub fn floor_del(&self) -> Result<Attempt, String> {
        let args = ["-n", self.ctrs[0].name(), "link", "del", IFNAME].iter().map(|s| s.to_string()).collect();
        let out = self.node.run_one(self.spawn(args, path_env(), Vec::new(), 0, false));
        out.ok()?;
        Ok(Attempt { elapsed: out.elapsed, cpu: out.cpu, result: Value::Null, rss_kib: None })
    }

    /// Untimed check after ADD: every address of the result is on eth0 in container namespace `ctr`.
    pub fn verify_attached(&self, ctr: usize, ips: &[IpAddr]) -> Result<(), String> {
        let shown = ns::ip(&self.ip, &["-n", self.ctrs[ctr].name(), "-o", "addr", "show", "dev", IFNAME], None)
            .map_err(|e| format!("after ADD: {e}"))?;
        match ips.iter().find(|ip| !shown.contains(&format!(" {ip}/"))) {
            Some(missing) => Err(format!("after ADD, {missing} is not on {IFNAME} in the container")),
            None if ips.is_empty() => Err("ADD result has no IPs".into()),
            None => Ok(()),
        }
    }

    /// Untimed check after DEL: eth0 is gone from container namespace `ctr`.
    pub fn verify_detached(&self, ctr: usize) -> Result<(), String> {
        match ns::ip(&self.ip, &["-n", self.ctrs[ctr].name(), "-o", "link", "show", "dev", IFNAME], None) {
            Ok(_) => Err(format!("after DEL, {IFNAME} is still in the container")),
            Err(_) => Ok(()),
        }
    }

    /// Untimed cleanup after a failure: remove eth0 from every container namespace (errors ignored).
    pub fn scrub(&self) {
        for ctr in &self.ctrs {
            let _ = ns::ip(&self.ip, &["-n", ctr.name(), "link", "del", IFNAME], None);
        }
    }
}

fn path_env() -> Vec<(String, String)> {
    vec![("PATH".into(), cni::SYSTEM_PATH.into())]
}

/// The floor's two batch scripts (node side, container side) for a scenario.
pub fn floor_scripts(kind: Kind, ctr: &str) -> (String, String) {
    let veth = "tbveth0";
    let mut host = format!("link add {veth} type veth peer name {IFNAME} netns {ctr}\n");
    let mut inner = String::new();
    if kind == Kind::Bridge {
        host += &format!("link set {veth} master {BRIDGE} up\n");
        inner += &format!("address add 198.18.0.2/16 dev {IFNAME}\nlink set {IFNAME} up\n");
        inner += &format!("route add default via 198.18.0.1 dev {IFNAME}\n");
        return (host, inner);
    }
    host += &format!("link set {veth} up\naddress add 198.18.0.1/32 dev {veth}\n");
    host += &format!("route add 198.18.0.2/32 dev {veth} scope host\n");
    inner += &format!("address add 198.18.0.2/16 dev {IFNAME} noprefixroute\nlink set {IFNAME} up\n");
    inner += &format!("route add 198.18.0.1/32 dev {IFNAME} scope link src 198.18.0.2\n");
    inner += &format!("route add 198.18.0.0/16 via 198.18.0.1 dev {IFNAME} src 198.18.0.2\n");
    inner += &format!("route add default via 198.18.0.1 dev {IFNAME}\n");
    if kind == Kind::Dual {
        host += &format!("address add fd7e:7e7e::1/128 dev {veth} nodad\nroute add fd7e:7e7e::2/128 dev {veth}\n");
        inner += &format!("address add fd7e:7e7e::2/64 dev {IFNAME} nodad noprefixroute\n");
        inner += &format!("route add fd7e:7e7e::1/128 dev {IFNAME}\n");
        inner += &format!("route add fd7e:7e7e::/64 via fd7e:7e7e::1 dev {IFNAME}\n");
    }
    (host, inner)
}

/// The floor's node-namespace setup for the bridge scenario (untimed, once): the bridge as tether
/// makes it, without multicast snooping (which makes every port's arrival and departure cost
/// more with every port there: `plugin/src/bridge/device.rs`).
pub fn floor_bridge_setup() -> String {
    format!(
        "link add {BRIDGE} type bridge mcast_snooping 0\naddress add 198.18.0.1/16 dev {BRIDGE}\nlink set {BRIDGE} up\n"
    )
}

/// The order in which the sides go in iteration `i`: rotating, so no side is always first (ABAB, BABA...).
pub fn order(n: usize, i: usize) -> Vec<usize> {
    (0..n).map(|k| (k + i) % n.max(1)).collect()
}

/// Scratch path helper for callers that need the IPAM store of a side.
pub fn store_dir(lane: &Lane) -> PathBuf {
    lane.ipam_dir().join(cni::NET)
}

/// Size of a file in MB, if it exists.
pub fn size_mb(path: &Path) -> Option<f64> {
    std::fs::metadata(path).ok().map(|m| m.len() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_scripts_stay_in_test_ranges() {
        for kind in [Kind::Ptp, Kind::Dual, Kind::Bridge] {
            let (host, inner) = floor_scripts(kind, "tb-1-ptp-fc0");
            assert!(host.starts_with("link add tbveth0 type veth peer name eth0 netns tb-1-ptp-fc0\n"));
            for word in host.split_whitespace().chain(inner.split_whitespace()) {
                if let Ok(net) = word.split('/').next().unwrap_or("").parse::<IpAddr>() {
                    let ok = match net {
                        IpAddr::V4(v4) => v4.octets()[0] == 198 && (v4.octets()[1] & 0xfe) == 18,
                        IpAddr::V6(v6) => v6.segments()[0] == 0xfd7e && v6.segments()[1] == 0x7e7e,
                    };
                    assert!(ok, "{word} outside the test ranges");
                }
            }
        }
        assert_eq!(order(3, 1), vec![1, 2, 0]);
        assert_eq!(order(2, 2), vec![0, 1]);
    }
}
