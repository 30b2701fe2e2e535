//! The dispatcher: read the environment and stdin once, check versions, run the verb's handler and
//! write the single answer. This is the only module that touches stdout or the exit code.
//!
//! Order of checks follows Go's `pkg/skel`: environment (4), stdin (5), JSON (6), version (1),
//! network name (7), then whether the version allows the verb (1). A panic in a handler becomes a
//! code-999 error object; nothing else ever reaches stdout.

use crate::config::NetConf;
use crate::env::{Command, Invocation};
use crate::error::{CniError, CniResult, ErrorCode};
use crate::request::Request;
use crate::result::NetResult;
use crate::version::{self, Version};
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::OnceLock;

/// The version to answer a panic in: the request's once it is known.
static ANSWER_VERSION: OnceLock<Version> = OnceLock::new();

/// What a plugin does for each verb. Handlers return values; they never print or exit.
pub trait Plugin {
    /// ADD: attach and return the result.
    fn add(&self, request: &Request) -> CniResult<NetResult>;
    /// DEL: detach, best-effort and idempotent.
    fn del(&self, request: &Request) -> CniResult<()>;
    /// CHECK: verify the attachment against `prevResult`.
    fn check(&self, request: &Request) -> CniResult<()>;
    /// STATUS: can the plugin serve ADD now?
    fn status(&self, request: &Request) -> CniResult<()>;
    /// GC: remove state of attachments not in `cni.dev/valid-attachments`.
    fn gc(&self, request: &Request) -> CniResult<()>;
}

/// The answer of one invocation: what goes to stdout (if anything) and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// One JSON document, or nothing.
    pub stdout: Option<String>,
    /// 0 on success.
    pub exit_code: u8,
}

impl Answer {
    fn success(doc: Option<serde_json::Value>) -> Answer {
        Answer { stdout: doc.map(|d| d.to_string()), exit_code: 0 }
    }

    fn error(err: &CniError, version: &str) -> Answer {
        Answer { stdout: Some(err.to_json(version).to_string()), exit_code: 1 }
    }
}

/// Check that `version` allows `command` (CHECK from 0.4.0, STATUS and GC from 1.1.0): code 1.
fn check_verb_allowed(command: Command, version: Version) -> CniResult<()> {
    let allowed = match command {
        Command::Check => version.has_check(),
        Command::Status | Command::Gc => version.has_status_and_gc(),
        _ => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("config version does not allow {}", command.as_str()),
        )
        .with_details(format!("cniVersion {version}")))
    }
}

/// Build the request: everything up to the handler. Errors carry the version to report them in.
fn prepare(invocation: Invocation, stdin: &mut dyn Read) -> Result<Request, (CniError, String)> {
    let current = || version::CURRENT.to_string();
    // Room for a typical configuration: read_to_end grows an empty buffer from 32 bytes, one
    // read(2) per doubling.
    let mut bytes = Vec::with_capacity(16 * 1024);
    stdin.read_to_end(&mut bytes).map_err(|e| {
        (CniError::new(ErrorCode::Io, "error reading from stdin").with_details(e.to_string()), current())
    })?;
    let raw = NetConf::decode(&bytes).map_err(|e| (e, current()))?;
    crate::logging::configure_from(&raw);
    let config = NetConf::from_value(raw).map_err(|e| (e, current()))?;
    let version = config.version.as_str().to_string();
    check_verb_allowed(invocation.command, config.version).map_err(|e| (e, version))?;
    Ok(Request { invocation, config, stdin: bytes })
}

/// The environment variable that makes the next invocation panic inside the verb, so the tests can
/// check the panic path of the binaries as built (release builds abort on panic: see [`run`]).
/// Only the node's root sets a plugin's environment; a runtime passes only `CNI_*` variables.
pub const PANIC_FOR_TESTS: &str = "TETHER_TEST_PANIC";

/// The verb's handler.
fn handle(plugin: &dyn Plugin, request: &Request) -> CniResult<Option<serde_json::Value>> {
    let version = request.version();
    match request.invocation.command {
        Command::Add => plugin.add(request).and_then(|r| r.to_json(version)).map(Some),
        Command::Del => plugin.del(request).map(|()| None),
        Command::Check => plugin.check(request).map(|()| None),
        Command::Status => plugin.status(request).map(|()| None),
        Command::Gc => plugin.gc(request).map(|()| None),
        Command::Version => Ok(Some(version::version_reply())),
    }
}

