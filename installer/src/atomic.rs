//! Replacing a file so that no reader ever sees it half-written: write a temporary file in the same directory,
//! fsync it, rename it over the target, fsync the directory.
//!
//! Why this way: a runtime may be executing the old `tether` at that very moment (rename leaves its open inode
//! alone, where writing in place fails with ETXTBSY or corrupts it), and a runtime watching the conf dir must
//! never load a truncated conflist. Same directory: rename is atomic only within one file system. The fsyncs
//! make the new content durable before the name points at it, and the name change durable before we report it.
//! Temporary names start with `.tether-install.` and end in `.tmp`, which libcni's conf-dir loader ignores (it
//! reads `*.conf`, `*.conflist`, `*.json`); a crash leaves at most such a file, which the next start removes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Prefix of every temporary file the installer makes.
pub const TEMP_PREFIX: &str = ".tether-install.";

/// Put `contents` at `target` with `mode`, atomically (see the module docs).
pub fn replace(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = target.parent().ok_or_else(|| io::Error::other(format!("{} has no directory", target.display())))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!("{TEMP_PREFIX}{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temp)?;
        file.write_all(contents)?;
        // The umask may have narrowed `mode`.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&temp, target)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    File::open(dir)?.sync_all()
}

/// Remove `target` and make the removal durable; absent is fine.
pub fn remove(target: &Path) -> io::Result<()> {
    match fs::remove_file(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    }
    if let Some(dir) = target.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// True when `target` is a regular file holding exactly `contents` with `mode`.
pub fn holds(target: &Path, contents: &[u8], mode: u32) -> bool {
    match fs::symlink_metadata(target) {
        Ok(meta)
            if meta.is_file() && meta.len() == contents.len() as u64 && meta.permissions().mode() & 0o7777 == mode =>
        {
            fs::read(target).is_ok_and(|have| have == contents)
        }
        _ => false,
    }
}

/// Remove the temporary files a killed installer left in `dir`; returns how many.
pub fn sweep(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(TEMP_PREFIX) && name.ends_with(".tmp")
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tether-install-unit-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn replace_swaps_the_inode_and_leaves_no_temporary() {
        let dir = scratch("replace");
        let target = dir.join("tether");
        replace(&target, b"one", 0o755).unwrap();
        let first = fs::metadata(&target).unwrap();
        assert_eq!(first.permissions().mode() & 0o7777, 0o755);
        // A reader holding the old file keeps reading the old content.
        let mut old = File::open(&target).unwrap();
        replace(&target, b"two", 0o755).unwrap();
        let second = fs::metadata(&target).unwrap();
        assert_ne!(first.ino(), second.ino(), "a new inode, not an in-place write");
        let mut old_content = String::new();
        io::Read::read_to_string(&mut old, &mut old_content).unwrap();
        assert_eq!(old_content, "one");
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert!(holds(&target, b"two", 0o755));
        assert!(!holds(&target, b"two", 0o644));
        assert!(!holds(&target, b"one", 0o755));
        let names: Vec<_> = fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("tether")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failures_leave_nothing_and_sweep_removes_leftovers() {
        let dir = scratch("sweep");
        assert!(replace(&dir.join("missing-dir").join("x"), b"x", 0o644).is_err());
        fs::write(dir.join(".tether-install.tether.123.tmp"), "half").unwrap();
        fs::write(dir.join("10-other.conflist"), "{}").unwrap();
        assert_eq!(sweep(&dir), 1);
        assert!(dir.join("10-other.conflist").exists());
        remove(&dir.join("10-other.conflist")).unwrap();
        remove(&dir.join("10-other.conflist")).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
