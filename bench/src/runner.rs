//! Starting processes and timing them from spawn to exit.
//!
//! [`run_batch`] starts every [`Spawn`] of a batch back to back (one for a sequential measurement,
//! 64 for a parallel one), writes each child's stdin and closes it, then collects stdout and reaps
//! each child with `wait4()`. A child's time is from just before its `spawn()` to the return of its
//! `wait4()`; the batch's wall time is from before the first spawn to the last reap. Building the
//! commands and opening the stderr files happen before the clock starts.
//!
//! Peak RSS is not taken from these runs: a child created by `posix_spawn`/`vfork` (std's default) or
//! `fork` records the *parent's* resident set in its `ru_maxrss` when it execs, so `wait4()` would
//! report at least the benchmark's own size. Runs with [`Spawn::rss_file`] set are wrapped in
//! `/usr/bin/time -f %M` instead (a small C process; its own floor is about 0.5 MB) and are never timed.

use crate::signals;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// `/usr/bin/time` (GNU time), used for the peak-RSS runs.
pub const GNU_TIME: &str = "/usr/bin/time";

/// One process to start.
#[derive(Debug, Clone)]
pub struct Spawn {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment (the benchmark's own environment is not passed on).
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    /// Where the child's stderr goes (a file, so a chatty child can never block on a full pipe).
    pub stderr_file: PathBuf,
    /// `Some(file)`: run under `/usr/bin/time -f %M -o file` and report the peak RSS.
    pub rss_file: Option<PathBuf>,
    /// Killed (SIGKILL) after this long.
    pub timeout: Duration,
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
    /// Could not be started (or reaped) at all.
    Failed(String),
}

/// What one child did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// From just before spawn to the return of `wait4()`.
    pub elapsed: Duration,
    pub status: Status,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// User + system CPU of the child and of every descendant it waited for.
    pub cpu: Duration,
    /// Peak RSS in KiB from `/usr/bin/time` (only when [`Spawn::rss_file`] was set).
    pub rss_kib: Option<u64>,
}

impl Outcome {
    /// Exit status 0, or a one-line reason (stderr's last line if any).
    pub fn ok(&self) -> Result<(), String> {
        match &self.status {
            Status::Exited(0) => Ok(()),
            Status::Exited(code) => Err(self.with_stderr(format!("exit status {code}"))),
            Status::Signaled(sig) => Err(self.with_stderr(format!("killed by signal {sig}"))),
            Status::Failed(msg) => Err(msg.clone()),
        }
    }

    fn with_stderr(&self, what: String) -> String {
        match self.stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(line) => format!("{what}: {}", line.trim()),
            None => what,
        }
    }
}

/// Start every spawn of the batch, then wait for all. Returns the outcomes (in order) and the wall time.
pub fn run_batch(spawns: &[Spawn]) -> (Vec<Outcome>, Duration) {
    // Untimed preparation: commands built, stderr files created.
    let prepared: Vec<Result<Command, String>> = spawns.iter().map(prepare).collect();

    let start = Instant::now();
    let mut started: Vec<Result<(Child, Instant), String>> = Vec::with_capacity(spawns.len());
    for (spawn, cmd) in spawns.iter().zip(prepared) {
        let t0 = Instant::now();
        started.push(cmd.and_then(|mut cmd| {
            let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", spawn.program.display()))?;
            watchdog::watch(child.id(), t0 + spawn.timeout);
            if let Some(mut stdin) = child.stdin.take() {
                // A child that exits without reading its stdin makes this fail (EPIPE): that is its answer.
                let _ = stdin.write_all(&spawn.stdin);
            }
            Ok((child, t0))
        }));
    }
    let mut reaped: Vec<(Duration, Status, Vec<u8>, Duration)> = Vec::with_capacity(spawns.len());
    for entry in started {
        reaped.push(match entry {
            Err(msg) => (Duration::ZERO, Status::Failed(msg), Vec::new(), Duration::ZERO),
            Ok((mut child, t0)) => {
                let mut stdout = Vec::new();
                if let Some(mut out) = child.stdout.take() {
                    let _ = out.read_to_end(&mut stdout);
                }
                let pid = child.id();
                watchdog::unwatch(pid);
                let (status, cpu) = reap(pid);
                (t0.elapsed(), status, stdout, cpu)
            }
        });
    }
    let wall = start.elapsed();

    let outcomes = spawns
        .iter()
        .zip(reaped)
        .map(|(spawn, (elapsed, status, stdout, cpu))| Outcome {
            elapsed,
            status,
            stdout,
            stderr: std::fs::read(&spawn.stderr_file)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            cpu,
            rss_kib: spawn.rss_file.as_ref().and_then(|f| read_gnu_time_rss(f)),
        })
        .collect();
    (outcomes, wall)
}

