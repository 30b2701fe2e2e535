//! Running a CNI plugin binary the way a runtime does: inside the node namespace, with a clean
//! environment holding only the `CNI_*` variables (plus `PATH`), the config on stdin, stdout and
//! stderr captured separately, and a timeout.

use crate::bins;
use crate::cmd::{self, Run};
use crate::netns::Netns;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// `PATH` handed to plugins (runtimes pass their own environment on; plugins may exec helpers).
pub const PLUGIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables from the test's own environment that are passed through to plugins (debugging).
const PASS_THROUGH: [&str; 3] = ["TETHER_LOG", "TETHER_LOG_FILE", "RUST_BACKTRACE"];

/// A plugin binary and where to run it.
#[derive(Debug, Clone)]
pub struct Plugin {
    binary: PathBuf,
    /// The node namespace to run in; `None` runs directly in the test's own namespace (only for
    /// tests that create nothing, e.g. argument validation).
    node: Option<String>,
    cni_path: String,
    extra_env: Vec<(String, String)>,
    timeout: Duration,
    /// Run as this user, without capabilities (through `setpriv`): fault injection, e.g. a link
    /// deletion the kernel refuses.
    unprivileged_uid: Option<u32>,
}

/// One invocation's `CNI_*` environment. Fields left `None` are not set at all.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Option<String>,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`.
    pub args: Option<String>,
    /// `CNI_PATH`; `None` means the harness default ([`bins::cni_path`]).
    pub path: Option<String>,
}

impl Invocation {
    /// A per-attachment invocation (ADD, DEL, CHECK) for `container` / `ifname`.
    pub fn attachment(command: &str, container: &Netns, ifname: &str) -> Invocation {
        Invocation {
            command: Some(command.to_string()),
            container_id: Some(container.name().to_string()),
            netns: Some(container.path_str()),
            ifname: Some(ifname.to_string()),
            ..Invocation::default()
        }
    }

    /// A network-wide invocation (STATUS, GC, VERSION) as libcni 1.3 makes it: `CNI_COMMAND`,
    /// `CNI_PATH`, and the per-attachment variables set but empty.
    pub fn network(command: &str) -> Invocation {
        let empty = || Some(String::new());
        Invocation {
            command: Some(command.to_string()),
            container_id: empty(),
            netns: empty(),
            ifname: empty(),
            args: empty(),
            path: None,
        }
    }

    /// Set `CNI_ARGS`.
    pub fn with_args(mut self, args: &str) -> Invocation {
        self.args = Some(args.to_string());
        self
    }

    /// Drop `CNI_NETNS`.
    pub fn without_netns(mut self) -> Invocation {
        self.netns = None;
        self
    }
}

/// What a plugin invocation did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The process run (command, env, stdin, status, stdout, stderr).
    pub run: Run,
    /// stdout parsed as one JSON document, when non-empty and valid.
    pub json: Option<Value>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.run.fmt(f)
    }
}

impl Outcome {
    /// Exit code (`None` if killed).
    pub fn code(&self) -> Option<i32> {
        self.run.code()
    }

    /// Exit 0.
    pub fn success(&self) -> bool {
        self.run.success()
    }

    /// The CNI error code in the error object on stdout, if there is one.
    pub fn error_code(&self) -> Option<u64> {
        self.json.as_ref()?.get("code")?.as_u64()
    }

    /// The error message (`msg` and `details`), empty if none.
    pub fn error_text(&self) -> String {
        let Some(doc) = &self.json else { return String::new() };
        let msg = doc["msg"].as_str().unwrap_or("");
        match doc["details"].as_str() {
            Some(d) if !d.is_empty() => format!("{msg}: {d}"),
            _ => msg.to_string(),
        }
    }

    /// Panic (with everything) unless the plugin exited 0 and stdout was empty or one JSON document.
    #[track_caller]
    pub fn assert_ok(&self) -> &Outcome {
        if !self.success() {
            panic!("plugin failed, expected success:\n{self}");
        }
        if !self.run.stdout.trim().is_empty() && self.json.is_none() {
            panic!("plugin succeeded but stdout is not one JSON document:\n{self}");
        }
        self
    }

    /// Panic unless the plugin exited 0 with nothing on stdout (DEL, CHECK, STATUS, GC).
    #[track_caller]
    pub fn assert_ok_silent(&self) -> &Outcome {
        self.assert_ok();
        if !self.run.stdout.trim().is_empty() {
            panic!("plugin succeeded but printed something (expected nothing):\n{self}");
        }
        self
    }

