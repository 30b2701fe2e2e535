//! The fuzz targets of tether, as plain functions over bytes. `cargo fuzz` runs them from
//! `fuzz/fuzz_targets/` (nightly, libFuzzer); `tests/replay.rs` runs every committed corpus input
//! through them on the stable toolchain, so each input keeps being exercised by `scripts/test`.
//!
//! A finding is a panic (each target also panics on a broken promise: stdout not exactly one JSON
//! document or nothing, a code-999 answer, which is a caught panic, or a write outside the data
//! directory), an abort, a hang or unbounded memory (libFuzzer's `-timeout` and `-rss_limit_mb`).

// A target reports by panicking, and a harness that cannot set itself up must stop loudly.
#![allow(clippy::expect_used)]

pub mod cni_args;
pub mod ipam_store;
pub mod netconf;
pub mod nft_reply;
pub mod result;

/// Silence the plugins' logging before the first input: what the fuzzer feeds must not choose a
/// log file (a configuration's `logFile` is the operator's to set, and the environment wins over
/// it), and a line per input would only slow the fuzzer down.
pub fn quiet_logs() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        std::env::set_var("TETHER_LOG", "off");
        std::env::set_var("TETHER_LOG_FILE", "/dev/null");
    });
}

/// Panic unless `stdout` is empty or exactly one JSON document that is not a code-999 error.
pub fn assert_one_document(stdout: Option<&str>) {
    let Some(out) = stdout else { return };
    let mut docs = serde_json::Deserializer::from_str(out).into_iter::<serde_json::Value>();
    let first = match docs.next() {
        Some(Ok(doc)) => doc,
        other => panic!("stdout is not a JSON document: {other:?} in {out:?}"),
    };
    assert!(docs.next().is_none(), "stdout holds more than one document: {out:?}");
    assert_ne!(first.get("code").and_then(serde_json::Value::as_u64), Some(999), "a caught panic: {out}");
}