fn prepare(spawn: &Spawn) -> Result<Command, String> {
    let stderr =
        File::create(&spawn.stderr_file).map_err(|e| format!("creating {}: {e}", spawn.stderr_file.display()))?;
    let mut cmd = match &spawn.rss_file {
        Some(file) => {
            let _ = std::fs::remove_file(file);
            let mut cmd = Command::new(GNU_TIME);
            cmd.args(["-f", "%M", "-o"]).arg(file).arg(&spawn.program);
            cmd
        }
        None => Command::new(&spawn.program),
    };
    cmd.args(&spawn.args)
        .env_clear()
        .envs(spawn.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr));
    Ok(cmd)
}

/// `/usr/bin/time -o` writes "Command exited with non-zero status N" first when the child failed; %M is the last line.
fn read_gnu_time_rss(file: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().rev().find(|l| !l.trim().is_empty())?.trim().parse().ok()
}

/// Reap `pid` with `wait4()`: its exit status and the CPU time of it and its waited-for descendants.
#[allow(unsafe_code)]
fn reap(pid: u32) -> (Status, Duration) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return (Status::Failed(format!("pid {pid} out of range")), Duration::ZERO);
    };
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a C struct of integers and timevals, for which all-zero bytes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are live, exclusively borrowed locals for the duration of the call, and
        // `pid` is our own child that nothing else reaps (std's `Child` never waits by itself; we reap once).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return (Status::Failed(format!("wait4({pid}): {err}")), Duration::ZERO);
        }
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    let status = if libc::WIFEXITED(status) {
        Status::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Status::Signaled(libc::WTERMSIG(status))
    } else {
        Status::Failed(format!("unexpected wait status {status:#x}"))
    };
    (status, cpu)
}

/// Start the thread that kills children past their deadline (see [`watchdog::start`]).
pub fn start_watchdog() {
    watchdog::start();
}

/// Kills children that outlive their deadline, and every running child once a stop signal arrived.
/// A pid is unwatched before it is reaped, under the same lock as the kill, so a kill never hits a reused pid.
mod watchdog {
    use super::*;
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    static WATCHED: Mutex<Vec<(u32, Instant)>> = Mutex::new(Vec::new());
    static STARTED: OnceLock<()> = OnceLock::new();

    fn lock() -> MutexGuard<'static, Vec<(u32, Instant)>> {
        WATCHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Start the patrol thread. `main` calls this before any thread enters a namespace: a thread
    /// starts in the namespaces (and the fs root) of the thread that creates it, and the watchdog
    /// must not pin a node namespace or a box for the rest of the run.
    pub fn start() {
        STARTED.get_or_init(|| {
            let _ = std::thread::Builder::new().name("watchdog".into()).spawn(patrol);
        });
    }

    pub fn watch(pid: u32, deadline: Instant) {
        start();
        lock().push((pid, deadline));
    }

    pub fn unwatch(pid: u32) {
        lock().retain(|&(p, _)| p != pid);
    }

    fn patrol() {
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = Instant::now();
            let stop = signals::stopped();
            let mut watched = lock();
            watched.retain(|&(pid, deadline)| {
                if !stop && now < deadline {
                    return true;
                }
                if let Ok(raw) = i32::try_from(pid) {
                    let why = if stop { "stop requested" } else { "timed out" };
                    eprintln!("tether-bench: killing pid {pid} ({why})");
                    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                }
                false
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(program: &str, args: &[&str], stdin: &str, dir: &std::path::Path, i: usize) -> Spawn {
        Spawn {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            stdin: stdin.as_bytes().to_vec(),
            stderr_file: dir.join(format!("stderr{i}")),
            rss_file: None,
            timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn batch_collects_stdout_status_stderr_and_times() {
        let dir = std::env::temp_dir().join(format!("tb-runner-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spawns = vec![
            spawn("/bin/cat", &[], "hello", &dir, 0),
            spawn("/bin/sh", &["-c", "echo oops >&2; exit 3"], "", &dir, 1),
            spawn("/nonexistent/tb-plugin", &[], "", &dir, 2),
            spawn("/bin/sleep", &["0.2"], "", &dir, 3),
        ];
        let (out, wall) = run_batch(&spawns);
        assert_eq!(out[0].stdout, b"hello");
        assert_eq!(out[0].ok(), Ok(()));
        assert_eq!(out[1].status, Status::Exited(3));
        assert_eq!(out[1].ok(), Err("exit status 3: oops".to_string()));
        assert!(matches!(out[2].status, Status::Failed(_)));
        assert!(out[3].elapsed >= Duration::from_millis(200));
        assert!(wall >= out[3].elapsed);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gnu_time_rss_is_the_last_line() {
        let dir = std::env::temp_dir().join(format!("tb-rss-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("rss");
        std::fs::write(&f, "Command exited with non-zero status 1\n4712\n").unwrap();
        assert_eq!(read_gnu_time_rss(&f), Some(4712));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
