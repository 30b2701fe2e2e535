//! Helpers for driving `tether-ipam` (and the reference `host-local`) as a runtime does: the
//! `CNI_*` environment, the configuration on stdin, one JSON document (or nothing) on stdout.
//! Every test gets its own data directory under the system temp dir, removed on drop. No root,
//! no network namespace: IPAM touches neither.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const TETHER_IPAM: &str = env!("CARGO_BIN_EXE_tether-ipam");
pub const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

/// A private data directory, removed on drop.
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new(test: &str) -> DataDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("tether-ipam-it-{}-{n}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        DataDir(p)
    }

    /// The store directory of network `net`.
    pub fn store(&self, net: &str) -> PathBuf {
        self.0.join(net)
    }

    /// Names of the reservation files in the store of `net` (sorted).
    pub fn reservations(&self, net: &str) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.store(net)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// The content of a file of the store of `net`.
    pub fn read(&self, net: &str, name: &str) -> String {
        std::fs::read_to_string(self.store(net).join(name)).unwrap()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network configuration with the given `ipam` object (the data dir is filled in).
pub fn conf(version: &str, net: &str, dir: &Path, mut ipam: Value) -> Value {
    ipam["type"] = json!("tether-ipam");
    ipam["dataDir"] = json!(dir);
    json!({"cniVersion": version, "name": net, "type": "tether", "ipam": ipam})
}

/// The usual single IPv4 network.
pub fn v4(dir: &Path, net: &str, subnet: &str) -> Value {
    conf("1.0.0", net, dir, json!({"ranges": [[{"subnet": subnet}]]}))
}

/// What one invocation answered.
#[derive(Debug)]
pub struct Reply {
    pub ok: bool,
    pub doc: Option<Value>,
    pub stderr: String,
}

impl Reply {
    pub fn code(&self) -> Option<u64> {
        self.doc.as_ref().and_then(|d| d["code"].as_u64())
    }
    pub fn msg(&self) -> String {
        self.doc.as_ref().and_then(|d| d["msg"].as_str()).unwrap_or_default().to_string()
    }
    /// The addresses of a success result (1.0.0 layout), without prefixes.
    pub fn ips(&self) -> Vec<String> {
        let doc = self.doc.as_ref().expect("a result");
        doc["ips"]
            .as_array()
            .expect("ips")
            .iter()
            .map(|i| i["address"].as_str().unwrap().split('/').next().unwrap().to_string())
            .collect()
    }
}

/// Start `plugin` for `command` and attachment `(id, ifname)` as a runtime does (environment,
/// `conf` on stdin), with stdout and stderr piped.
pub fn spawn(plugin: &str, command: &str, id: &str, ifname: &str, conf: &Value, extra: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(plugin);
    cmd.env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !id.is_empty() {
        cmd.env("CNI_CONTAINERID", id).env("CNI_IFNAME", ifname).env("CNI_NETNS", "/var/run/netns/tether-ipam-test");
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
    child
}

/// One invocation of `plugin` (see [`spawn`]), run to its end.
pub fn invoke(plugin: &str, command: &str, id: &str, ifname: &str, conf: &Value, extra: &[(&str, &str)]) -> Reply {
    let out = spawn(plugin, command, id, ifname, conf, extra).wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let doc = (!stdout.trim().is_empty()).then(|| serde_json::from_str(&stdout).expect("stdout is one JSON document"));
    Reply { ok: out.status.success(), doc, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

pub fn add(plugin: &str, id: &str, conf: &Value) -> Reply {
    invoke(plugin, "ADD", id, "eth0", conf, &[])
}

pub fn del(plugin: &str, id: &str, conf: &Value) -> Reply {
    invoke(plugin, "DEL", id, "eth0", conf, &[])
}

/// The reference plugin, or `None` (after saying so) when it is not installed. Under `CI` (set,
/// and neither `false` nor `0`, as the tests crate's gate reads it) a missing reference is a
/// failure.
pub fn host_local() -> Option<&'static str> {
    if Path::new(HOST_LOCAL).exists() {
        return Some(HOST_LOCAL);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"));
    assert!(!ci, "{HOST_LOCAL} is missing (install containernetworking-plugins)");
    eprintln!("SKIPPED: {HOST_LOCAL} is missing (install containernetworking-plugins)");
    None
}

/// Every file under `dir` with its content and modification time.
pub fn snapshot_tree(dir: &std::path::Path) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            }
            let content = if meta.is_file() { std::fs::read(e.path()).unwrap() } else { Vec::new() };
            out.push((e.path().display().to_string(), content, meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}
