//! Delegation (SPEC §4): run another plugin, typically IPAM, with the same environment and the
//! same stdin, `CNI_COMMAND` possibly overridden. Its stdout is captured and decoded; its stderr
//! goes straight to ours; its error code and message pass through unchanged, with which plugin
//! and verb failed in `details`.
//!
//! A delegate whose file is busy (being replaced) is retried for up to 5 s, as libcni does.
//! A delegate gets `delegateTimeout` (60 s) to finish. It runs in a process group of its own, so
//! a timeout kills everything it started (a shell script's `sleep` too) and no orphan keeps its
//! stdout open.
//!
//! Must be called from a thread in the node's network namespace: a child inherits the namespace
//! of the thread that spawns it.

use crate::env::Command;
use crate::error::{CniError, CniResult, ErrorCode};
use crate::names::is_plugin_name;
use crate::request::Request;
use crate::result::NetResult;
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Find the executable `plugin_type` in the directories of `CNI_PATH`, first match wins.
///
/// # Errors
/// Code 7 when `plugin_type` is not a plain name; code 103 when no directory holds it.
pub fn find_plugin(plugin_type: &str, path: &[PathBuf]) -> CniResult<PathBuf> {
    if !is_plugin_name(plugin_type) {
        return Err(CniError::new(ErrorCode::InvalidConfig, format!("invalid plugin type {plugin_type:?}")));
    }
    path.iter().map(|dir| dir.join(plugin_type)).find(|candidate| is_executable(candidate)).ok_or_else(|| {
        CniError::new(ErrorCode::Delegate, format!("failed to find plugin {plugin_type:?} in path {path:?}"))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Run `plugin_type` for `request` with `command`; return its stdout document, if any.
///
/// # Errors
/// The delegate's own error object (code and message unchanged) when it fails; code 103 when it
/// cannot be started, does not finish within `delegateTimeout`, or answers something that is not
/// JSON.
pub fn exec(request: &Request, plugin_type: &str, command: Command) -> CniResult<Option<serde_json::Value>> {
    let binary = find_plugin(plugin_type, &request.invocation.path)?;
    let timeout = request.config.delegate_timeout;
    log::debug!("delegating {} to {} (timeout {timeout:?})", command.as_str(), binary.display());
    let deadline = Instant::now() + timeout;
    let mut child = spawn(&binary, command, deadline)
        .map_err(|e| CniError::new(ErrorCode::Delegate, format!("run {}: {e}", binary.display())))?;
    // Feed stdin and drain stdout on helper threads: a delegate that reads neither must not
    // block us past the deadline (a config larger than the pipe buffer would).
    if let Some(mut stdin) = child.stdin.take() {
        let bytes = request.stdin.clone();
        // A delegate that exits without reading stdin closes the pipe; its answer still counts.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    let (sender, stdout) = mpsc::channel();
    if let Some(mut pipe) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = sender.send(pipe.read_to_end(&mut bytes).map(|_| bytes));
        });
    }
    let timed_out = || {
        CniError::new(
            ErrorCode::Delegate,
            format!("plugin {plugin_type:?} did not finish {} within {timeout:?}: killed", command.as_str()),
        )
        .with_details("raise \"delegateTimeout\" (seconds) in the network configuration if it needs longer")
    };
    let stdout = match stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            kill(&mut child);
            return Err(CniError::new(ErrorCode::Delegate, format!("read the answer of plugin {plugin_type:?}: {e}")));
        }
        Err(_) => {
            kill(&mut child);
            return Err(timed_out());
        }
    };
    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill(&mut child);
            return Err(timed_out());
        }
        Err(e) => {
            kill(&mut child);
            return Err(CniError::new(ErrorCode::Delegate, format!("wait for {}: {e}", binary.display())));
        }
    };
    let text = String::from_utf8_lossy(&stdout);
    let text = text.trim();
    if !status.success() {
        return Err(delegate_error(plugin_type, command, text, status));
    }
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|e| {
        CniError::new(ErrorCode::Delegate, format!("plugin {plugin_type:?} answered something that is not JSON"))
            .with_details(format!("{e}: {text}"))
    })
}