/// Run one invocation through `plugin`, with the environment from `lookup` and stdin from `stdin`.
/// Pure with respect to stdout and the exit code: the caller writes the [`Answer`].
pub fn dispatch(plugin: &dyn Plugin, lookup: impl Fn(&str) -> Option<String>, stdin: &mut dyn Read) -> Answer {
    let panic_on_purpose = lookup(PANIC_FOR_TESTS).is_some_and(|v| v == "1");
    let invocation = match Invocation::from_lookup(lookup) {
        Ok(inv) => inv,
        Err(e) => return Answer::error(&e, version::CURRENT),
    };
    if invocation.command == Command::Version {
        return Answer::success(Some(version::version_reply()));
    }
    let short_id: String = invocation.container_id.chars().take(12).collect();
    crate::logging::set_context(format!("{} {short_id}/{}", invocation.command.as_str(), invocation.ifname));
    let request = match prepare(invocation, stdin) {
        Ok(r) => r,
        Err((e, v)) => return Answer::error(&e, &v),
    };
    let version = request.version();
    let _ = ANSWER_VERSION.set(version);
    log::debug!(
        "{} container={} ifname={} network={}",
        request.invocation.command.as_str(),
        request.invocation.container_id,
        request.invocation.ifname,
        request.config.name
    );
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if panic_on_purpose {
            panic!("{PANIC_FOR_TESTS}=1: a panic on purpose, to test what a runtime reads then");
        }
        handle(plugin, &request)
    }));
    match outcome {
        Ok(Ok(doc)) => Answer::success(doc),
        Ok(Err(e)) => {
            log::error!("{} failed: {e}", request.invocation.command.as_str());
            Answer::error(&e, version.as_str())
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Answer::error(&CniError::new(ErrorCode::Internal, "internal error").with_details(what), version.as_str())
        }
    }
}

