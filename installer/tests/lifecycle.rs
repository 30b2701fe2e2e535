//! The installer binary as a DaemonSet runs it, against temporary directories standing in for the node's
//! `/opt/cni/bin` and `/etc/cni/net.d`: install, repair, replace, SIGTERM, uninstall, bad settings.
//! No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scratch node: source dir with two "binaries", bin dir and conf dir; removed on drop.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let root = std::env::temp_dir().join(format!("tether-install-test-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in ["src", "bin", "net.d"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let s = Scratch { root };
        s.set_source("v1");
        s
    }

    fn src(&self) -> PathBuf {
        self.root.join("src")
    }
    fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    fn conf(&self) -> PathBuf {
        self.root.join("net.d")
    }
    fn conflist(&self) -> PathBuf {
        self.conf().join("10-tether.conflist")
    }

    /// Distinct contents per binary and version, so a mix-up shows.
    fn set_source(&self, version: &str) {
        for name in ["tether", "tether-ipam"] {
            fs::write(self.src().join(name), format!("#!{name} {version}\n")).unwrap();
        }
    }

    fn command(&self, extra: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tether-install"));
        c.env_clear()
            .env("TETHER_SOURCE_DIR", self.src())
            .env("TETHER_BIN_DIR", self.bin())
            .env("TETHER_CONF_DIR", self.conf())
            .env("TETHER_POD_CIDRS", "198.18.1.0/24,fd7e:7e7e:1::/64")
            .env("TETHER_CHECK_INTERVAL", "0.1")
            .env("TETHER_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    }

    fn once(&self, extra: &[(&str, &str)]) -> Output {
        self.command(extra).arg("--once").output().unwrap()
    }

    fn spawn(&self, extra: &[(&str, &str)]) -> Running {
        Running(self.command(extra).spawn().unwrap())
    }

    /// Every file under bin and conf (relative names), sorted.
    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in [self.bin(), self.conf()] {
            for e in fs::read_dir(&dir).unwrap().flatten() {
                out.push(format!("{}/{}", dir.file_name().unwrap().to_string_lossy(), e.file_name().to_string_lossy()));
            }
        }
        out.sort();
        out
    }

    fn installed(&self, name: &str) -> String {
        fs::read_to_string(self.bin().join(name)).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A running installer, killed on drop if still alive.
struct Running(Child);

impl Running {
    /// SIGTERM, then wait (at most 5 s): exit status and stderr.
    fn terminate(mut self) -> (std::process::ExitStatus, String, Duration) {
        let start = Instant::now();
        kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM).unwrap();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut err).unwrap();
                return (status, err, start.elapsed());
            }
            assert!(start.elapsed() < Duration::from_secs(5), "installer ignored SIGTERM for 5 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait (at most 5 s) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

const ALL: [&str; 3] = ["bin/tether", "bin/tether-ipam", "net.d/10-tether.conflist"];

#[test]
fn installs_repairs_and_stops_on_sigterm_keeping_the_conflist() {
    let s = Scratch::new("loop");
    let run = s.spawn(&[]);
    eventually("everything is installed", || s.files() == ALL);
    assert_eq!(s.installed("tether"), "#!tether v1\n");
    assert_eq!(s.installed("tether-ipam"), "#!tether-ipam v1\n");
    assert_eq!(mode(&s.bin().join("tether")), 0o755);
    assert_eq!(mode(&s.conflist()), 0o644);
    let doc: Value = serde_json::from_str(&fs::read_to_string(s.conflist()).unwrap()).unwrap();
    assert_eq!(doc["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "198.18.1.0/24");
    assert_eq!(doc["plugins"][0]["ipam"]["ranges"][1][0]["subnet"], "fd7e:7e7e:1::/64");

    // A node operator removes a binary and the conflist; an upgrade script clobbers the other binary.
    fs::remove_file(s.bin().join("tether")).unwrap();
    fs::remove_file(s.conflist()).unwrap();
    fs::write(s.bin().join("tether-ipam"), "garbage").unwrap();
    eventually("the removed files are back", || s.files() == ALL);
    eventually("the clobbered binary is restored", || s.installed("tether-ipam") == "#!tether-ipam v1\n");
    assert_eq!(s.installed("tether"), "#!tether v1\n");
    // Even the whole conf dir.
    fs::remove_dir_all(s.conf()).unwrap();
    eventually("the conf dir is back", || s.conflist().exists());

    let (status, stderr, took) = run.terminate();
    assert!(status.success(), "exit {status}:\n{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert_eq!(s.files(), ALL, "without TETHER_UNINSTALL the conflist stays");
}

#[test]
fn a_conflist_that_sorts_first_is_warned_about() {
    let s = Scratch::new("shadow");
    fs::write(s.conf().join("05-other.conflist"), "{}").unwrap();
    let out = s.once(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("05-other.conflist sorts before"), "{stderr}");
    let quiet = s.once(&[("TETHER_CONFLIST_PRIORITY", "01")]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("sorts before"));
}

#[test]
fn uninstall_removes_only_the_conflist() {
    let s = Scratch::new("uninstall");
    let run = s.spawn(&[("TETHER_UNINSTALL", "true")]);
    eventually("everything is installed", || s.files() == ALL);
    let (status, stderr, _) = run.terminate();
    assert!(status.success(), "exit {status}:\n{stderr}");
    assert_eq!(s.files(), ["bin/tether", "bin/tether-ipam"], "binaries stay for the pods still running");
}

#[test]
fn a_second_run_replaces_files_atomically_and_sweeps_leftovers() {
    let s = Scratch::new("replace");
    let first = s.once(&[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(s.files(), ALL);
    let inode = |p: &Path| fs::metadata(p).unwrap().ino();
    let (bin_inode, conf_inode) = (inode(&s.bin().join("tether")), inode(&s.conflist()));
    // The old binary stays readable through an open handle (a runtime executing it), and a temp file a killed
    // run left is swept.
    let old = fs::File::open(s.bin().join("tether")).unwrap();
    fs::write(s.bin().join(".tether-install.tether.999.tmp"), "half").unwrap();

    s.set_source("v2");
    let second = s.once(&[("TETHER_MTU", "1400")]);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(s.files(), ALL, "no temporary file left");
    assert_eq!(s.installed("tether"), "#!tether v2\n");
    assert_ne!(inode(&s.bin().join("tether")), bin_inode, "replaced by rename, not written in place");
    assert_ne!(inode(&s.conflist()), conf_inode);
    let doc: Value = serde_json::from_str(&fs::read_to_string(s.conflist()).unwrap()).unwrap();
    assert_eq!(doc["plugins"][0]["mtu"], 1400);
    let mut was = String::new();
    std::io::Read::read_to_string(&mut &old, &mut was).unwrap();
    assert_eq!(was, "#!tether v1\n");

    // Nothing changed: nothing is rewritten.
    let (bin_inode, conf_inode) = (inode(&s.bin().join("tether")), inode(&s.conflist()));
    let third = s.once(&[("TETHER_MTU", "1400")]);
    assert!(third.status.success());
    assert_eq!((inode(&s.bin().join("tether")), inode(&s.conflist())), (bin_inode, conf_inode));
    assert!(
        !String::from_utf8_lossy(&third.stderr).contains("installed"),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
}

#[test]
fn bad_settings_are_named_and_nothing_is_written() {
    let s = Scratch::new("bad");
    for (setting, value) in [
        ("TETHER_MTU", "9"),
        ("TETHER_POD_CIDRS", "198.18.1.0/33"),
        ("TETHER_MODE", "macvlan"),
        ("TETHER_NON_MASQUERADE_CIDRS", "everything"),
        ("TETHER_CONFLIST_PRIORITY", "1"),
        ("TETHER_MTUU", "1400"),
    ] {
        let out = s.once(&[(setting, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{setting}={value}:\n{stderr}");
        assert!(stderr.contains(&format!("setting {setting}:")), "{setting}={value}:\n{stderr}");
        assert!(out.stdout.is_empty());
        assert_eq!(s.files(), Vec::<String>::new(), "{setting}={value} wrote something");
    }
    // A binary missing from the image: named, and nothing written either.
    fs::remove_file(s.src().join("tether-ipam")).unwrap();
    let out = s.once(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tether-ipam"), "{stderr}");
    assert_eq!(s.files(), Vec::<String>::new());
}

#[test]
fn settings_file_and_containerd_template() {
    let s = Scratch::new("template");
    let file = s.root.join("settings.env");
    let template = s.root.join("containerd").join("tether.conflist.template");
    fs::write(
        &file,
        format!("TETHER_OUTPUT=containerd-template\nTETHER_CONF_TEMPLATE={}\nTETHER_MODE=bridge\n", template.display()),
    )
    .unwrap();
    let out = s.once(&[("TETHER_SETTINGS_FILE", file.to_str().unwrap())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.files(), ["bin/tether", "bin/tether-ipam"], "no conflist: containerd renders the template");
    let text = fs::read_to_string(&template).unwrap();
    assert!(text.contains(".PodCIDRRanges") && text.contains("\"bridge\""), "{text}");
}