/// How long a delegate whose file is still open for writing ("text file busy": an installer is
/// replacing it) is retried; libcni retries for about as long.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// Start `binary` in a process group of its own, retrying while its file is busy.
fn spawn(binary: &Path, command: Command, deadline: Instant) -> std::io::Result<Child> {
    let give_up = deadline.min(Instant::now() + BUSY_RETRY);
    loop {
        let spawned = Process::new(binary)
            .env("CNI_COMMAND", command.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn();
        match spawned {
            Err(e) if e.raw_os_error() == Some(Errno::ETXTBSY as i32) && Instant::now() < give_up => {
                log::debug!("{} is busy (being written); retrying", binary.display());
                std::thread::sleep(Duration::from_millis(100).min(give_up.saturating_duration_since(Instant::now())));
            }
            other => return other,
        }
    }
}

/// Wait for `child` to exit, until `deadline`; `None` when it is still running then. Only
/// reached once its stdout is closed, so it normally has exited already or is about to.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Kill the delegate's whole process group and reap the delegate. Its pid (the group's id) stays
/// ours until the reap, so the signal cannot reach anyone else.
fn kill(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.wait();
}

/// The error of a delegate that exited non-zero: its own error object, code and message as they
/// are; what tether was doing goes in `details`, before the delegate's own details.
fn delegate_error(plugin_type: &str, command: Command, stdout: &str, status: ExitStatus) -> CniError {
    let failed = format!("delegated plugin {plugin_type:?} failed {}", command.as_str());
    let parsed: Option<serde_json::Value> = serde_json::from_str(stdout).ok();
    match parsed.as_ref().and_then(|v| v.get("code")?.as_u64().map(|c| (c, v))) {
        Some((code, v)) => {
            let theirs = v.get("details").and_then(|m| m.as_str()).unwrap_or("");
            CniError {
                code: u32::try_from(code).unwrap_or(ErrorCode::Delegate.as_u32()),
                msg: match v.get("msg").and_then(|m| m.as_str()) {
                    Some(msg) if !msg.is_empty() => msg.to_string(),
                    _ => format!("plugin {plugin_type:?} failed {} with code {code} and no message", command.as_str()),
                },
                details: if theirs.is_empty() { failed } else { format!("{failed}: {theirs}") },
            }
        }
        None if stdout.is_empty() => CniError::new(
            ErrorCode::Delegate,
            format!("plugin {plugin_type:?} failed {} with no error message ({status})", command.as_str()),
        ),
        None => {
            CniError::new(ErrorCode::Delegate, format!("plugin {plugin_type:?} failed {} ({status})", command.as_str()))
                .with_details(stdout.to_string())
        }
    }
}

/// Delegate ADD and decode the result from its own `cniVersion`: a delegate may answer in another
/// version than the request's (libcni converts it; so does this), or in none (then the request's).
///
/// # Errors
/// As [`exec`]; code 103 when the delegate printed no result.
pub fn add(request: &Request, plugin_type: &str) -> CniResult<NetResult> {
    let doc = exec(request, plugin_type, Command::Add)?.ok_or_else(|| {
        CniError::new(ErrorCode::Delegate, format!("plugin {plugin_type:?} printed no result for ADD"))
    })?;
    NetResult::from_json(&doc, request.version()).map_err(|e| e.context(format!("result of plugin {plugin_type:?}")))
}

/// Delegate a verb that prints nothing on success (DEL, CHECK, STATUS, GC).
///
/// # Errors
/// As [`exec`].
pub fn run(request: &Request, plugin_type: &str, command: Command) -> CniResult<()> {
    exec(request, plugin_type, command).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Invocation;
    use crate::NetConf;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex;

    /// Tests that write and run a script hold this: a fork by another test thread while a
    /// script's write descriptor is open would make exec fail with ETXTBSY.
    static SPAWNING: Mutex<()> = Mutex::new(());

    /// A directory holding one fake delegate `fake` running `script`; removed on drop.
    struct FakeDelegate(PathBuf);

    impl FakeDelegate {
        fn new(tag: &str, script: &str) -> FakeDelegate {
            let dir = std::env::temp_dir().join(format!("tether-conf-{}-{tag}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("fake");
            std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            FakeDelegate(dir)
        }

        fn request(&self, conf: serde_json::Value) -> Request {
            Request {
                invocation: Invocation {
                    command: Command::Add,
                    container_id: "c1".into(),
                    netns: None,
                    ifname: "eth0".into(),
                    args: String::new(),
                    path: vec![self.0.clone()],
                },
                stdin: conf.to_string().into_bytes(),
                config: NetConf::from_value(conf).unwrap(),
            }
        }
    }

    impl Drop for FakeDelegate {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Whether `pid` is still running (a zombie waiting for init to reap it is not).
    fn running(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z')))
    }

    #[test]
    fn a_delegate_error_keeps_its_code_and_message() {
        let _serial = SPAWNING.lock();
        let fake = FakeDelegate::new(
            "error",
            r#"cat >/dev/null
echo '{"cniVersion":"1.0.0","code":42,"msg":"pool \"blue\" is exhausted","details":"198.18.0.0/30"}'
exit 1"#,
        );
        let request = fake.request(json!({"cniVersion": "1.0.0", "name": "n"}));
        let e = add(&request, "fake").err().unwrap();
        assert_eq!((e.code, e.msg.as_str()), (42, "pool \"blue\" is exhausted"));
        assert_eq!(e.details, "delegated plugin \"fake\" failed ADD: 198.18.0.0/30");
        let e = run(&request, "fake", Command::Del).err().unwrap();
        assert_eq!(e.details, "delegated plugin \"fake\" failed DEL: 198.18.0.0/30");
    }

    #[test]
    fn a_hanging_delegate_is_killed_with_what_it_started() {
        let _serial = SPAWNING.lock();
        let fake = FakeDelegate::new("hang", "sleep 30 &\necho $! > \"$(dirname \"$0\")/sleep.pid\"\nwait");
        let request = fake.request(json!({"cniVersion": "1.0.0", "name": "n", "delegateTimeout": 0.5}));
        let started = Instant::now();
        let e = add(&request, "fake").err().unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert_eq!(e.code, 103);
        assert_eq!(e.msg, "plugin \"fake\" did not finish ADD within 500ms: killed");
        let sleep = std::fs::read_to_string(fake.0.join("sleep.pid")).unwrap();
        // SIGKILL is delivered asynchronously: the child may still show as running for a moment
        // after killpg returns (seen once under a loaded full suite), never for seconds.
        let deadline = Instant::now() + Duration::from_secs(5);
        while running(sleep.trim()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!running(sleep.trim()), "the delegate's child {sleep} survived");
    }

    #[test]
    fn a_delegate_that_closes_stdout_and_runs_on_is_killed_at_the_deadline() {
        let _serial = SPAWNING.lock();
        let fake = FakeDelegate::new("closed", "exec >&-\nexec sleep 30");
        let request = fake.request(json!({"cniVersion": "1.0.0", "name": "n", "delegateTimeout": 0.5}));
        let e = run(&request, "fake", Command::Del).err().unwrap();
        assert_eq!((e.code, e.msg.as_str()), (103, "plugin \"fake\" did not finish DEL within 500ms: killed"));
    }

    #[test]
    fn a_delegate_being_written_is_retried_until_it_can_run() {
        let _serial = SPAWNING.lock();
        let fake = FakeDelegate::new("busy", r#"echo '{"cniVersion":"1.0.0","ips":[{"address":"198.18.0.2/24"}]}'"#);
        // An installer still holding the file open for writing: exec fails with ETXTBSY.
        let writer = std::fs::OpenOptions::new().append(true).open(fake.0.join("fake")).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(writer);
        });
        let r = add(&fake.request(json!({"cniVersion": "1.0.0", "name": "n", "delegateTimeout": 5})), "fake");
        release.join().unwrap();
        assert_eq!(r.unwrap().ips.len(), 1);
    }

    #[test]
    fn a_delegate_answer_is_read_in_its_own_version() {
        let _serial = SPAWNING.lock();
        let fake = FakeDelegate::new(
            "legacy",
            r#"echo '{"cniVersion":"0.2.0","ip4":{"ip":"198.18.0.2/24","gateway":"198.18.0.1"}}'"#,
        );
        let r = add(&fake.request(json!({"cniVersion": "1.0.0", "name": "n"})), "fake").unwrap();
        assert_eq!(r.ips[0].address.to_string(), "198.18.0.2/24");
    }

    #[test]
    fn plugin_type_must_be_a_name() {
        for bad in ["", "../sh", "/bin/sh", ".", ".."] {
            assert_eq!(find_plugin(bad, &[PathBuf::from("/bin")]).err().map(|e| e.code), Some(7), "{bad}");
        }
    }

    #[test]
    fn missing_plugin_is_reported_with_the_path() {
        let e = find_plugin("no-such-plugin-xyz", &[PathBuf::from("/nonexistent")]).err().unwrap();
        assert_eq!(e.code, 103);
        assert!(e.msg.contains("no-such-plugin-xyz"));
    }

    #[test]
    fn first_executable_on_path_wins() {
        assert_eq!(
            find_plugin("sh", &[PathBuf::from("/nonexistent"), PathBuf::from("/bin")]).ok(),
            Some(PathBuf::from("/bin/sh"))
        );
    }

    #[test]
    fn delegate_error_passes_code_through() {
        let _serial = SPAWNING.lock();
        let status = std::process::Command::new("false").status().unwrap();
        let e = delegate_error("host-local", Command::Add, r#"{"code":7,"msg":"no IP ranges specified"}"#, status);
        assert_eq!(e.code, 7);
        let e = delegate_error("x", Command::Del, "", status);
        assert_eq!(e.code, 103);
        assert!(e.msg.contains("\"x\" failed DEL"), "{e}");
    }
}
