//! The async runtime of one invocation: current-thread only, so every task runs on the main
//! thread and a namespace switch (which is per thread) can never leak into another task.

use conf::{CniError, CniResult, ErrorCode};

/// Build the runtime for one verb.
///
/// # Errors
/// Code 999 when tokio cannot start (no file descriptors, ...).
pub fn build() -> CniResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(ErrorCode::Internal, format!("start the async runtime: {e}")))
}

/// Join the messages of several errors into one, keeping the first error's code.
pub fn combine(mut errors: Vec<CniError>) -> Result<(), CniError> {
    if errors.is_empty() {
        return Ok(());
    }
    let first = errors.remove(0);
    if errors.is_empty() {
        return Err(first);
    }
    let rest: Vec<String> = errors.iter().map(|e| e.msg.clone()).collect();
    let msg = format!("{}; also: {}", first.msg, rest.join("; "));
    Err(CniError { msg, ..first })
}
