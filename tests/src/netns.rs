//! Test-made network namespaces (`ip netns add`), removed on drop, and the "node" fixture.
//!
//! Nothing here touches the machine's own network namespace: every command either names a
//! namespace (`ip -n`, `ip netns exec`) or runs inside one.

use crate::cmd::{self, Run};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// Prefix of every namespace and temp dir the harness makes: `tt-<pid>-<n>-<tag>`.
pub const PREFIX: &str = "tt-";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process: `tt-<pid>-<n>-<tag>`.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{n}-{tag}", std::process::id())
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a harness-made name, if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Remove namespaces and temp dirs left by crashed runs (whose pid is gone). Once per process.
pub fn sweep_stale() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if owner_pid(&name).is_some_and(|pid| !pid_alive(pid)) {
                    eprintln!("harness: removing stale namespace {name}");
                    let _ = cmd::tool("ip", &["netns", "del", &name]);
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if owner_pid(&name).is_some_and(|pid| !pid_alive(pid)) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    });
}

/// A network namespace made by the test, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// `ip netns add tt-<pid>-<n>-<tag>` and bring `lo` up.
    #[track_caller]
    pub fn new(tag: &str) -> Netns {
        sweep_stale();
        let name = unique_name(tag);
        cmd::tool("ip", &["netns", "add", &name]).assert_success();
        let ns = Netns { name };
        ns.ip_ok(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, what runtimes pass as `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// [`Netns::path`] as a string.
    pub fn path_str(&self) -> String {
        self.path().display().to_string()
    }

    /// Run a program inside the namespace: `ip netns exec <name> <args...>`.
    pub fn exec(&self, args: &[&str]) -> Run {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        cmd::tool("ip", &full)
    }

    /// [`Netns::exec`], panicking with the full context on failure; returns stdout.
    #[track_caller]
    pub fn exec_ok(&self, args: &[&str]) -> String {
        self.exec(args).assert_success().stdout.clone()
    }

    /// `ip -n <name> <args...>`.
    pub fn ip(&self, args: &[&str]) -> Run {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        cmd::tool("ip", &full)
    }

    /// [`Netns::ip`], panicking on failure; returns stdout.
    #[track_caller]
    pub fn ip_ok(&self, args: &[&str]) -> String {
        self.ip(args).assert_success().stdout.clone()
    }

    /// `ip -j -n <name> <args...>` parsed (an empty answer is `[]`).
    #[track_caller]
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-j", "-d", "-n", self.name.as_str()];
        full.extend_from_slice(args);
        let run = cmd::tool("ip", &full);
        run.assert_success();
        if run.stdout.trim().is_empty() {
            return Value::Array(Vec::new());
        }
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("ip -j output is not JSON ({e}):\n{run}"))
    }

    /// All links (`ip -j -d link show`).
    #[track_caller]
    pub fn links(&self) -> Vec<Value> {
        self.ip_json(&["link", "show"]).as_array().cloned().unwrap_or_default()
    }

    /// The names of all links.
    #[track_caller]
    pub fn link_names(&self) -> BTreeSet<String> {
        self.links().iter().filter_map(|l| l["ifname"].as_str().map(str::to_string)).collect()
    }

    /// One link by name (`ip -j -d link show dev <name>`), `None` when absent.
    pub fn link(&self, ifname: &str) -> Option<Value> {
        let run = self.ip(&["-j", "-d", "link", "show", "dev", ifname]);
        if !run.success() {
            return None;
        }
        serde_json::from_str::<Value>(&run.stdout).ok()?.as_array()?.first().cloned()
    }

    /// Addresses on `ifname` as `addr/prefix`, scope global only (no link-local).
    #[track_caller]
    pub fn global_addrs(&self, ifname: &str) -> Vec<String> {
        global_addrs_of(&self.ip_json(&["addr", "show", "dev", ifname]))
    }

    /// Every global address in the namespace, as `addr/prefix`.
    #[track_caller]
    pub fn all_global_addrs(&self) -> Vec<String> {
        global_addrs_of(&self.ip_json(&["addr", "show"]))
    }

    /// Every IPv6 link-local address in the namespace (without prefix).
    #[track_caller]
    pub fn link_local_addrs(&self) -> Vec<String> {
        link_locals_of(&self.ip_json(&["-6", "addr", "show"]))
    }

    /// Routes of one family (`4` or `6`) in the main table, as JSON objects.
    #[track_caller]
    pub fn routes(&self, family: u8) -> Vec<Value> {
        let fam = if family == 6 { "-6" } else { "-4" };
        let mut full = vec!["-j", "-n", self.name.as_str(), fam, "route", "show"];
        full.extend_from_slice(&["table", "main"]);
        let run = cmd::tool("ip", &full);
        run.assert_success();
        serde_json::from_str::<Value>(&run.stdout).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
    }

    /// `ip route get <addr>`: the chosen route, or `None` when the kernel has none (unreachable).
    pub fn route_get(&self, addr: &str) -> Option<Value> {
        let run = self.ip(&["-j", "route", "get", addr]);
        if !run.success() {
            return None;
        }
        serde_json::from_str::<Value>(&run.stdout).ok()?.as_array()?.first().cloned()
    }

    /// One ping (`ping -c1 -W1`, `-4`/`-6` by address) from inside the namespace: true if answered.
    /// Only ever aim this at addresses inside namespaces the test made.
    pub fn ping(&self, addr: &str) -> bool {
        self.ping_run(addr, None).success()
    }

    /// Like [`Netns::ping`], from source address `src`; returns the full run for messages.
    pub fn ping_run(&self, addr: &str, src: Option<&str>) -> Run {
        let ip: IpAddr = addr.parse().unwrap_or_else(|e| panic!("ping target {addr:?} is not an address: {e}"));
        assert_test_address(ip);
        let fam = if ip.is_ipv6() { "-6" } else { "-4" };
        let mut args = vec!["ping", fam, "-n", "-q", "-c1", "-W1"];
        if let Some(src) = src {
            args.extend_from_slice(&["-I", src]);
        }
        args.push(addr);
        self.exec(&args)
    }

    /// `nft -j list ruleset` inside the namespace.
    #[track_caller]
    pub fn nft_ruleset(&self) -> Value {
        let run = self.exec(&["nft", "-j", "list", "ruleset"]);
        run.assert_success();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("nft -j output is not JSON ({e}):\n{run}"))
    }

    /// `nft list ruleset` as text (for messages and substring checks).
    #[track_caller]
    pub fn nft_text(&self) -> String {
        self.exec_ok(&["nft", "list", "ruleset"])
    }

    /// Read a sysctl inside the namespace (`/proc/sys/...` relative path with dots or slashes).
    #[track_caller]
    pub fn sysctl(&self, key: &str) -> String {
        self.exec_ok(&["sysctl", "-n", key]).trim().to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let run = cmd::tool("ip", &["netns", "del", &self.name]);
        if !run.success() && !std::thread::panicking() {
            eprintln!("harness: could not delete namespace {}:\n{run}", self.name);
        }
    }
}

/// Panic unless `ip` is in 198.18.0.0/15 or fd7e:7e7e::/32: tests never send anywhere else.
#[track_caller]
pub fn assert_test_address(ip: IpAddr) {
    let ok = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 198 && (o[1] & 0xfe) == 18
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            s[0] == 0xfd7e && s[1] == 0x7e7e
        }
    };
    assert!(ok, "{ip} is outside 198.18.0.0/15 and fd7e:7e7e::/32: tests must not send traffic there");
}

/// A temporary directory `$TMPDIR/tt-<pid>-<n>-<tag>`, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Create it.
    #[track_caller]
    pub fn new(tag: &str) -> TempDir {
        sweep_stale();
        let path = std::env::temp_dir().join(unique_name(tag));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The node: a namespace standing in for the host the runtime runs on (plugins run inside it),
/// plus a per-test scratch directory for IPAM `dataDir`s and config files.
#[derive(Debug)]
pub struct Node {
    /// The node's namespace.
    pub ns: Netns,
    /// Scratch directory, removed on drop.
    pub dir: TempDir,
}

impl Node {
    /// A fresh node.
    #[track_caller]
    pub fn new(tag: &str) -> Node {
        Node { ns: Netns::new(&format!("{tag}-n")), dir: TempDir::new(tag) }
    }

    /// The IPAM data directory for this test (created by the IPAM plugin on first use).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// A new container namespace for this test.
    #[track_caller]
    pub fn container(&self, tag: &str) -> Netns {
        Netns::new(tag)
    }

    /// Every file under the IPAM data dir (relative paths, sorted), the lock and the index included.
    pub fn ipam_files(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    out.insert(rel.display().to_string());
                }
            }
        }
        walk(&self.data_dir(), &self.data_dir(), &mut out);
        out
    }

    /// The reservation files: IPAM data files named after an address (host-local layout), i.e.
    /// `<network>/<ip>`; excludes `lock` and `last_reserved_ip.*`.
    pub fn reservations(&self) -> BTreeSet<String> {
        self.ipam_files()
            .into_iter()
            .filter(|f| {
                let file = f.rsplit('/').next().unwrap_or("");
                file.parse::<IpAddr>().is_ok()
            })
            .collect()
    }
}

impl std::ops::Deref for Node {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_addresses_only() {
        for ok in ["198.18.0.1", "198.19.255.254", "fd7e:7e7e::1", "fd7e:7e7e:ffff::2"] {
            assert_test_address(ok.parse().unwrap());
        }
        for bad in ["198.20.0.1", "198.17.255.255", "10.0.0.1", "8.8.8.8", "fd7e:7e7f::1", "2001:db8::1"] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(std::panic::catch_unwind(|| assert_test_address(ip)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn link_local_routes_are_not_node_state() {
        assert!(is_link_local_route("fe80::/64 dev veth1 proto kernel metric 256 pref medium"));
        assert!(is_link_local_route("local fe80::1 dev veth1 table local proto kernel metric 0 pref medium"));
        assert!(is_link_local_route("anycast fe80:: dev veth1 table local proto kernel metric 0 pref medium"));
        assert!(!is_link_local_route("fd7e:7e7e::2 dev veth1 metric 1024 pref medium"));
        assert!(!is_link_local_route("local fd7e:7e7e::1 dev br0 table local proto kernel metric 0 pref medium"));
        assert!(!is_link_local_route("198.18.0.2 dev veth1 scope link"));
    }

    #[test]
    fn names_carry_the_pid() {
        let a = unique_name("x");
        let b = unique_name("x");
        assert_ne!(a, b);
        assert_eq!(owner_pid(&a), Some(std::process::id()));
        assert_eq!(owner_pid("tt-notapid-1-x"), None);
        assert_eq!(owner_pid("cni-1234"), None);
    }
}

/// What a node looks like: links, global addresses, routes and IPAM reservations. Two equal
/// states mean a failed ADD or a DEL left nothing behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// Link names.
    pub links: BTreeSet<String>,
    /// Global addresses.
    pub addrs: BTreeSet<String>,
    /// Routes of every table, both families.
    pub routes: BTreeSet<String>,
    /// IPAM reservation files.
    pub reservations: BTreeSet<String>,
}

impl Node {
    /// The node's current [`NodeState`].
    pub fn state(&self) -> NodeState {
        let mut routes = BTreeSet::new();
        for fam in ["-4", "-6"] {
            let out = self.ip_ok(&[fam, "route", "show", "table", "all"]);
            // `linkdown` follows a bridge's carrier, which the kernel updates asynchronously when
            // the last port goes: not state of ours.
            routes.extend(
                out.lines()
                    .map(|l| l.replace(" linkdown", "").trim().to_string())
                    .filter(|l| !l.is_empty() && !is_link_local_route(l)),
            );
        }
        NodeState {
            links: self.link_names(),
            addrs: self.all_global_addrs().into_iter().collect(),
            routes,
            reservations: self.reservations(),
        }
    }
}

/// An IPv6 link-local route (`fe80::/64`, or the `local`/`anycast` entries of a link-local
/// address): the kernel adds it when duplicate address detection of a link's `fe80::` address
/// finishes, which on a slow kernel can be after the test's snapshot of the node. It belongs to a
/// link, and the links are compared themselves.
fn is_link_local_route(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let dst = match words.next() {
        Some("local" | "anycast" | "unicast" | "multicast") => words.next(),
        first => first,
    };
    dst.is_some_and(|d| d.starts_with("fe80:"))
}

/// The IPv6 link-local addresses (without prefix) of an `ip -j -6 addr show` document.
pub fn link_locals_of(doc: &Value) -> Vec<String> {
    doc.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] == "link")
        .filter_map(|a| a["local"].as_str().map(str::to_string))
        .collect()
}

/// The scope-global addresses of an `ip -j addr show` document, as `addr/prefix`.
fn global_addrs_of(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for link in doc.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if a["scope"] == "global" {
                out.push(format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]));
            }
        }
    }
    out
}
