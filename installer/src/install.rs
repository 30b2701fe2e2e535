//! What the installer keeps on the node: the two plugin binaries in the CNI bin dir, then the conflist (or
//! containerd's template), each written atomically ([`crate::atomic`]) when missing or different.
//!
//! The binaries go first: a runtime that sees the conflist must find the plugins it names.

use crate::atomic;
use crate::render;
use crate::settings::{Output, Settings};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The plugin binaries, as `type` names them.
pub const BINARIES: [&str; 2] = ["tether", "tether-ipam"];

/// One file the installer owns.
#[derive(Debug, Clone)]
struct Target {
    path: PathBuf,
    contents: Vec<u8>,
    mode: u32,
}

/// Everything to keep installed, read and rendered once at start.
#[derive(Debug, Clone)]
pub struct Plan {
    binaries: Vec<Target>,
    config: Target,
    /// The configuration is a conflist (not containerd's template, whose rendering is ours too).
    is_conflist: bool,
}

/// An installer failure, naming the file.
#[derive(Debug)]
pub struct InstallError {
    /// What was being done, with the path.
    pub what: String,
    /// The cause.
    pub cause: io::Error,
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)
    }
}

fn context(what: String) -> impl FnOnce(io::Error) -> InstallError {
    move |cause| InstallError { what, cause }
}

impl Plan {
    /// Read the binaries from `settings.source_dir` and render the configuration.
    pub fn new(settings: &Settings) -> Result<Plan, InstallError> {
        let mut binaries = Vec::new();
        for name in BINARIES {
            let source = settings.source_dir.join(name);
            let contents = fs::read(&source).map_err(context(format!("read {}", source.display())))?;
            binaries.push(Target { path: settings.bin_dir.join(name), contents, mode: 0o755 });
        }
        let path = match &settings.output {
            Output::Conflist { .. } => settings.conf_dir.join(&settings.conflist_file),
            Output::ContainerdTemplate { path } => path.clone(),
        };
        let config = Target { path, contents: render::render(settings).into_bytes(), mode: 0o644 };
        Ok(Plan { binaries, config, is_conflist: matches!(settings.output, Output::Conflist { .. }) })
    }

    /// The configuration file's path.
    pub fn config_path(&self) -> &Path {
        &self.config.path
    }

    /// Write every file that is missing or differs, binaries first; returns the paths written.
    pub fn reconcile(&self) -> Result<Vec<PathBuf>, InstallError> {
        let mut written = Vec::new();
        for t in self.binaries.iter().chain(std::iter::once(&self.config)) {
            if atomic::holds(&t.path, &t.contents, t.mode) {
                continue;
            }
            if let Some(dir) = t.path.parent() {
                fs::create_dir_all(dir).map_err(context(format!("create {}", dir.display())))?;
            }
            atomic::replace(&t.path, &t.contents, t.mode).map_err(context(format!("install {}", t.path.display())))?;
            written.push(t.path.clone());
        }
        Ok(written)
    }

    /// Remove the configuration (uninstall). The binaries stay: pods still running need them for their DEL.
    pub fn remove_config(&self) -> Result<(), InstallError> {
        atomic::remove(&self.config.path).map_err(context(format!("remove {}", self.config.path.display())))
    }

    /// Remove what a killed installer left behind in the directories it writes.
    pub fn sweep(&self) -> usize {
        let mut dirs: Vec<&Path> = self.binaries.iter().chain([&self.config]).filter_map(|t| t.path.parent()).collect();
        dirs.dedup();
        dirs.into_iter().map(atomic::sweep).sum()
    }

    /// Network configurations in the conf dir that a runtime would pick before our conflist (it takes the first
    /// in lexical order): worth a warning, since ours would then be ignored. None for a template, which containerd
    /// renders into a conflist of its own naming.
    pub fn shadowing_configs(&self) -> Vec<String> {
        let Some(dir) = self.config.path.parent().filter(|_| self.is_conflist) else { return Vec::new() };
        let ours = self.config.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
        let mut out: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| [".conf", ".conflist", ".json"].iter().any(|ext| n.ends_with(ext)) && *n < ours)
            .collect();
        out.sort();
        out
    }
}
