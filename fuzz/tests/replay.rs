//! Every committed fuzz input (`fuzz/corpus/<target>/*`, and `fuzz/regressions/<target>/*` for
//! inputs that once found a bug) through its target, on the stable toolchain: what the fuzzers
//! found stays fixed, and the seeds stay valid inputs, even where no nightly toolchain exists for
//! `cargo fuzz`.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else { continue };
        for entry in entries.flatten() {
            let input = std::fs::read(entry.path()).unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
            let caught = std::panic::catch_unwind(|| run(&input));
            assert!(caught.is_ok(), "{target}: {} makes the target fail", entry.path().display());
            count += 1;
        }
    }
    assert!(count > 0, "no committed input for {target}: the seed corpus is missing");
}

#[test]
fn cni_args() {
    replay("cni_args", tether_fuzz_targets::cni_args::run);
}

#[test]
fn netconf() {
    replay("netconf", tether_fuzz_targets::netconf::run);
}

#[test]
fn result() {
    replay("result", tether_fuzz_targets::result::run);
}

#[test]
fn ipam_store() {
    replay("ipam_store", tether_fuzz_targets::ipam_store::run);
}

#[test]
fn nft_reply() {
    replay("nft_reply", tether_fuzz_targets::nft_reply::run);
}
