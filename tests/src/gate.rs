//! The root gate: tests that need root and network namespaces either run, skip loudly (developer
//! machines), or fail (CI: `CI` set, or `CNI_TEST_REQUIRE_ROOT=1`).

use crate::cmd;
use std::sync::OnceLock;

/// True when a test that cannot run must fail instead of skipping.
pub fn ci_required() -> bool {
    let ci = std::env::var("CI").unwrap_or_default();
    let ci = !ci.is_empty() && ci != "0" && !ci.eq_ignore_ascii_case("false");
    ci || std::env::var("CNI_TEST_REQUIRE_ROOT").is_ok_and(|v| v == "1")
}

/// The current test's name (libtest names each test's thread after it).
pub fn test_name() -> String {
    std::thread::current().name().filter(|n| *n != "main").unwrap_or("this test").to_string()
}

/// Why root tests cannot run here, or `None` when they can (probed once per process).
fn root_problem() -> Option<String> {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    PROBLEM
        .get_or_init(|| {
            if !nix::unistd::Uid::effective().is_root() {
                return Some(format!("uid is {}, not 0", nix::unistd::Uid::effective()));
            }
            let probe = format!("tt-{}-probe", std::process::id());
            let add = std::panic::catch_unwind(|| cmd::tool("ip", &["netns", "add", &probe]));
            match add {
                Err(_) => Some("cannot run `ip` (install iproute2)".to_string()),
                Ok(run) if !run.success() => Some(format!("`ip netns add` fails: {}", run.stderr.trim())),
                Ok(_) => {
                    let _ = cmd::tool("ip", &["netns", "del", &probe]);
                    None
                }
            }
        })
        .clone()
}

/// Decide whether a root test may run: true to run; false (after printing `SKIPPED: ...`) to
/// return early. Panics instead of skipping when [`ci_required`].
#[track_caller]
pub fn require_root() -> bool {
    let Some(problem) = root_problem() else { return true };
    skip_or_fail(&format!("root and network namespaces ({problem})"))
}

/// The test cannot run because it lacks `need`: panic when [`ci_required`] (a skip must not pass
/// CI), else print `SKIPPED: ...` and return false.
#[track_caller]
pub fn skip_or_fail(need: &str) -> bool {
    let test = test_name();
    if ci_required() {
        panic!("{test} needs {need}; CI is set, so this is a failure, not a skip");
    }
    eprintln!("SKIPPED: {test} needs {need}");
    false
}

/// A required external tool (`ping`, `nft`, ...): true when present; otherwise skip or fail like
/// [`require_root`].
#[track_caller]
pub fn require_tool(program: &str) -> bool {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false);
    found || skip_or_fail(&format!("`{program}`, which is not installed"))
}

/// `if !require_root() { return; }`
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::gate::require_root() {
            return;
        }
    };
}