/// The entry point of the plugin binary `name`: dispatch the process's own invocation and write
/// the answer.
///
/// `--version` (or `-V`) prints tether's release, commit and the spec versions to stdout and exits
/// 0: an operator's question, not a CNI invocation. With no `CNI_COMMAND` it prints `about` and
/// the same to stderr and exits 0, as the Go skel does.
#[allow(clippy::print_stdout, clippy::disallowed_methods)]
pub fn run(plugin: &dyn Plugin, name: &str, about: &str) -> ExitCode {
    // Release builds abort on panic (smaller, faster to load), so nothing unwinds back to
    // `dispatch`: the hook itself answers with the code-999 object and ends the process, in every
    // build, so a panic yields exactly one document and never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        log::error!("panic: {info}");
        let version = ANSWER_VERSION.get().map_or(version::CURRENT, |v| v.as_str());
        let err = CniError::new(ErrorCode::Internal, "internal error").with_details(info.to_string());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", err.to_json(version)).and_then(|()| out.flush());
        std::process::exit(1);
    }));
    if std::env::args().nth(1).is_some_and(|arg| arg == "--version" || arg == "-V") {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", version::describe(name)).and_then(|()| out.flush());
        return ExitCode::SUCCESS;
    }
    if std::env::var_os("CNI_COMMAND").is_none_or(|c| c.is_empty()) {
        let _ = writeln!(std::io::stderr(), "{name}: {about}\n{}", version::describe(name));
        return ExitCode::SUCCESS;
    }
    let answer = dispatch(plugin, |k| std::env::var(k).ok(), &mut std::io::stdin().lock());
    if let Some(doc) = &answer.stdout {
        let mut out = std::io::stdout().lock();
        // If stdout is gone there is nobody left to tell; the exit code still says it.
        let _ = writeln!(out, "{doc}").and_then(|()| out.flush());
    }
    ExitCode::from(answer.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Interface, IpConfig};
    use std::collections::HashMap;

    struct Fake;

    impl Plugin for Fake {
        fn add(&self, _: &Request) -> CniResult<NetResult> {
            Ok(NetResult {
                interfaces: vec![Interface { name: "eth0".into(), ..Interface::default() }],
                ips: vec![IpConfig { address: "198.18.0.2/24".parse().unwrap(), gateway: None, interface: Some(0) }],
                ..NetResult::default()
            })
        }
        fn del(&self, _: &Request) -> CniResult<()> {
            Ok(())
        }
        fn check(&self, _: &Request) -> CniResult<()> {
            Err(CniError::new(ErrorCode::Drift, "eth0 lost 198.18.0.2/24"))
        }
        fn status(&self, _: &Request) -> CniResult<()> {
            Ok(())
        }
        fn gc(&self, _: &Request) -> CniResult<()> {
            panic!("boom")
        }
    }

    fn run_fake(env: &[(&str, &str)], stdin: &str) -> Answer {
        let map: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        dispatch(&Fake, |k| map.get(k).cloned(), &mut stdin.as_bytes())
    }

    fn env(cmd: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
    }

    fn code(a: &Answer) -> Option<u64> {
        let doc: serde_json::Value = serde_json::from_str(a.stdout.as_deref()?).ok()?;
        doc["code"].as_u64()
    }

    #[test]
    fn add_prints_result_in_request_version() {
        let a = run_fake(&env("ADD"), r#"{"cniVersion":"0.3.1","name":"n","type":"t"}"#);
        assert_eq!(a.exit_code, 0);
        let doc: serde_json::Value = serde_json::from_str(a.stdout.as_deref().unwrap()).unwrap();
        assert_eq!(doc["cniVersion"], "0.3.1");
        assert_eq!(doc["ips"][0]["version"], "4");
    }

    #[test]
    fn del_prints_nothing() {
        let a = run_fake(&env("DEL"), r#"{"cniVersion":"1.0.0","name":"n"}"#);
        assert_eq!(a, Answer { stdout: None, exit_code: 0 });
    }

    #[test]
    fn version_ignores_stdin() {
        let a = run_fake(&[("CNI_COMMAND", "VERSION")], "garbage");
        assert_eq!(a.stdout.unwrap(), version::version_reply().to_string());
    }

    #[test]
    fn malformed_input_codes() {
        assert_eq!(code(&run_fake(&env("ADD"), "not json")), Some(6));
        assert_eq!(code(&run_fake(&env("ADD"), r#"{"cniVersion":"9.9.9","name":"n"}"#)), Some(1));
        assert_eq!(code(&run_fake(&env("ADD"), r#"{"cniVersion":"1.0.0"}"#)), Some(7));
        assert_eq!(code(&run_fake(&env("CHECK"), r#"{"cniVersion":"0.3.1","name":"n"}"#)), Some(1));
        assert_eq!(code(&run_fake(&[("CNI_COMMAND", "STATUS")], r#"{"cniVersion":"1.0.0","name":"n"}"#)), Some(1));
        assert_eq!(code(&run_fake(&[("CNI_COMMAND", "GC")], r#"{"cniVersion":"1.0.0","name":"n"}"#)), Some(1));
        let mut no_ifname = env("ADD");
        no_ifname.retain(|(k, _)| *k != "CNI_IFNAME");
        assert_eq!(code(&run_fake(&no_ifname, "{}")), Some(4));
    }

    #[test]
    fn handler_error_is_one_error_object() {
        let a = run_fake(&env("CHECK"), r#"{"cniVersion":"1.0.0","name":"n"}"#);
        assert_eq!(a.exit_code, 1);
        let doc: serde_json::Value = serde_json::from_str(a.stdout.as_deref().unwrap()).unwrap();
        assert_eq!(doc, serde_json::json!({"cniVersion":"1.0.0","code":105,"msg":"eth0 lost 198.18.0.2/24"}));
    }

    #[test]
    fn panic_becomes_code_999() {
        let a = run_fake(&[("CNI_COMMAND", "GC")], r#"{"cniVersion":"1.1.0","name":"n"}"#);
        assert_eq!(a.exit_code, 1);
        assert_eq!(code(&a), Some(999));
        assert!(a.stdout.unwrap().contains("boom"));
    }
}
