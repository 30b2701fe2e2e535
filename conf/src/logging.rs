//! Logging through `log` + `env_logger`: to stderr, or appended to a file; never to stdout, and
//! never fatal (a log file that cannot be opened falls back to stderr).
//!
//! Level and file come from the config keys `logLevel` / `logFile`, overridden by the environment
//! variables `TETHER_LOG` (an env_logger filter, default `warn`) and `TETHER_LOG_FILE`. Every line
//! carries the binary, the pid and the invocation, so concurrent invocations can be told apart.

use std::io::Write;
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

fn setup(level: Option<&str>, file: Option<&str>) {
    INIT.call_once(|| {
        let filter = std::env::var("TETHER_LOG").ok().or_else(|| level.map(str::to_string));
        let file = std::env::var("TETHER_LOG_FILE").ok().or_else(|| file.map(str::to_string));
        let mut builder = env_logger::Builder::new();
        builder.parse_filters(filter.as_deref().unwrap_or("warn"));
        builder.write_style(env_logger::WriteStyle::Never);
        builder.target(env_logger::Target::Stderr);
        if let Some(path) = file.filter(|p| !p.is_empty()) {
            match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => {
                    builder.target(env_logger::Target::Pipe(Box::new(f)));
                }
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "tether: cannot open log file {path}: {e}; logging to stderr");
                }
            }
        }
        let binary = std::env::args().next().unwrap_or_default();
        let binary = binary.rsplit('/').next().unwrap_or("tether").to_string();
        let pid = std::process::id();
        builder.format(move |buf, record| {
            let ctx = CONTEXT.get().map(String::as_str).unwrap_or("");
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let (secs, millis) = (now.as_secs(), now.subsec_millis());
            writeln!(buf, "{secs}.{millis:03} {binary}[{pid}] {ctx} {}: {}", record.level(), record.args())
        });
        let _ = builder.try_init();
    });
}