    /// The result document of a successful ADD (panics otherwise).
    #[track_caller]
    pub fn result(&self) -> &Value {
        self.assert_ok();
        match &self.json {
            Some(v) => v,
            None => panic!("plugin succeeded but printed no result:\n{self}"),
        }
    }

    /// Panic unless the invocation failed the CNI way: non-zero exit, stdout exactly one JSON
    /// error object with `code` and `msg`, no panic or backtrace on stderr. Returns the code.
    #[track_caller]
    pub fn assert_error(&self) -> u64 {
        if self.success() {
            panic!("plugin succeeded, expected an error:\n{self}");
        }
        if self.run.timed_out || self.code().is_none() {
            panic!("plugin did not exit by itself:\n{self}");
        }
        let Some(doc) = &self.json else {
            panic!("plugin failed without exactly one JSON document on stdout:\n{self}");
        };
        let Some(code) = doc.get("code").and_then(Value::as_u64) else {
            panic!("error object has no numeric code:\n{self}");
        };
        if !doc.get("msg").is_some_and(Value::is_string) {
            panic!("error object has no msg:\n{self}");
        }
        assert_no_panic(&self.run);
        code
    }

    /// [`Outcome::assert_error`] and the code must be `code`.
    #[track_caller]
    pub fn assert_code(&self, code: u64) -> &Outcome {
        let got = self.assert_error();
        if got != code {
            panic!("expected error code {code}, got {got}:\n{self}");
        }
        self
    }
}

/// Panic when stderr shows a Rust panic or a backtrace.
#[track_caller]
pub fn assert_no_panic(run: &Run) {
    for needle in ["panicked", "stack backtrace", "RUST_BACKTRACE"] {
        if run.stderr.contains(needle) {
            panic!("stderr shows a panic ({needle:?}):\n{run}");
        }
    }
}

/// Parse stdout as exactly one JSON document (`None` if empty or not exactly one document).
pub fn parse_one_document(stdout: &str) -> Option<Value> {
    if stdout.trim().is_empty() {
        return None;
    }
    let mut stream = serde_json::Deserializer::from_str(stdout).into_iter::<Value>();
    let first = stream.next()?.ok()?;
    match stream.next() {
        None => Some(first),
        Some(_) => None,
    }
}

impl Plugin {
    /// Any binary, run inside `node`.
    pub fn new(binary: PathBuf, node: &Netns) -> Plugin {
        Plugin {
            binary,
            node: Some(node.name().to_string()),
            cni_path: bins::cni_path(),
            extra_env: Vec::new(),
            timeout: cmd::DEFAULT_TIMEOUT,
            unprivileged_uid: None,
        }
    }

    /// `tether` inside `node`.
    pub fn tether(node: &Netns) -> Plugin {
        Plugin::new(bins::tether(), node)
    }

    /// `tether-ipam` inside `node`.
    pub fn tether_ipam(node: &Netns) -> Plugin {
        Plugin::new(bins::tether_ipam(), node)
    }

    /// A reference plugin from `/usr/lib/cni` inside `node` (panics if it is not installed).
    pub fn reference(name: &str, node: &Netns) -> Plugin {
        let path = bins::reference(name).unwrap_or_else(|| {
            panic!("{}/{name} missing: apt-get install containernetworking-plugins", bins::REFERENCE_DIR)
        });
        Plugin::new(path, node)
    }

    /// A binary run directly, in the test's own namespace: only for invocations that are rejected
    /// before touching any network state (argument validation, VERSION).
    pub fn direct(binary: PathBuf) -> Plugin {
        Plugin {
            binary,
            node: None,
            cni_path: bins::cni_path(),
            extra_env: Vec::new(),
            timeout: cmd::DEFAULT_TIMEOUT,
            unprivileged_uid: None,
        }
    }

    /// Add an environment variable to every invocation.
    pub fn env(mut self, key: &str, value: &str) -> Plugin {
        self.extra_env.push((key.to_string(), value.to_string()));
        self
    }

    /// Run as `uid` (and its gid), which leaves the plugin without capabilities: every netlink
    /// or nftables change fails with EPERM, files follow ordinary permissions.
    pub fn unprivileged(mut self, uid: u32) -> Plugin {
        self.unprivileged_uid = Some(uid);
        self
    }

