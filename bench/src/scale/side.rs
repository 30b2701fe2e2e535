//! One side of the node-scale scenario: a node namespace in the box with a driver thread inside it,
//! its container namespaces, and the invocations that attach and detach containers (a plugin, or
//! the `ip -batch` floor).

use crate::cni::{self, Kind, Side, BRIDGE, IFNAME};
use crate::driver::Driver;
use crate::lane::{Attempt, Ctx};
use crate::nsbox::{NsBox, View};
use crate::runner::{self, Outcome, Spawn, Status};
use nix::sched::{setns, CloneFlags};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Per-invocation timeout (a reference DEL on a loaded 1,000-port node takes well under a second).
const TIMEOUT: Duration = Duration::from_secs(60);

/// A container attached by a side: what DEL and CHECK need.
#[derive(Debug, Clone)]
pub struct Attached {
    pub ctr: usize,
    pub id: String,
    pub result: Value,
}

pub struct NodeSide {
    /// This side's view of the box: its own `/proc`, as on a machine of its own.
    view: View,
    /// Lives in the view, in this side's node namespace.
    driver: Driver,
    /// The node namespace, for the driver to come back to after a spawn inside a container.
    node: Arc<File>,
    node_path: PathBuf,
    pub side: Side,
    pub kind: Kind,
    ctrs: Vec<PathBuf>,
    program: PathBuf,
    conf: Value,
    cni_path: PathBuf,
    dir: PathBuf,
    ip: PathBuf,
    key: String,
    /// The background attachments (B of them once grown).
    pub live: Vec<Attached>,
    /// Why this side stopped, if it did.
    pub error: Option<String>,
}

/// The floor's address for container `ctr` (198.18.0.2 upwards; .1 is the gateway).
fn floor_ip(ctr: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 2)) + ctr as u32)
}

/// The floor's node end for container `ctr`.
fn floor_veth(ctr: usize) -> String {
    format!("tbv{ctr}")
}

/// The floor's `ip -batch` scripts (node namespace, container namespace) for container `ctr`:
/// the kernel work tether's ADD asks for, in tether's order (the pair created with its peer in the
/// container, the node end up and, for bridge, already enslaved, in one request).
pub fn floor_scripts(kind: Kind, ctr: usize, ctr_name: &str) -> (String, String) {
    let (veth, ip) = (floor_veth(ctr), floor_ip(ctr));
    if kind == Kind::Bridge {
        let host = format!("link add {veth} master {BRIDGE} up type veth peer name {IFNAME} netns {ctr_name}\n");
        let inner = format!(
            "address add {ip}/16 dev {IFNAME}\nlink set {IFNAME} up\nroute add default via 198.18.0.1 dev {IFNAME}\n"
        );
        return (host, inner);
    }
    let host = format!(
        "link add {veth} up type veth peer name {IFNAME} netns {ctr_name}\naddress add 198.18.0.1/32 dev {veth}\n\
         route add {ip}/32 dev {veth} scope host\n"
    );
    let inner = format!(
        "address add {ip}/16 dev {IFNAME} noprefixroute\nlink set {IFNAME} up\n\
         route add 198.18.0.1/32 dev {IFNAME} scope link src {ip}\n\
         route add 198.18.0.0/16 via 198.18.0.1 dev {IFNAME} src {ip}\nroute add default via 198.18.0.1 dev {IFNAME}\n"
    );
    (host, inner)
}

fn path_env() -> Vec<(String, String)> {
    vec![("PATH".into(), cni::SYSTEM_PATH.into())]
}

fn attempt(out: &Outcome, result: Value) -> Attempt {
    Attempt { elapsed: out.elapsed, cpu: out.cpu, result, rss_kib: None }
}

