//! Spec versions: which ones tether speaks, what each allows, and the VERSION reply.
//!
//! A request's `cniVersion` must be exactly one of [`SUPPORTED`] (libcni's `reconcile.go` does the
//! same); a missing `cniVersion` means 0.1.0 (libcni `create.DecodeVersion`).

use crate::error::{CniError, ErrorCode};
use std::fmt;

/// Every spec version tether speaks, oldest first.
pub const SUPPORTED: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version, used for replies that are not tied to a request (VERSION, early errors).
pub const CURRENT: &str = "1.1.0";

/// A supported spec version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 0.1.0: `ip4`/`ip6` results.
    V0_1_0,
    /// 0.2.0: as 0.1.0.
    V0_2_0,
    /// 0.3.0: interfaces, `ips` with `version`, chaining.
    V0_3_0,
    /// 0.3.1: as 0.3.0.
    V0_3_1,
    /// 0.4.0: adds CHECK.
    V0_4_0,
    /// 1.0.0: drops `ips[].version`.
    V1_0_0,
    /// 1.1.0: adds STATUS, GC, interface `mtu`, route `mtu`/`advmss`/`priority`/`table`/`scope`.
    V1_1_0,
}

/// The three result layouts the versions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultLayout {
    /// 0.1.0 and 0.2.0: `ip4` and `ip6` objects.
    Legacy,
    /// 0.3.0, 0.3.1, 0.4.0: `ips[]` entries carry `version`.
    Versioned,
    /// 1.0.0 and 1.1.0.
    Current,
}

impl Version {
    /// Parse a version string; anything not in [`SUPPORTED`] is code 1.
    pub fn parse(s: &str) -> Result<Version, CniError> {
        Ok(match s {
            "0.1.0" => Version::V0_1_0,
            "0.2.0" => Version::V0_2_0,
            "0.3.0" => Version::V0_3_0,
            "0.3.1" => Version::V0_3_1,
            "0.4.0" => Version::V0_4_0,
            "1.0.0" => Version::V1_0_0,
            "1.1.0" => Version::V1_1_0,
            other => {
                return Err(CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions")
                    .with_details(format!("config is {other:?}, plugin supports {SUPPORTED:?}")))
            }
        })
    }

    /// The version as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1_0 => "0.1.0",
            Version::V0_2_0 => "0.2.0",
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// How results of this version are laid out.
    pub fn layout(self) -> ResultLayout {
        match self {
            Version::V0_1_0 | Version::V0_2_0 => ResultLayout::Legacy,
            Version::V0_3_0 | Version::V0_3_1 | Version::V0_4_0 => ResultLayout::Versioned,
            Version::V1_0_0 | Version::V1_1_0 => ResultLayout::Current,
        }
    }

    /// CHECK exists from 0.4.0.
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// STATUS and GC exist from 1.1.0.
    pub fn has_status_and_gc(self) -> bool {
        self >= Version::V1_1_0
    }

    /// Results carry interface `mtu`/`socketPath`/`pciID` and route `mtu`/`advmss`/`priority`/
    /// `table`/`scope` from 1.1.0.
    pub fn has_1_1_fields(self) -> bool {
        self >= Version::V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// tether's own release (the workspace version).
pub const TETHER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit tether was built from (short hash), or `unknown` (see `conf/build.rs`).
pub const TETHER_COMMIT: &str = env!("TETHER_GIT_COMMIT");

/// What `--version` prints for the binary `name`: its release and commit, then the spec versions.
pub fn describe(name: &str) -> String {
    format!(
        "{name} {TETHER_VERSION} (commit {TETHER_COMMIT})\nCNI protocol versions supported: {}",
        SUPPORTED.join(", ")
    )
}

/// The VERSION reply: `{"cniVersion":"1.1.0","supportedVersions":[...]}`, as the Go skel prints it.
pub fn version_reply() -> serde_json::Value {
    serde_json::json!({ "cniVersion": CURRENT, "supportedVersions": SUPPORTED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_version_round_trips() {
        for s in SUPPORTED {
            assert_eq!(Version::parse(s).map(Version::as_str), Ok(s));
        }
    }

    #[test]
    fn unknown_version_is_code_1() {
        for bad in ["9.9.9", "", "1.1", "0.3.2", "1.3.0"] {
            let err = Version::parse(bad).err().map(|e| e.code);
            assert_eq!(err, Some(1), "{bad}");
        }
    }

    #[test]
    fn verb_availability() {
        assert!(!Version::V0_3_1.has_check());
        assert!(Version::V0_4_0.has_check());
        assert!(!Version::V1_0_0.has_status_and_gc());
        assert!(Version::V1_1_0.has_status_and_gc());
    }

    #[test]
    fn describe_names_release_commit_and_spec_versions() {
        let text = describe("tether-ipam");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("tether-ipam {} (commit {TETHER_COMMIT})", env!("CARGO_PKG_VERSION")));
        assert_eq!(lines[1], "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
        assert!(TETHER_COMMIT == "unknown" || TETHER_COMMIT.chars().all(|c| c.is_ascii_hexdigit()), "{TETHER_COMMIT}");
    }

    #[test]
    fn version_reply_is_exact() {
        assert_eq!(
            version_reply().to_string(),
            r#"{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
        );
    }
}
