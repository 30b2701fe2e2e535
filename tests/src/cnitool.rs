//! Driving the real binaries through `cnitool` (libcni), the way a runtime does: a conflist in a
//! directory (`NETCONFPATH`), `CNI_PATH`, and `cnitool <verb> <net> <netns path>`, run inside the
//! node namespace. cnitool derives the container ID from the netns path and caches results
//! (libcni's default cache dir), so CHECK and DEL get `prevResult` from ADD.

use crate::bins;
use crate::cmd::{self, Run};
use crate::gate;
use crate::netns::{Netns, TempDir};
use crate::plugin::PLUGIN_PATH;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// cnitool's path: `$CNITOOL`, else `<repo>/.cache/bin/cnitool` (built by `scripts/build-cnitool`).
pub fn cnitool_path() -> Option<PathBuf> {
    let path = match std::env::var_os("CNITOOL").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => bins::repo_root().join(".cache/bin/cnitool"),
    };
    path.is_file().then_some(path)
}

/// cnitool, or skip (fail under CI) when it is missing.
#[track_caller]
pub fn require_cnitool() -> Option<PathBuf> {
    let path = cnitool_path();
    if path.is_none() {
        gate::skip_or_fail("cnitool (run scripts/build-cnitool or set CNITOOL)");
    }
    path
}

/// A cnitool bound to one node and one network (a conflist file in a private directory).
#[derive(Debug)]
pub struct Cnitool {
    path: PathBuf,
    node: String,
    net: String,
    conf_dir: TempDir,
    /// (netns path, ifname) of every `add`, for clean-up when a test fails half-way.
    added: std::sync::Mutex<Vec<(PathBuf, String)>>,
}

impl Cnitool {
    /// Write `conflist` (its `name` is the network) into a fresh directory; run in `node`.
    #[track_caller]
    pub fn new(path: PathBuf, node: &Netns, conflist: &Value) -> Cnitool {
        let net = conflist["name"].as_str().unwrap_or_else(|| panic!("conflist without name: {conflist}")).to_string();
        let conf_dir = TempDir::new("netconf");
        let file = conf_dir.path().join(format!("10-{net}.conflist"));
        std::fs::write(&file, serde_json::to_string_pretty(conflist).unwrap_or_default())
            .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        Cnitool { path, node: node.name().to_string(), net, conf_dir, added: std::sync::Mutex::new(Vec::new()) }
    }

    /// Does this cnitool know `verb`? (Debian's 1.1.2 has add, check and del; STATUS and GC came
    /// with libcni 1.2.)
    pub fn supports(&self, verb: &str) -> bool {
        let run = cmd::tool(&self.path.display().to_string(), &[]);
        run.stderr.lines().any(|l| l.split_whitespace().nth(1) == Some(verb))
    }

    /// `cnitool <verb> <net> <container netns path>` inside the node, with `CNI_IFNAME=ifname`.
    pub fn run(&self, verb: &str, container: &Netns, ifname: &str) -> Run {
        if verb == "add" {
            if let Ok(mut added) = self.added.lock() {
                added.push((container.path(), ifname.to_string()));
            }
        }
        self.run_path(verb, &container.path(), ifname)
    }

    fn run_path(&self, verb: &str, netns: &std::path::Path, ifname: &str) -> Run {
        let vars = vec![
            ("PATH".to_string(), PLUGIN_PATH.to_string()),
            ("NETCONFPATH".to_string(), self.conf_dir.path().display().to_string()),
            ("CNI_PATH".to_string(), bins::cni_path()),
            ("CNI_IFNAME".to_string(), ifname.to_string()),
        ];
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.node, "env", "-i"]);
        c.args(vars.iter().map(|(k, v)| format!("{k}={v}")));
        c.arg(&self.path).args([verb, self.net.as_str()]).arg(netns);
        cmd::run(c, vars, "", cmd::DEFAULT_TIMEOUT)
    }

    /// `cnitool add`, panicking on failure; returns the printed result.
    #[track_caller]
    pub fn add(&self, container: &Netns, ifname: &str) -> Value {
        let run = self.run("add", container, ifname);
        run.assert_success();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("cnitool add printed no JSON result ({e}):\n{run}"))
    }
}

impl Drop for Cnitool {
    /// A test that failed half-way still DELs what it added, so libcni's result cache (under
    /// /var/lib/cni) and the IPAM state do not outlive it.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let added = self.added.lock().map(|a| a.clone()).unwrap_or_default();
        for (netns, ifname) in added {
            let _ = self.run_path("del", &netns, &ifname);
        }
    }
}
