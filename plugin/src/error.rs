//! The plugin's one error type and its one mapping to the CNI error object.
//!
//! Everything inside tether fails with an [`Error`] that says *what kind* of thing failed and
//! carries the object it concerns (the netlink request and the kernel's errno, the file and its
//! I/O error, the configuration key); [`From<Error> for CniError`] is the only place that turns a
//! kind into a CNI code, a message and details. Errors that are CNI error objects already (the
//! request's decoding in `conf`, the in-process IPAM, a delegated plugin's answer) pass through
//! unchanged ([`Error::Cni`]). The combinators for the verbs' error paths live here too:
//! [`Error::context`], [`combine`] (DEL's best effort) and [`with_cleanup`] (ADD's rollback).

use crate::netlink::NlError;
use conf::{CniError, ErrorCode};
use nix::errno::Errno;
use std::fmt;

/// What went wrong, with the object it concerns.
#[derive(Debug)]
pub enum Error {
    /// A netlink request failed: what was being done (naming the object) and the kernel's answer.
    Kernel { doing: String, cause: NlError },
    /// The kernel's state is not what the request before made it: a link gone right after its
    /// creation, a port that is no port any more. `transient` when a retry may succeed.
    KernelState { msg: String, transient: bool },
    /// A name the attachment needs is taken by something that is not ours to change (an
    /// interface in the container, a node device of another kind).
    Taken(String),
    /// An nftables operation failed (the `nft` crate names the operation, object and errno).
    Firewall(nft::NftError),
    /// A file could not be read or written.
    File { doing: String, path: String, cause: std::io::Error },
    /// A network namespace could not be opened, entered or inspected.
    Namespace { path: String, cause: String },
    /// The configuration (or what IPAM returned for it) is invalid; the message names the key.
    Config(String),
    /// A `CNI_*` environment variable (or `CNI_ARGS` key) is missing or invalid.
    Environment(String),
    /// A configuration value tether does not support.
    Unsupported(String),
    /// Not now: the node is busy (a port not yet forwarding); the runtime should retry.
    Busy(String),
    /// CHECK: the live state differs from `prevResult`.
    Drift(String),
    /// Already a CNI error object: it keeps its code, message and details.
    Cni(CniError),
    /// The process itself failed (no runtime, a helper thread died): a bug or no resources.
    Internal(String),
    /// How to fix `inner` (the CNI error's details).
    Hinted { inner: Box<Error>, hint: String },
    /// What was being done when `inner` happened (prefixed to its message).
    Context { doing: String, inner: Box<Error> },
    /// A failure, and the cleanup steps after it that failed too (reported in the details).
    WithCleanup { primary: Box<Error>, cleanup: Vec<Error> },
    /// Several independent failures (DEL and GC run every step): the first one's code.
    Several(Vec<Error>),
}

/// The plugin's results.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A CHECK failure (code 105).
    pub fn drift(msg: impl Into<String>) -> Error {
        Error::Drift(msg.into())
    }

    /// A failed netlink request: what was being done (naming the object) and the kernel's answer.
    pub fn kernel(doing: impl fmt::Display, cause: NlError) -> Error {
        Error::Kernel { doing: doing.to_string(), cause }
    }

    /// An invalid configuration (code 7) naming the key.
    pub fn config(msg: impl Into<String>) -> Error {
        Error::Config(msg.into())
    }

    /// Say how to fix it (the CNI error's details).
    #[must_use]
    pub fn hint(self, hint: impl Into<String>) -> Error {
        Error::Hinted { inner: Box::new(self), hint: hint.into() }
    }

    /// Kernel state that contradicts what was just done (code 100; 11 when `transient`).
    pub fn kernel_state(msg: impl Into<String>, transient: bool) -> Error {
        Error::KernelState { msg: msg.into(), transient }
    }

    /// Say what was being done.
    #[must_use]
    pub fn context(self, doing: impl fmt::Display) -> Error {
        Error::Context { doing: doing.to_string(), inner: Box::new(self) }
    }
}

impl From<CniError> for Error {
    fn from(e: CniError) -> Error {
        Error::Cni(e)
    }
}

