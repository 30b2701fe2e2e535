//! Running a child process with separate stdout/stderr capture, a stdin document and a timeout.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long any child may run before it is killed (with its whole process group), times
/// [`timeout_scale`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `TETHER_TEST_TIMEOUT_SCALE` (a whole number, default 1) multiplies every timeout.
/// scripts/kernel-test sets it for its guests, which TCG emulates about ten times slower than the
/// host: there one of 64 parallel ADDs outlived 30 s while all of them were making progress. A
/// timeout only catches hangs; it asserts no speed.
pub fn timeout_scale() -> u32 {
    std::env::var("TETHER_TEST_TIMEOUT_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// Everything about one finished (or killed) child: what ran and what it said.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command line, shell-quoted for copy and paste.
    pub cmdline: String,
    /// Environment variables set explicitly for the child (`KEY=VALUE`).
    pub env: Vec<(String, String)>,
    /// What was written to stdin.
    pub stdin: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// True when the child was killed because it outlived its timeout.
    pub timed_out: bool,
}

impl Run {
    /// The exit code; `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Exit code 0 and not timed out.
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// Panic with the full context unless the child succeeded.
    #[track_caller]
    pub fn assert_success(&self) -> &Run {
        if !self.success() {
            panic!("command failed:\n{self}");
        }
        self
    }
}

/// Shell-quote one word for display.
pub fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  command: {}", self.cmdline)?;
        if !self.env.is_empty() {
            let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
            writeln!(f, "  env:     {}", env.join(" "))?;
        }
        if !self.stdin.is_empty() {
            writeln!(f, "  stdin:   {}", self.stdin.trim_end())?;
        }
        let status = match (self.timed_out, self.status.code(), self.status.signal()) {
            (true, _, _) => "killed after the timeout".to_string(),
            (false, Some(c), _) => format!("exit code {c}"),
            (false, None, Some(s)) => format!("killed by signal {s}"),
            (false, None, None) => "unknown".to_string(),
        };
        writeln!(f, "  status:  {status}")?;
        writeln!(f, "  stdout:  {}", self.stdout.trim_end())?;
        write!(f, "  stderr:  {}", self.stderr.trim_end())
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Run `cmd` with `stdin`, capturing stdout and stderr separately; kill its process group after
/// `timeout`. `env` is only recorded for messages (the caller already put it into `cmd` or its args).
///
/// Panics only when the child cannot be spawned at all (a missing program is a harness problem).
pub fn run(mut cmd: Command, env: Vec<(String, String)>, stdin: &str, timeout: Duration) -> Run {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut words = vec![quote(&program)];
    words.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    let cmdline = words.join(" ");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot spawn {cmdline}: {e}"),
    };
    let pid = child.id();
    let input = stdin.as_bytes().to_vec();
    let mut child_stdin = child.stdin.take();
    let writer = thread::spawn(move || {
        if let Some(mut s) = child_stdin.take() {
            // The child may exit without reading stdin (VERSION): a broken pipe is fine.
            let _ = s.write_all(&input);
        }
    });
    let out = child.stdout.take().map(read_all);
    let err = child.stderr.take().map(read_all);
    let deadline = Instant::now() + timeout * timeout_scale();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                if let Ok(pgid) = i32::try_from(pid) {
                    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::SIGKILL);
                }
                let _ = child.kill();
                match child.wait() {
                    Ok(s) => break s,
                    Err(e) => panic!("cannot reap {cmdline}: {e}"),
                }
            }
            Ok(None) => thread::sleep(Duration::from_millis(2)),
            Err(e) => panic!("cannot wait for {cmdline}: {e}"),
        }
    };
    let _ = writer.join();
    let stdout = out.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    let stderr = err.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    Run { cmdline, env, stdin: stdin.to_string(), status, stdout, stderr, timed_out }
}

/// Run a helper tool (`ip`, `nft`, ...) with arguments and no stdin, with the default timeout.
pub fn tool(program: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run(cmd, Vec::new(), "", DEFAULT_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_stdout_and_stderr_separately() {
        let mut c = Command::new("sh");
        c.args(["-c", "cat; echo err >&2; exit 3"]);
        let run = run(c, Vec::new(), "in", DEFAULT_TIMEOUT);
        assert_eq!(run.stdout, "in");
        assert_eq!(run.stderr, "err\n");
        assert_eq!(run.code(), Some(3));
        assert!(!run.success());
    }

    #[test]
    fn kills_on_timeout() {
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 30 & sleep 30"]);
        let run = run(c, Vec::new(), "", Duration::from_millis(200));
        assert!(run.timed_out);
        assert!(!run.success());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("CNI_PATH=/a:/b"), "CNI_PATH=/a:/b");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
