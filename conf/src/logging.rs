//! Logging through `log` + `env_logger`: to stderr, or appended to a file; never to stdout, and
//! never fatal (a log file that cannot be opened, or that is stdout, falls back to stderr with a
//! warning there).
//!
//! Level and file come from the config keys `logLevel` / `logFile`, overridden by the environment
//! variables `TETHER_LOG` (an env_logger filter, default `warn`) and `TETHER_LOG_FILE`. Every line
//! starts with an RFC 3339 UTC timestamp and carries the binary, the pid and the invocation, so
//! concurrent invocations can be told apart.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::{Once, OnceLock};

static INIT: Once = Once::new();
static CONTEXT: OnceLock<String> = OnceLock::new();

/// Tag every following log line with `context` (e.g. `ADD c1/eth0`). Only the first call counts.
pub fn set_context(context: String) {
    let _ = CONTEXT.set(context);
}

/// Initialise from a decoded configuration's `logLevel` / `logFile`, then the environment.
pub fn configure_from(raw: &serde_json::Value) {
    setup(raw.get("logLevel").and_then(|v| v.as_str()), raw.get("logFile").and_then(|v| v.as_str()));
}

/// Names of stdout that are refused without opening them; any other name of it is caught by
/// comparing the opened file with fd 1.
const STDOUT_NAMES: [&str; 4] = ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1", "/proc/thread-self/fd/1"];

/// Open `path` for appending, created with mode 0600 (logs name containers and addresses).
/// Refused when it is the process's stdout: rule 1, stdout carries the answer and nothing else.
fn open_log_file(path: &str) -> Result<File, String> {
    if STDOUT_NAMES.contains(&path) {
        return Err("it is stdout, which carries only the CNI answer".into());
    }
    let file =
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(|e| e.to_string())?;
    let opened = file.metadata().map_err(|e| e.to_string())?;
    // stat() follows the magic link to the file fd 1 has open, a pipe or a deleted file included.
    match std::fs::metadata("/proc/self/fd/1") {
        Ok(stdout) if (stdout.dev(), stdout.ino()) == (opened.dev(), opened.ino()) => {
            Err("it is the same file as stdout, which carries only the CNI answer".into())
        }
        Ok(_) => Ok(file),
        // Rust opens /dev/null on a closed fd 1 at start, so fd 1 exists; without /proc the file
        // cannot be proven not to be stdout.
        Err(e) => Err(format!("cannot compare it with stdout: {e}")),
    }
}

fn setup(level: Option<&str>, file: Option<&str>) {
    INIT.call_once(|| {
        let filter = std::env::var("TETHER_LOG").ok().or_else(|| level.map(str::to_string));
        let file = std::env::var("TETHER_LOG_FILE").ok().or_else(|| file.map(str::to_string));
        let mut builder = env_logger::Builder::new();
        builder.parse_filters(filter.as_deref().unwrap_or("warn"));
        builder.write_style(env_logger::WriteStyle::Never);
        builder.target(env_logger::Target::Stderr);
        if let Some(path) = file.filter(|p| !p.is_empty()) {
            match open_log_file(&path) {
                Ok(f) => {
                    builder.target(env_logger::Target::Pipe(Box::new(f)));
                }
                Err(why) => {
                    let _ = writeln!(std::io::stderr(), "tether: not logging to {path}: {why}; logging to stderr");
                }
            }
        }
        let binary = std::env::args().next().unwrap_or_default();
        let binary = binary.rsplit('/').next().unwrap_or("tether").to_string();
        let pid = std::process::id();
        builder.format(move |buf, record| {
            let ctx = CONTEXT.get().map(String::as_str).unwrap_or("");
            let now = crate::timestamp::rfc3339_utc(std::time::SystemTime::now());
            writeln!(buf, "{now} {binary}[{pid}] {ctx} {}: {}", record.level(), record.args())
        });
        let _ = builder.try_init();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("tether-conf-log-{}-{tag}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_log_file_is_created_private() {
        let dir = Scratch::new("mode");
        let path = dir.0.join("tether.log");
        open_log_file(path.to_str().unwrap()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn stdout_by_any_name_is_refused() {
        for name in STDOUT_NAMES {
            assert!(open_log_file(name).is_err(), "{name}");
        }
        // a name nobody lists: a symlink to fd 1
        let dir = Scratch::new("alias");
        let alias = dir.0.join("out");
        std::os::unix::fs::symlink("/proc/self/fd/1", &alias).unwrap();
        assert!(open_log_file(alias.to_str().unwrap()).is_err());
        // and a file that is not stdout is fine
        assert!(open_log_file(dir.0.join("ok.log").to_str().unwrap()).is_ok());
    }
}
