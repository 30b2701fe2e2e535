//! A cgroup folder of the test's own, for the pods' cgroups (CRI `cgroup_parent`, cgroupfs
//! syntax), removed in every hierarchy at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tether_tests::netns::{unique_name, PREFIX};

/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `/<name>` below every hierarchy; what runc creates there is removed on drop.
#[derive(Debug)]
pub struct CgroupFolder {
    name: String,
}

impl CgroupFolder {
    /// A fresh, unique folder name (runc creates the directories on first use). Folders of
    /// earlier test processes that died before removing theirs are removed first.
    pub fn new(tag: &str) -> CgroupFolder {
        sweep_stale();
        CgroupFolder { name: unique_name(tag) }
    }

    /// The CRI `cgroup_parent` value: `/<name>`.
    pub fn parent(&self) -> String {
        format!("/{}", self.name)
    }

    /// The folder in every hierarchy where it exists.
    pub fn existing(&self) -> Vec<PathBuf> {
        hierarchies().into_iter().map(|r| r.join(&self.name)).filter(|p| p.is_dir()).collect()
    }
}

/// Every hierarchy's root: the v1 controllers, the unified v2 mount, or a pure v2 root.
fn hierarchies() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from(CGROUP_ROOT)];
    if let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) {
        roots.extend(entries.flatten().map(|e| e.path()).filter(|p| p.join("cgroup.procs").is_file()));
    }
    roots
}

/// Remove the harness's folders (`tt-<pid>-...`) whose process is gone. Once per process.
fn sweep_stale() {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| {
        for root in hierarchies() {
            let Ok(entries) = std::fs::read_dir(&root) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let pid =
                    name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                    let _ = remove_tree(&entry.path());
                }
            }
        }
    });
}

/// Remove a cgroup directory tree bottom-up (cgroup directories are removed with rmdir; their
/// files go with them).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path())?;
            }
        }
    }
    std::fs::remove_dir(dir)
}

impl Drop for CgroupFolder {
    fn drop(&mut self) {
        // The processes are gone when this runs, but the kernel frees a cgroup a moment later.
        let deadline = Instant::now() + Duration::from_secs(10);
        for dir in self.existing() {
            while let Err(e) = remove_tree(&dir) {
                if Instant::now() > deadline {
                    eprintln!("harness: cannot remove cgroup {}: {e}", dir.display());
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
