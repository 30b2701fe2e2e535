//! tether-ipam's errors: what went wrong, typed, inside the crate; and the one mapping to the CNI
//! error object (code and message) a runtime reads, `impl From<Error> for CniError`.
//!
//! Code inside the crate returns [`Result`]; only the entry points ([`crate::HostLocal`]'s verbs,
//! [`crate::fuzzing`]) turn it into a [`CniError`]. Every I/O failure carries the path it
//! concerns ([`IoResultExt::at`]); every configuration error names the key at fault. A damaged
//! index is no error at all (it is rebuilt: see `store/mod.rs`); a store that cannot be read or
//! written is one ([`Error::Io`]).

use conf::{CniError, ErrorCode};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Something tether-ipam could not do.
#[derive(Debug)]
pub enum Error {
    /// Reading or writing a file or directory failed (code 5): what was being done to which
    /// path, and why.
    Io {
        /// What was being done: "lock", "create", "read", "write", "reserve", "release", ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The configuration is invalid (code 7). The message names the key at fault
    /// (`ipam.ranges[0][0].subnet`, `runtimeConfig.ips[1]`, ...).
    Config {
        /// What is wrong, and where.
        msg: String,
        /// More, such as serde's complaint; may be empty.
        details: String,
    },
    /// A range set has no free address left (code 104).
    Exhausted {
        /// The index of the range set.
        set: usize,
        /// The set, as its ranges (`198.18.0.2-198.18.0.254`).
        ranges: String,
    },
    /// The addresses asked for cannot be given (code 104): a requested address is taken, is a
    /// gateway or lies in no set, or conflicts with the one the attachment already holds.
    Refused(String),
    /// CHECK: the attachment holds no reservation (code 104).
    NotReserved {
        /// The attachment ("container c1 interface eth0 in network \"n\"").
        attachment: String,
    },
    /// CHECK: an address of `prevResult` is not reserved for the attachment (code 105).
    Drift {
        /// The address.
        ip: IpAddr,
        /// The attachment.
        attachment: String,
    },
    /// STATUS: the plugin cannot serve an ADD now (code 50).
    Unavailable(String),
    /// DEL: some reservations could not be released (code 5); the others were.
    Release(Vec<(PathBuf, io::Error)>),
    /// GC: some reservations could not be handled (code 5); the scan went on.
    Gc {
        /// The network.
        network: String,
        /// One line per problem.
        problems: Vec<String>,
    },
    /// An error of the protocol layer (`CNI_ARGS`, ...), passed through unchanged.
    Cni(CniError),
    /// The same error, in the context of what was being done (its code unchanged).
    Context {
        /// What was being done, prefixed to the message.
        what: String,
        /// The error.
        source: Box<Error>,
    },
}

/// Shorthand for results whose error is an [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O failure of `action` on `path`.
    pub fn io(action: &'static str, path: &Path, source: io::Error) -> Error {
        Error::Io { action, path: path.to_path_buf(), source }
    }

    /// An invalid configuration; `msg` names the key.
    pub fn config(msg: impl Into<String>) -> Error {
        Error::Config { msg: msg.into(), details: String::new() }
    }

    /// An invalid configuration with details (serde's complaint, ...); `msg` names the key.
    pub fn config_with_details(msg: impl Into<String>, details: impl Into<String>) -> Error {
        Error::Config { msg: msg.into(), details: details.into() }
    }

    /// Prefix the message with what was being done, keeping the code.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error::Context { what: what.to_string(), source: Box::new(self) }
    }

    /// The CNI code this error is answered with.
    pub fn code(&self) -> u32 {
        match self {
            Error::Io { .. } | Error::Release(_) | Error::Gc { .. } => ErrorCode::Io.as_u32(),
            Error::Config { .. } => ErrorCode::InvalidConfig.as_u32(),
            Error::Exhausted { .. } | Error::Refused(_) | Error::NotReserved { .. } => ErrorCode::Ipam.as_u32(),
            Error::Drift { .. } => ErrorCode::Drift.as_u32(),
            Error::Unavailable(_) => ErrorCode::PluginNotAvailable.as_u32(),
            Error::Cni(e) => e.code,
            Error::Context { source, .. } => source.code(),
        }
    }

    fn details(&self) -> String {
        match self {
            Error::Config { details, .. } => details.clone(),
            Error::Gc { problems, .. } => problems.join("; "),
            Error::Cni(e) => e.details.clone(),
            Error::Context { source, .. } => source.details(),
            _ => String::new(),
        }
    }
}

/// The message: the object and the cause (details apart).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { action, path, source } => write!(f, "{action} {}: {source}", path.display()),
            Error::Config { msg, .. } => f.write_str(msg),
            Error::Exhausted { set, ranges } => write!(f, "no IP addresses available in range set {set}: {ranges}"),
            Error::Refused(msg) | Error::Unavailable(msg) => f.write_str(msg),
            Error::NotReserved { attachment } => write!(f, "no address is reserved for {attachment}"),
            Error::Drift { ip, attachment } => {
                write!(f, "address {ip} from prevResult is not reserved for {attachment}")
            }
            Error::Release(failed) => {
                let list: Vec<String> = failed.iter().map(|(p, e)| format!("{}: {e}", p.display())).collect();
                write!(f, "cannot release {}", list.join("; "))
            }
            Error::Gc { network, problems } => {
                write!(f, "GC of network {network:?}: {} reservation(s) could not be handled", problems.len())
            }
            Error::Cni(e) => f.write_str(&e.msg),
            Error::Context { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<CniError> for Error {
    fn from(e: CniError) -> Error {
        Error::Cni(e)
    }
}

/// The one mapping to what a runtime reads.
impl From<Error> for CniError {
    fn from(e: Error) -> CniError {
        CniError { code: e.code(), msg: e.to_string(), details: e.details() }
    }
}

/// `io::Result` into [`Result`], naming the action and the path.
pub trait IoResultExt<T> {
    /// The failure as [`Error::Io`] of `action` on `path`.
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoResultExt<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_keeps_codes_messages_and_details() {
        let io = Error::io("lock", Path::new("/s/lock"), io::Error::from_raw_os_error(13));
        let e = CniError::from(io.context("network \"n\""));
        assert_eq!((e.code, e.details.as_str()), (5, ""));
        assert_eq!(e.msg, "network \"n\": lock /s/lock: Permission denied (os error 13)");
        let e = CniError::from(Error::config_with_details("ipam.dataDir must be a string", "got 5"));
        assert_eq!((e.code, e.msg.as_str(), e.details.as_str()), (7, "ipam.dataDir must be a string", "got 5"));
        let e = CniError::from(Error::Exhausted { set: 0, ranges: "198.18.0.1-198.18.0.6".into() });
        assert_eq!((e.code, e.msg.as_str()), (104, "no IP addresses available in range set 0: 198.18.0.1-198.18.0.6"));
        let passed = CniError::new(ErrorCode::InvalidEnvironment, "bad IP=").with_details("x");
        assert_eq!(CniError::from(Error::from(passed.clone())), passed);
        let gc = Error::Gc { network: "n".into(), problems: vec!["a".into(), "b".into()] };
        let e = CniError::from(gc);
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (5, "GC of network \"n\": 2 reservation(s) could not be handled", "a; b")
        );
        assert_eq!(Error::Unavailable("x".into()).code(), 50);
        assert_eq!(Error::Drift { ip: "198.18.0.9".parse().unwrap(), attachment: "c".into() }.code(), 105);
    }
}