impl From<nft::NftError> for Error {
    fn from(e: nft::NftError) -> Error {
        Error::Firewall(e)
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> CniError {
        e.to_cni()
    }
}

impl Error {
    /// The CNI error object a runtime reads: the one mapping from kinds to codes.
    pub fn to_cni(&self) -> CniError {
        match self {
            Error::Kernel { doing, cause } => {
                let code = match cause.errno {
                    Some(Errno::EBUSY | Errno::EAGAIN) => ErrorCode::TryAgainLater,
                    _ => ErrorCode::Netlink,
                };
                CniError::new(code, format!("{doing}: {cause}"))
            }
            Error::KernelState { msg, transient } => {
                CniError::new(if *transient { ErrorCode::TryAgainLater } else { ErrorCode::Netlink }, msg.as_str())
            }
            Error::Firewall(e) => CniError::new(ErrorCode::Nftables, e.to_string()),
            Error::File { doing, path, cause } => CniError::new(ErrorCode::Io, format!("{doing} {path}: {cause}")),
            Error::Namespace { path, cause } => {
                CniError::new(ErrorCode::Netns, format!("network namespace {path}: {cause}"))
            }
            Error::Taken(msg) => CniError::new(ErrorCode::Netlink, msg.as_str()),
            Error::Config(msg) => CniError::new(ErrorCode::InvalidConfig, msg.as_str()),
            Error::Environment(msg) => CniError::new(ErrorCode::InvalidEnvironment, msg.as_str()),
            Error::Unsupported(msg) => CniError::new(ErrorCode::UnsupportedField, msg.as_str()),
            Error::Busy(msg) => CniError::new(ErrorCode::TryAgainLater, msg.as_str()),
            Error::Hinted { inner, hint } => inner.to_cni().with_details(hint.as_str()),
            Error::Drift(msg) => CniError::new(ErrorCode::Drift, msg.as_str()),
            Error::Cni(e) => e.clone(),
            Error::Internal(msg) => CniError::new(ErrorCode::Internal, msg.as_str()),
            Error::Context { doing, inner } => inner.to_cni().context(doing),
            Error::WithCleanup { primary, cleanup } => {
                let primary = primary.to_cni();
                let also: Vec<String> = cleanup.iter().map(|e| e.to_cni().to_string()).collect();
                let details = match primary.details.is_empty() {
                    true => String::new(),
                    false => format!("{}; ", primary.details),
                };
                let details = format!("{details}cleanup after the failure also failed: {}", also.join("; "));
                CniError { details, ..primary }
            }
            Error::Several(errors) => {
                let mut errors = errors.iter().map(Error::to_cni);
                let Some(first) = errors.next() else {
                    return CniError::new(ErrorCode::Internal, "an empty list of errors");
                };
                let rest: Vec<String> = errors.map(|e| e.msg).collect();
                match rest.is_empty() {
                    true => first,
                    false => CniError { msg: format!("{}; also: {}", first.msg, rest.join("; ")), ..first },
                }
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Through the one mapping, so a log line says what the runtime reads.
        fmt::Display::fmt(&self.to_cni(), f)
    }
}

impl std::error::Error for Error {}

/// DEL and GC: every step ran; report the failures together (none: success).
pub fn combine(errors: Vec<Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        _ => Err(Error::Several(errors)),
    }
}

/// ADD: the failure, plus what its rollback could not undo.
pub fn with_cleanup(primary: Error, cleanup: Vec<Error>) -> Error {
    match cleanup.is_empty() {
        true => primary,
        false => Error::WithCleanup { primary: Box::new(primary), cleanup },
    }
}

/// Attach "what was being done" to a netlink result.
pub trait Doing<T> {
    /// The failure as an [`Error::Kernel`] whose message starts with `doing`.
    fn doing(self, doing: impl fmt::Display) -> Result<T>;
}

impl<T> Doing<T> for std::result::Result<T, NlError> {
    fn doing(self, doing: impl fmt::Display) -> Result<T> {
        self.map_err(|cause| Error::kernel(doing, cause))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_their_codes() {
        let busy = NlError::kernel(-(Errno::EBUSY as i32));
        let cases: Vec<(Error, u32)> = vec![
            (Error::Kernel { doing: "delete veth0".into(), cause: NlError::kernel(-(Errno::EPERM as i32)) }, 100),
            (Error::Kernel { doing: "delete veth0".into(), cause: busy }, 11),
            (Error::kernel_state("gone", false), 100),
            (Error::kernel_state("gone", true), 11),
            (Error::config("mtu"), 7),
            (Error::drift("x"), 105),
            (Error::Internal("x".into()), 999),
            (Error::Cni(CniError::new(ErrorCode::Ipam, "full")), 104),
            (Error::Cni(CniError { code: 42, msg: "delegate".into(), details: String::new() }), 42),
        ];
        for (e, code) in cases {
            assert_eq!(CniError::from(e).code, code);
        }
    }

    #[test]
    fn messages_name_the_object_and_the_cause() {
        let e = Error::Kernel { doing: "delete veth0".into(), cause: NlError::kernel(-(Errno::EPERM as i32)) };
        assert_eq!(CniError::from(e.context("roll back")).msg, "roll back: delete veth0: Operation not permitted");
        let e = Error::File {
            doing: "write 1 to".into(),
            path: "/proc/sys/net/ipv4/ip_forward".into(),
            cause: std::io::Error::from_raw_os_error(13),
        };
        assert_eq!(CniError::from(e).msg, "write 1 to /proc/sys/net/ipv4/ip_forward: Permission denied (os error 13)");
    }

    #[test]
    fn combinators_keep_the_first_code_and_every_message() {
        let all = combine(vec![Error::drift("a"), Error::config("b")]).map_err(CniError::from);
        assert_eq!(all, Err(CniError::new(ErrorCode::Drift, "a; also: b")));
        assert!(combine(Vec::new()).is_ok());
        let e = CniError::from(with_cleanup(Error::config("x").hint("hint"), vec![Error::drift("y")]));
        assert_eq!((e.code, e.msg.as_str()), (7, "x"));
        assert_eq!(e.details, "hint; cleanup after the failure also failed: y (code 105)");
        assert_eq!(CniError::from(with_cleanup(Error::drift("z"), Vec::new())).details, "");
    }
}
