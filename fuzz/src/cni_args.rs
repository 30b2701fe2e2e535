//! `CNI_ARGS`: parsing, and reading the keys tether uses.

use conf::args::CniArgs;

/// Parse `data` (lossily as UTF-8, as an environment variable would reach us) and read `IP`, `MAC`.
pub fn run(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    if let Ok(args) = CniArgs::parse(&raw) {
        let _ = args.ips();
        let _ = args.mac();
        let _ = args.get("IgnoreUnknown");
    }
}