impl NodeSide {
    /// Namespaces `<tag>-s<kind>-<side>n` (node) and `...c<k>`, `containers` of them, in `nsbox`.
    pub fn new(ctx: &Ctx, nsbox: &NsBox, kind: Kind, side: Side, containers: usize) -> Result<NodeSide, String> {
        let base = format!("{}-s{}-{}", ctx.tag, &kind.key()[..1], side.letter());
        let key = format!("scale-{}", kind.key());
        let dir = ctx.run_dir.join(format!("{key}-{}", side.letter()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut names = vec![format!("{base}n")];
        names.extend((0..containers).map(|k| format!("{base}c{k}")));
        let mut paths = nsbox.create(&names)?;
        let node_path = paths.remove(0);
        let view = nsbox.view()?;
        let driver = Driver::start(&format!("{base}n"), view.enter(&node_path))?;
        let open = node_path.clone();
        let node = driver.call(move || File::open(&open).map_err(|e| format!("opening {}: {e}", open.display())))??;
        let (program, cni_path) = match side {
            Side::Tether => (ctx.tether_dir.join("tether"), ctx.tether_dir.clone()),
            Side::Reference => (ctx.ref_dir.join(kind.reference_type()), ctx.ref_dir.clone()),
            Side::Floor => (ctx.ip.clone(), ctx.ref_dir.clone()),
        };
        let mut conf = cni::netconf(side, kind, &dir.join("ipam"));
        conf["ipMasq"] = json!(true);
        let lane = NodeSide {
            view,
            driver,
            node: Arc::new(node),
            node_path,
            side,
            kind,
            ctrs: paths,
            program,
            conf,
            cni_path,
            dir,
            ip: ctx.ip.clone(),
            key,
            live: Vec::new(),
            error: None,
        };
        if side == Side::Floor && kind == Kind::Bridge {
            let setup = crate::lane::floor_bridge_setup();
            lane.expect_ok(lane.run_node(lane.ip_spawn(vec!["-batch".into(), "-".into()], setup.into_bytes())))
                .map_err(|e| format!("floor bridge setup: {e}"))?;
        }
        Ok(lane)
    }

    /// The container namespace that stays free for the measured cycles.
    pub fn cycle_ctr(&self) -> usize {
        self.ctrs.len() - 1
    }

    pub fn container_id(&self, ctr: usize, round: usize) -> String {
        cni::container_id(&self.key, self.side, round, ctr)
    }

    fn spawn(&self, program: &Path, args: Vec<String>, env: Vec<(String, String)>, stdin: Vec<u8>) -> Spawn {
        Spawn {
            program: program.to_path_buf(),
            args,
            env,
            stdin,
            stderr_file: self.dir.join("stderr"),
            rss_file: None,
            timeout: TIMEOUT,
        }
    }

    fn ip_spawn(&self, args: Vec<String>, stdin: Vec<u8>) -> Spawn {
        self.spawn(&self.ip, args, path_env(), stdin)
    }

    fn cni_spawn(&self, verb: &str, ctr: usize, id: &str, prev: Option<&Value>) -> Spawn {
        let stdin = match prev {
            Some(prev) => cni::with_prev_result(&self.conf, prev),
            None => self.conf.clone(),
        };
        let env = cni::env(verb, id, &self.ctrs[ctr], &self.cni_path);
        self.spawn(&self.program, Vec::new(), env, serde_json::to_vec(&stdin).unwrap_or_default())
    }

    fn failed(why: String) -> Outcome {
        Outcome {
            elapsed: Duration::ZERO,
            status: Status::Failed(why),
            stdout: Vec::new(),
            stderr: String::new(),
            cpu: Duration::ZERO,
            rss_kib: None,
        }
    }

    /// Spawn from the node namespace and wait.
    fn run_node(&self, spawn: Spawn) -> Outcome {
        match self.driver.call(move || runner::run_batch(std::slice::from_ref(&spawn)).0.pop()) {
            Ok(Some(out)) => out,
            Ok(None) => Self::failed("no outcome".into()),
            Err(e) => Self::failed(e),
        }
    }

    /// Spawn from inside container namespace `ctr` (the driver switches in for the spawn, then back).
    fn run_ctr(&self, ctr: usize, spawn: Spawn) -> Outcome {
        let (path, node) = (self.ctrs[ctr].clone(), self.node.clone());
        let job = move || {
            let fd = File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
            setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns into {}: {e}", path.display()))?;
            let out = runner::run_batch(std::slice::from_ref(&spawn)).0.pop();
            // The driver must never stay in the container: if it cannot go back, it stops serving.
            setns(node.as_ref(), CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns back to the node: {e}"))?;
            out.ok_or_else(|| "no outcome".to_string())
        };
        match self.driver.call(job) {
            Ok(Ok(out)) => out,
            Ok(Err(e)) | Err(e) => Self::failed(e),
        }
    }

    fn expect_ok(&self, out: Outcome) -> Result<Outcome, String> {
        out.ok().map(|_| out)
    }

    /// Attach container namespace `ctr` (plugin ADD, or the floor's two `ip -batch`).
    pub fn attach(&self, ctr: usize, round: usize) -> Result<(Attempt, Attached), String> {
        let id = self.container_id(ctr, round);
        let a = if self.side == Side::Floor {
            let name = self.ctrs[ctr].file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let (host, inner) = floor_scripts(self.kind, ctr, &name);
            let batch = || vec!["-batch".to_string(), "-".to_string()];
            let h = self.expect_ok(self.run_node(self.ip_spawn(batch(), host.into_bytes())))?;
            let c = self.expect_ok(self.run_ctr(ctr, self.ip_spawn(batch(), inner.into_bytes())))?;
            let ips = json!({ "ips": [{ "address": format!("{}/16", floor_ip(ctr)) }] });
            Attempt { elapsed: h.elapsed + c.elapsed, cpu: h.cpu + c.cpu, result: ips, rss_kib: None }
        } else {
            let out = self.run_node(self.cni_spawn("ADD", ctr, &id, None));
            let result = cni::parse_answer(&out.stdout, out.ok())?;
            if cni::result_ips(&result).is_empty() {
                return Err(format!("ADD result has no IPs: {result}"));
            }
            attempt(&out, result)
        };
        let attached = Attached { ctr, id, result: a.result.clone() };
        Ok((a, attached))
    }

    /// CHECK (plugins only).
    pub fn check(&self, att: &Attached) -> Result<Attempt, String> {
        let out = self.run_node(self.cni_spawn("CHECK", att.ctr, &att.id, Some(&att.result)));
        cni::parse_answer(&out.stdout, out.ok())?;
        Ok(attempt(&out, Value::Null))
    }

    /// Detach: plugin DEL with `prevResult`; for the floor, `ip link del` of the node end from the node.
    pub fn detach(&self, att: &Attached) -> Result<Attempt, String> {
        if self.side == Side::Floor {
            let out = self.run_node(self.ip_spawn(vec!["link".into(), "del".into(), floor_veth(att.ctr)], Vec::new()));
            return self.expect_ok(out).map(|o| attempt(&o, Value::Null));
        }
        let out = self.run_node(self.cni_spawn("DEL", att.ctr, &att.id, Some(&att.result)));
        cni::parse_answer(&out.stdout, out.ok())?;
        Ok(attempt(&out, Value::Null))
    }

    /// The floor's other DEL: `ip link del eth0` of the container end, from inside the container.
    pub fn detach_from_container(&self, att: &Attached) -> Result<Attempt, String> {
        let out = self.run_ctr(att.ctr, self.ip_spawn(vec!["link".into(), "del".into(), IFNAME.into()], Vec::new()));
        self.expect_ok(out).map(|o| attempt(&o, Value::Null))
    }

    /// Spawn-to-exit of `program` (no arguments) from the node namespace.
    pub fn bare(&self, program: &Path) -> Result<Attempt, String> {
        let out = self.expect_ok(self.run_node(self.spawn(program, Vec::new(), path_env(), Vec::new())))?;
        Ok(attempt(&out, Value::Null))
    }

    /// Untimed: the veths in the node namespace (one node end per live attachment).
    pub fn node_veths(&self) -> Result<usize, String> {
        let args = ["-o", "link", "show", "type", "veth"].map(String::from).to_vec();
        let out = self.expect_ok(self.run_node(self.ip_spawn(args, Vec::new())))?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().count())
    }

    /// Untimed: every address of `result` is on eth0 in container namespace `ctr`.
    pub fn verify_attached(&self, ctr: usize, result: &Value) -> Result<(), String> {
        let args = ["-o", "addr", "show", "dev", IFNAME].map(String::from).to_vec();
        let out = self.expect_ok(self.run_ctr(ctr, self.ip_spawn(args, Vec::new())))?;
        let shown = String::from_utf8_lossy(&out.stdout);
        match cni::result_ips(result).iter().find(|ip| !shown.contains(&format!(" {ip}/"))) {
            Some(missing) => Err(format!("after ADD, {missing} is not on {IFNAME} in the container")),
            None => Ok(()),
        }
    }

    /// Untimed: eth0 is gone from container namespace `ctr`.
    pub fn verify_detached(&self, ctr: usize) -> Result<(), String> {
        let args = ["-o", "link", "show", "dev", IFNAME].map(String::from).to_vec();
        match self.run_ctr(ctr, self.ip_spawn(args, Vec::new())).ok() {
            Ok(()) => Err(format!("after DEL, {IFNAME} is still in the container")),
            Err(_) => Ok(()),
        }
    }

    /// ADD (`prev` = None) or DEL of many containers, `width` at a time, from `width` threads that
    /// each entered the node namespace before the clock starts. Returns the answers in order and the
    /// wall time from the first spawn to the last exit.
    pub fn pool(
        &self,
        jobs: &[(usize, String, Option<Value>)],
        width: usize,
    ) -> Result<(Vec<Result<Value, String>>, Duration), String> {
        let workers = (0..width.max(1))
            .map(|w| Driver::start(&format!("pool{w}"), self.view.enter(&self.node_path)))
            .collect::<Result<Vec<_>, _>>()?;
        let queue: VecDeque<(usize, Spawn)> = jobs
            .iter()
            .enumerate()
            .map(|(slot, (ctr, id, prev))| {
                let verb = if prev.is_some() { "DEL" } else { "ADD" };
                let mut spawn = self.cni_spawn(verb, *ctr, id, prev.as_ref());
                spawn.stderr_file = self.dir.join(format!("stderr.pool.{}", slot % width.max(1)));
                (slot, spawn)
            })
            .collect();
        let queue = Arc::new(Mutex::new(queue));
        let start = Instant::now();
        let running: Vec<_> = workers
            .iter()
            .map(|w| {
                let queue = queue.clone();
                w.post(move || {
                    let mut done = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                        let Some((slot, spawn)) = next else { break };
                        if crate::signals::stopped() {
                            break;
                        }
                        done.extend(runner::run_batch(std::slice::from_ref(&spawn)).0.pop().map(|o| (slot, o)));
                    }
                    done
                })
            })
            .collect();
        let mut answers: Vec<Result<Value, String>> = vec![Err("not run".into()); jobs.len()];
        for rx in running {
            for (slot, out) in rx.recv().unwrap_or_default() {
                answers[slot] = cni::parse_answer(&out.stdout, out.ok());
            }
        }
        let wall = start.elapsed();
        drop(workers);
        Ok((answers, wall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_addresses_and_scripts_stay_in_test_ranges() {
        assert_eq!(floor_ip(0), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(floor_ip(1000), Ipv4Addr::new(198, 18, 3, 234));
        let (host, inner) = floor_scripts(Kind::Bridge, 7, "tb-1-sb-fc7");
        assert_eq!(host, "link add tbv7 master tb-br0 up type veth peer name eth0 netns tb-1-sb-fc7\n");
        assert!(inner.starts_with("address add 198.18.0.9/16 dev eth0\n"));
        let (host, inner) = floor_scripts(Kind::Ptp, 7, "tb-1-sp-fc7");
        assert!(host.contains("route add 198.18.0.9/32 dev tbv7 scope host"));
        assert!(inner.contains("route add default via 198.18.0.1 dev eth0"));
    }
}
