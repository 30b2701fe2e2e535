//! The CNI error object (SPEC §5 "Error") and the numbered codes a runtime acts on.
//!
//! Codes 1 to 99 belong to the spec; tether's own start at 100 and are documented in the README.
//! Every failure of every verb ends as exactly one [`CniError`], printed by `skel` and nowhere else.

use serde::Serialize;
use std::fmt;

/// A CNI error code. The numeric value is what goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: the request's `cniVersion` is not one this plugin speaks, or the verb needs a newer one.
    IncompatibleVersion,
    /// 2: a configuration field has a value this plugin does not support.
    UnsupportedField,
    /// 3: the container is unknown or does not exist; nothing to clean up.
    UnknownContainer,
    /// 4: a `CNI_*` environment variable is missing or invalid.
    InvalidEnvironment,
    /// 5: reading or writing failed (stdin, the store, a file).
    Io,
    /// 6: content (JSON, a result) could not be decoded.
    Decode,
    /// 7: the network configuration is invalid.
    InvalidConfig,
    /// 11: transient; the runtime should try again later.
    TryAgainLater,
    /// 50 (STATUS): the plugin cannot service ADD now.
    PluginNotAvailable,
    /// 51 (STATUS): not available, and existing containers may have limited connectivity.
    PluginNotAvailableLimitedConnectivity,
    /// 100: a netlink request failed (link, address, route).
    Netlink,
    /// 101: entering or inspecting a network namespace failed.
    Netns,
    /// 102: nftables (masquerade, MAC spoof check) failed.
    Nftables,
    /// 103: a delegated plugin could not be run or answered garbage.
    Delegate,
    /// 104: the IPAM store or allocator failed (exhausted, requested address taken).
    Ipam,
    /// 105: the live state differs from `prevResult` (CHECK).
    Drift,
    /// 999: an internal error (a bug, including a caught panic).
    Internal,
}

impl ErrorCode {
    /// The number sent to the runtime.
    pub fn as_u32(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::PluginNotAvailableLimitedConnectivity => 51,
            ErrorCode::Netlink => 100,
            ErrorCode::Netns => 101,
            ErrorCode::Nftables => 102,
            ErrorCode::Delegate => 103,
            ErrorCode::Ipam => 104,
            ErrorCode::Drift => 105,
            ErrorCode::Internal => 999,
        }
    }
}

/// One CNI error: `{cniVersion, code, msg, details}` on stdout and a non-zero exit.
///
/// `code` is kept as a number so that a delegated plugin's own code (any value) passes through
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// The numeric code.
    pub code: u32,
    /// A short message naming the object and the cause.
    pub msg: String,
    /// Longer context; may be empty.
    pub details: String,
}

impl CniError {
    /// An error with a code and a message, without details.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError { code: code.as_u32(), msg: msg.into(), details: String::new() }
    }

    /// The same error with details attached.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Prefix the message with what was being done, keeping code and details.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// The JSON object a runtime reads, tagged with the request's version.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_value(Wire { cni_version, code: self.code, msg: &self.msg, details: &self.details })
            .unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{} (code {})", self.msg, self.code)
        } else {
            write!(f, "{}: {} (code {})", self.msg, self.details, self.code)
        }
    }
}

impl std::error::Error for CniError {}

/// Shorthand for results whose error is a [`CniError`].
pub type CniResult<T> = Result<T, CniError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_spec_numbers() {
        assert_eq!(ErrorCode::IncompatibleVersion.as_u32(), 1);
        assert_eq!(ErrorCode::InvalidEnvironment.as_u32(), 4);
        assert_eq!(ErrorCode::InvalidConfig.as_u32(), 7);
        assert_eq!(ErrorCode::TryAgainLater.as_u32(), 11);
        assert_eq!(ErrorCode::PluginNotAvailable.as_u32(), 50);
        assert_eq!(ErrorCode::PluginNotAvailableLimitedConnectivity.as_u32(), 51);
        assert_eq!(ErrorCode::Internal.as_u32(), 999);
    }

    #[test]
    fn json_omits_empty_details() {
        let e = CniError::new(ErrorCode::InvalidConfig, "missing network name");
        assert_eq!(e.to_json("1.1.0"), serde_json::json!({"cniVersion":"1.1.0","code":7,"msg":"missing network name"}));
        let e = e.with_details("x");
        assert_eq!(e.to_json("0.4.0")["details"], "x");
    }

    #[test]
    fn context_prefixes_message() {
        let e = CniError::new(ErrorCode::Netlink, "File exists").context("create veth veth0123");
        assert_eq!(e.msg, "create veth veth0123: File exists");
        assert_eq!(e.code, 100);
    }
}
