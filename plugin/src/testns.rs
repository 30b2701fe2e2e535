//! Root test support: run async netlink code on a thread of its own that has moved into a new,
//! empty network namespace (never the machine's own). The namespace dies with the thread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use crate::netlink::Netlink;
use std::future::Future;
use std::process::Command;

/// A second new network namespace (a "container"), held open by the returned file only: made on
/// a throwaway thread, so no test thread ever leaves its own namespace.
pub fn new_netns() -> crate::netns::Netns {
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        crate::netns::Netns::current().unwrap()
    })
    .join()
    .unwrap()
}

/// True when root tests can run; otherwise prints SKIPPED, or panics when `CI` is set.
pub fn can_run(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "{test}: needs root (CI is set, so this is a failure, not a skip)");
    eprintln!("SKIPPED: {test}: needs root");
    false
}

/// Run `f` with a netlink connection inside a new network namespace, on a new thread, in a
/// current-thread runtime (as the plugin runs). `None` when root tests cannot run.
pub fn in_new_netns<T, F, Fut>(test: &str, f: F) -> Option<T>
where
    T: Send,
    F: FnOnce(Netlink) -> Fut + Send,
    Fut: Future<Output = T>,
{
    if !can_run(test) {
        return None;
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let nl = Netlink::connect().unwrap();
                f(nl).await
            })
        })
        .join()
        .unwrap()
    })
    .into()
}

/// Run a tool (`ip`, `bridge`) in the calling thread's namespace; its stdout. Panics on failure.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `<program> -j <args>` parsed.
pub fn json(program: &str, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = tool(program, &full);
    if out.trim().is_empty() {
        return serde_json::Value::Array(vec![]);
    }
    serde_json::from_str(&out).unwrap()
}

/// The IPv6 link-local addresses of `dev`.
pub fn link_locals(dev: &str) -> Vec<String> {
    tether_tests::netns::link_locals_of(&json("ip", &["-6", "addr", "show", "dev", dev]))
}