    /// Override the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Plugin {
        self.timeout = timeout;
        self
    }

    /// The binary path.
    pub fn binary(&self) -> &PathBuf {
        &self.binary
    }

    /// Run with exactly these environment variables (plus `PATH` and the debugging pass-through)
    /// and `stdin`.
    pub fn run_env(&self, env: &[(&str, &str)], stdin: &str) -> Outcome {
        let mut vars: Vec<(String, String)> = vec![("PATH".to_string(), PLUGIN_PATH.to_string())];
        for key in PASS_THROUGH {
            if let Ok(v) = std::env::var(key) {
                vars.push((key.to_string(), v));
            }
        }
        vars.extend(self.extra_env.iter().cloned());
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // Later settings win (the invocation over extra env over pass-through); keep one of each.
        let mut seen = std::collections::HashSet::new();
        let mut deduped: Vec<(String, String)> =
            vars.into_iter().rev().filter(|(k, _)| seen.insert(k.clone())).collect();
        deduped.reverse();
        let vars = deduped;
        let binary = self.binary.display().to_string();
        let command = match &self.node {
            Some(node) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", node, "env", "-i"]);
                c.args(vars.iter().map(|(k, v)| format!("{k}={v}")));
                if let Some(uid) = self.unprivileged_uid {
                    c.args(["setpriv", &format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups"]);
                }
                c.arg(&binary);
                c
            }
            None => {
                let mut c = Command::new(&binary);
                c.env_clear().envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                c
            }
        };
        // In a namespace the variables are on the `env -i` command line already.
        let shown = if self.node.is_some() { Vec::new() } else { vars };
        let run = cmd::run(command, shown, stdin, self.timeout);
        let json = parse_one_document(&run.stdout);
        Outcome { run, json }
    }

    /// Run an invocation with `conf` on stdin.
    pub fn invoke(&self, inv: &Invocation, conf: &Value) -> Outcome {
        self.invoke_raw(inv, &conf.to_string())
    }

    /// Run an invocation with arbitrary stdin.
    pub fn invoke_raw(&self, inv: &Invocation, stdin: &str) -> Outcome {
        let path = inv.path.clone().unwrap_or_else(|| self.cni_path.clone());
        let mut env: Vec<(&str, &str)> = Vec::new();
        let pairs = [
            ("CNI_COMMAND", inv.command.as_deref()),
            ("CNI_CONTAINERID", inv.container_id.as_deref()),
            ("CNI_NETNS", inv.netns.as_deref()),
            ("CNI_IFNAME", inv.ifname.as_deref()),
            ("CNI_ARGS", inv.args.as_deref()),
            ("CNI_PATH", Some(path.as_str())),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                env.push((k, v));
            }
        }
        self.run_env(&env, stdin)
    }

    /// ADD `container`/`ifname` with `conf`.
    pub fn add(&self, conf: &Value, container: &Netns, ifname: &str) -> Outcome {
        self.invoke(&Invocation::attachment("ADD", container, ifname), conf)
    }

    /// DEL `container`/`ifname` with `conf` (add `prevResult` to `conf` with [`crate::config::with_prev`]).
    pub fn del(&self, conf: &Value, container: &Netns, ifname: &str) -> Outcome {
        self.invoke(&Invocation::attachment("DEL", container, ifname), conf)
    }

    /// CHECK `container`/`ifname` with `conf` (which should carry `prevResult`).
    pub fn check(&self, conf: &Value, container: &Netns, ifname: &str) -> Outcome {
        self.invoke(&Invocation::attachment("CHECK", container, ifname), conf)
    }

    /// STATUS with `conf`.
    pub fn status(&self, conf: &Value) -> Outcome {
        self.invoke(&Invocation::network("STATUS"), conf)
    }

    /// GC with `conf` (which should carry `cni.dev/valid-attachments`).
    pub fn gc(&self, conf: &Value) -> Outcome {
        self.invoke(&Invocation::network("GC"), conf)
    }

    /// DEL by container ID alone, without `CNI_NETNS` (the netns is gone or unknown).
    pub fn del_without_netns(&self, conf: &Value, container_id: &str, ifname: &str) -> Outcome {
        let inv = Invocation {
            command: Some("DEL".to_string()),
            container_id: Some(container_id.to_string()),
            ifname: Some(ifname.to_string()),
            ..Invocation::default()
        };
        self.invoke(&inv, conf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_document_exactly() {
        assert_eq!(parse_one_document("{\"a\":1}\n"), Some(serde_json::json!({"a": 1})));
        assert_eq!(parse_one_document(""), None);
        assert_eq!(parse_one_document("  \n"), None);
        assert_eq!(parse_one_document("{\"a\":1}{\"b\":2}"), None);
        assert_eq!(parse_one_document("{\"a\":1}\n{\"b\":2}\n"), None);
        assert_eq!(parse_one_document("{\"a\":1} trailing"), None);
        assert_eq!(parse_one_document("{\"a\":"), None);
    }
}
