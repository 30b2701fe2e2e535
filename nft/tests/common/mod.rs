//! Root test support: throwaway network namespaces, running code on a thread inside one, and inspecting the
//! ruleset with `nft` inside it. Nothing here touches the machine's own network namespace.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::AsFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{setns, CloneFlags};

/// True when the test can run. Without root, `ip` or `nft`: fails when `CI` is set, else prints SKIPPED.
pub fn can_run(test: &str) -> bool {
    let missing = if !nix::unistd::geteuid().is_root() {
        Some("not root".to_string())
    } else {
        ["ip", "nft", "ping"]
            .iter()
            .find(|tool| Command::new(tool).arg("-V").output().is_err())
            .map(|tool| format!("{tool} not installed"))
    };
    match missing {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("{test}: cannot run under CI: {why}"),
        Some(why) => {
            eprintln!("SKIPPED: {test}: {why}");
            false
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("tether-nfttest-{}-{n}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Run `f` on a new thread that has entered this namespace; the calling thread is untouched.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).unwrap();
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// `ip -n <ns> args...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full);
    }

    /// A command inside the namespace (`ip netns exec`); its output, whatever the exit status.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(cmd);
        Command::new("ip").args(&full).output().unwrap()
    }

    /// `nft -j list ruleset` inside the namespace.
    pub fn ruleset(&self) -> serde_json::Value {
        let out = self.exec(&["nft", "-j", "list", "ruleset"]);
        assert!(out.status.success(), "nft -j list ruleset: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `nft list ruleset` inside the namespace, as text.
    pub fn ruleset_text(&self) -> String {
        let out = self.exec(&["nft", "list", "ruleset"]);
        assert!(out.status.success(), "nft list ruleset: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// One ping from this namespace; true if answered.
    pub fn ping(&self, dst: &str) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "1", "-q", dst]).status.success()
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        let out = self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
        assert!(out.status.success(), "sysctl {key}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Run a command that must succeed.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The objects of kind `kind` ("table", "chain", "set", "rule") in `nft -j` output.
pub fn objects<'a>(ruleset: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    ruleset["nftables"].as_array().unwrap().iter().filter_map(|o| o.get(kind)).collect()
}

/// The set `name` in table `table` of `nft -j` output.
pub fn set<'a>(ruleset: &'a serde_json::Value, table: &str, name: &str) -> Option<&'a serde_json::Value> {
    objects(ruleset, "set").into_iter().find(|s| s["table"] == table && s["name"] == name)
}

/// A session of its own, in the calling thread's network namespace.
pub fn session() -> nft::Session {
    nft::Session::open().unwrap()
}
