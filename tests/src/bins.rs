//! Where the binaries under test are: `$CNI_TEST_BIN_DIR`, else the cargo profile directory this
//! test executable was built into (`target/<profile>/deps/<test>` → `target/<profile>`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// Where the Debian reference plugins (`ptp`, `bridge`, `host-local`, ...) live.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// The repository root (the workspace this harness belongs to).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The directory holding `tether` and `tether-ipam`.
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("CNI_TEST_BIN_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        // target/<profile>/deps/<test-binary>
        exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| panic!("odd test path {exe:?}"))
    })
    .clone()
}

/// The path of one of our binaries; panics with instructions when it was not built.
pub fn ours(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.is_file() {
        panic!(
            "{name} not found at {}: run `cargo build --workspace --bins` first (or set CNI_TEST_BIN_DIR)",
            path.display()
        );
    }
    warn_if_stale(name, &path);
    path
}

/// The main plugin binary.
pub fn tether() -> PathBuf {
    ours("tether")
}

/// The IPAM plugin binary.
pub fn tether_ipam() -> PathBuf {
    ours("tether-ipam")
}

/// A reference plugin from `/usr/lib/cni`, or `None` when containernetworking-plugins is missing.
pub fn reference(name: &str) -> Option<PathBuf> {
    let path = Path::new(REFERENCE_DIR).join(name);
    path.is_file().then_some(path)
}

/// `CNI_PATH` for every invocation: our binaries first, then the reference plugins.
pub fn cni_path() -> String {
    format!("{}:{REFERENCE_DIR}", bin_dir().display())
}

fn newest_mtime(dir: &Path, newest: &mut Option<SystemTime>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            newest_mtime(&path, newest);
        } else if let Ok(m) = entry.metadata().and_then(|m| m.modified()) {
            if newest.is_none_or(|n| m > n) {
                *newest = Some(m);
            }
        }
    }
}

/// `cargo test -p tether-tests` does not rebuild the plugin binaries: say so when they are older
/// than their sources (once per binary and process).
fn warn_if_stale(name: &str, path: &Path) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut warned) = WARNED.lock() else { return };
    if warned.iter().any(|w| w == name) {
        return;
    }
    warned.push(name.to_string());
    let Ok(built) = path.metadata().and_then(|m| m.modified()) else { return };
    let mut newest = None;
    for crate_dir in ["conf/src", "plugin/src", "ipam/src"] {
        newest_mtime(&repo_root().join(crate_dir), &mut newest);
    }
    if newest.is_some_and(|n| n > built) {
        eprintln!("WARNING: {} is older than the sources; run `cargo build --workspace --bins`", path.display());
    }
}
