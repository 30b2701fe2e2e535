//! Delegation (SPEC §4): run another plugin, typically IPAM, with the same environment and the
//! same stdin, `CNI_COMMAND` possibly overridden. Its stdout is captured and decoded; its stderr
//! goes straight to ours; its error code and message pass through unchanged.
//!
//! Must be called from a thread in the node's network namespace: a child inherits the namespace
//! of the thread that spawns it.

use crate::env::Command;
use crate::error::{CniError, CniResult, ErrorCode};
use crate::result::NetResult;
use crate::skel::Request;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

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

/// A plugin type is a file name looked up in `CNI_PATH`, never a path.
pub(crate) fn is_plugin_name(plugin_type: &str) -> bool {
    !plugin_type.is_empty() && !plugin_type.contains('/') && plugin_type != "." && plugin_type != ".."
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Run `plugin_type` for `request` with `command`; return its stdout document, if any.
///
/// # Errors
/// The delegate's own error object (code and message unchanged) when it fails; code 103 when it
/// cannot be started or answers something that is not JSON.
pub fn exec(request: &Request, plugin_type: &str, command: Command) -> CniResult<Option<serde_json::Value>> {
    let binary = find_plugin(plugin_type, &request.invocation.path)?;
    log::debug!("delegating {} to {}", command.as_str(), binary.display());
    let mut child = Process::new(&binary)
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CniError::new(ErrorCode::Delegate, format!("run {}: {e}", binary.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A delegate that exits without reading stdin closes the pipe; its answer still counts.
        let _ = stdin.write_all(&request.stdin);
    }
    let output = child
        .wait_with_output()
        .map_err(|e| CniError::new(ErrorCode::Delegate, format!("wait for {}: {e}", binary.display())))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let text = text.trim();
    if !output.status.success() {
        return Err(delegate_error(plugin_type, text, output.status));
    }
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|e| {
        CniError::new(ErrorCode::Delegate, format!("plugin {plugin_type:?} answered something that is not JSON"))
            .with_details(format!("{e}: {text}"))
    })
}

fn delegate_error(plugin_type: &str, stdout: &str, status: std::process::ExitStatus) -> CniError {
    let parsed: Option<serde_json::Value> = serde_json::from_str(stdout).ok();
    match parsed.as_ref().and_then(|v| v.get("code")?.as_u64().map(|c| (c, v))) {
        Some((code, v)) => CniError {
            code: u32::try_from(code).unwrap_or(ErrorCode::Delegate.as_u32()),
            msg: v.get("msg").and_then(|m| m.as_str()).unwrap_or("").to_string(),
            details: v.get("details").and_then(|m| m.as_str()).unwrap_or("").to_string(),
        }
        .context(format!("plugin {plugin_type:?}")),
        None if stdout.is_empty() => CniError::new(
            ErrorCode::Delegate,
            format!("plugin {plugin_type:?} failed with no error message ({status})"),
        ),
        None => CniError::new(ErrorCode::Delegate, format!("plugin {plugin_type:?} failed ({status})"))
            .with_details(stdout.to_string()),
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
        let status = std::process::Command::new("false").status().unwrap();
        let e = delegate_error("host-local", r#"{"code":7,"msg":"no IP ranges specified"}"#, status);
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("no IP ranges specified"));
        let e = delegate_error("x", "", status);
        assert_eq!(e.code, 103);
    }
}
