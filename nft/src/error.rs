//! [`NftError`]: what failed (the operation), on which nftables object, and why (errno or cause).

use std::fmt;

/// An nftables operation failed. The plugin maps every `NftError` to CNI error code 102.
///
/// `Display` reads like `masq_add: add element 198.18.1.2 to set inet tether-net1 masq4: File exists (os error 17)`.
#[derive(Debug)]
pub struct NftError {
    op: &'static str,
    object: String,
    cause: Cause,
}

#[derive(Debug)]
enum Cause {
    /// The kernel refused a message: errno, plus the kernel's extended-ack text when it sent one.
    Errno { errno: i32, detail: Option<String> },
    /// The socket itself failed (open, send, receive, timeout).
    Io(std::io::Error),
    /// A caller-supplied value is unusable (bad name, address family mismatch).
    Invalid(String),
    /// The kernel's reply could not be understood, or the state kept changing under us.
    Protocol(String),
}

impl NftError {
    pub(crate) fn errno(op: &'static str, object: impl Into<String>, errno: i32, detail: Option<String>) -> Self {
        NftError { op, object: object.into(), cause: Cause::Errno { errno, detail } }
    }

    pub(crate) fn io(op: &'static str, object: impl Into<String>, err: std::io::Error) -> Self {
        NftError { op, object: object.into(), cause: Cause::Io(err) }
    }

    pub(crate) fn invalid(op: &'static str, object: impl Into<String>, why: impl Into<String>) -> Self {
        NftError { op, object: object.into(), cause: Cause::Invalid(why.into()) }
    }

    pub(crate) fn protocol(op: &'static str, object: impl Into<String>, why: impl Into<String>) -> Self {
        NftError { op, object: object.into(), cause: Cause::Protocol(why.into()) }
    }

    /// A transaction recomputed `MAX_ATTEMPTS` times without a failure to report: concurrent changes
    /// kept invalidating it.
    pub(crate) fn gave_up(op: &'static str, object: impl Into<String>) -> Self {
        NftError::protocol(op, object, "ruleset kept changing; gave up after retries")
    }

    /// The public operation that failed (`masq_add`, `spoofchk_del`, ...).
    pub fn op(&self) -> &str {
        self.op
    }

    /// The nftables object concerned, e.g. `set inet tether-net1 masq4` or `table bridge tether-net1`.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The errno the kernel (or the socket) reported, if the failure has one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match &self.cause {
            Cause::Errno { errno, .. } => Some(*errno),
            Cause::Io(e) => e.raw_os_error(),
            Cause::Invalid(_) | Cause::Protocol(_) => None,
        }
    }

    /// True when the error is a caller mistake (invalid name or address) rather than a kernel failure.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self.cause, Cause::Invalid(_))
    }
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.op, self.object)?;
        match &self.cause {
            Cause::Errno { errno, detail } => {
                write!(f, "{}", std::io::Error::from_raw_os_error(*errno))?;
                if let Some(d) = detail {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
            Cause::Io(e) => write!(f, "{e}"),
            Cause::Invalid(why) => write!(f, "invalid: {why}"),
            Cause::Protocol(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for NftError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_op_object_and_errno() {
        let e = NftError::errno("masq_add", "set inet tether-n masq4", libc::EEXIST, None);
        let s = e.to_string();
        assert!(s.starts_with("masq_add: set inet tether-n masq4: File exists"), "{s}");
        assert!(s.contains("os error 17"), "{s}");
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(!e.is_invalid_input());
    }

    #[test]
    fn invalid_is_flagged() {
        let e = NftError::invalid("spoofchk_add", "host port \"\"", "empty");
        assert!(e.is_invalid_input());
        assert_eq!(e.raw_os_error(), None);
        assert_eq!(e.to_string(), "spoofchk_add: host port \"\": invalid: empty");
    }
}
