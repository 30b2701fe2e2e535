//! Records the git commit tether is built from as `TETHER_GIT_COMMIT`, for `--version`.
//!
//! Order: the environment variable `TETHER_GIT_COMMIT` (for builds without the repository, e.g.
//! `docker build --build-arg TETHER_GIT_COMMIT=$(git rev-parse --short HEAD)`), else
//! `git rev-parse --short HEAD` when this crate sits in a git work tree of its own, else
//! `unknown`. Never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TETHER_GIT_COMMIT");
    let commit = std::env::var("TETHER_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().to_string())
        .or_else(commit_of_checkout)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TETHER_GIT_COMMIT={commit}");
}

/// `git` in this crate's directory; its trimmed stdout when it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The short commit of the checkout, re-read whenever HEAD or the branch it names moves.
fn commit_of_checkout() -> Option<String> {
    // Only our own repository: not one this source tree happens to be unpacked inside.
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    if top.canonicalize().ok()? != workspace.canonicalize().ok()? {
        return None;
    }
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let mut watched = vec![git_dir.join("HEAD")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let common = PathBuf::from(git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?);
        watched.push(common.join(branch));
        watched.push(common.join("packed-refs"));
    }
    // A path that does not exist would make cargo rerun this script on every build.
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    git(&["rev-parse", "--short", "HEAD"])
}
