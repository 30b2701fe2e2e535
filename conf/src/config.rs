//! The network configuration on stdin: the fields every plugin shares, validated, with the raw
//! document kept so a plugin can read its own keys and a delegate gets the exact bytes.
//!
//! `prevResult` is read in its own `cniVersion`, the config's when it names none (Go
//! `version.ParsePrevResult` injects the config's version then); for GC the
//! valid attachments come from `cni.dev/valid-attachments`, falling back to `cni.dev/attachments`,
//! and an absent key means an empty list (cnitool's `gc` sends none).

use crate::error::{CniError, ErrorCode};
use crate::names::{is_identifier, is_plugin_name, IDENTIFIER_PATTERN};
use crate::result::{Dns, NetResult};
use crate::version::Version;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// How long a delegated plugin may run when `delegateTimeout` is not set.
pub const DEFAULT_DELEGATE_TIMEOUT: Duration = Duration::from_secs(60);

/// One attachment a runtime still considers valid (GC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    /// Container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name inside the container.
    pub ifname: String,
}

/// The common part of a plugin's network configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    /// The request's spec version.
    pub version: Version,
    /// Network name (validated: it becomes part of paths and nftables names).
    pub name: String,
    /// The plugin type (binary name).
    pub plugin_type: String,
    /// The `ipam` object, if any.
    pub ipam: Option<Value>,
    /// The `ipam.type`, if set and non-empty.
    pub ipam_type: Option<String>,
    /// `dns`, if set.
    pub dns: Option<Dns>,
    /// `prevResult`, read in its own version (the config's when it has none).
    pub prev_result: Option<NetResult>,
    /// `runtimeConfig` (an object; empty when absent).
    pub runtime_config: serde_json::Map<String, Value>,
    /// `args` (an object; empty when absent).
    pub args: serde_json::Map<String, Value>,
    /// GC only: the attachments that stay.
    pub valid_attachments: Vec<Attachment>,
    /// `delegateTimeout`: how long a delegated plugin (IPAM) may run before it is killed.
    pub delegate_timeout: Duration,
    /// The whole document, unknown fields included.
    pub raw: Value,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::InvalidConfig, msg)
}

fn optional_string(raw: &Value, key: &str) -> Result<Option<String>, CniError> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(format!("field {key:?} must be a string, got {other}"))),
    }
}

fn optional_object(raw: &Value, key: &str) -> Result<serde_json::Map<String, Value>, CniError> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(serde_json::Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(invalid(format!("field {key:?} must be an object, got {other}"))),
    }
}

/// `delegateTimeout`: seconds (a positive number, fractions allowed), 60 when absent.
fn delegate_timeout(raw: &Value) -> Result<Duration, CniError> {
    let value = match raw.get("delegateTimeout") {
        None | Some(Value::Null) => return Ok(DEFAULT_DELEGATE_TIMEOUT),
        Some(v) => v,
    };
    value
        .as_f64()
        .filter(|secs| *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| invalid(format!("field \"delegateTimeout\" must be a positive number of seconds, got {value}")))
}

/// Read the `cniVersion` of a document: missing means 0.1.0; unsupported is code 1.
pub fn read_version(raw: &Value) -> Result<Version, CniError> {
    match raw.get("cniVersion") {
        None | Some(Value::Null) => Ok(Version::V0_1_0),
        Some(Value::String(s)) if s.is_empty() => Ok(Version::V0_1_0),
        Some(Value::String(s)) => Version::parse(s),
        Some(other) => Err(CniError::new(ErrorCode::Decode, format!("cniVersion must be a string, got {other}"))),
    }
}

impl NetConf {
    /// Decode stdin bytes into a JSON document (code 6 if it is not JSON or not an object).
    pub fn decode(stdin: &[u8]) -> Result<Value, CniError> {
        let raw: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(ErrorCode::Decode, "network configuration is not valid JSON").with_details(e.to_string())
        })?;
        if !raw.is_object() {
            return Err(CniError::new(ErrorCode::Decode, "network configuration must be a JSON object"));
        }
        Ok(raw)
    }

    /// Validate and extract the shared fields of a decoded document.
    ///
    /// # Errors
    /// Code 1 for an unsupported `cniVersion`, 7 for a missing or invalid `name` or a malformed
    /// field, 6 for a `prevResult` that does not decode.
    pub fn from_value(raw: Value) -> Result<NetConf, CniError> {
        let version = read_version(&raw)?;
        let name =
            optional_string(&raw, "name")?.filter(|n| !n.is_empty()).ok_or_else(|| invalid("missing network name"))?;
        if !is_identifier(&name) {
            return Err(invalid(format!("invalid characters in network name {name:?}"))
                .with_details(format!("must match {IDENTIFIER_PATTERN}")));
        }
        let plugin_type = optional_string(&raw, "type")?.unwrap_or_default();
        let ipam = match raw.get("ipam") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(other) => return Err(invalid(format!("field \"ipam\" must be an object, got {other}"))),
        };
        let ipam_type = match &ipam {
            Some(v) => optional_string(v, "type").map_err(|e| e.context("ipam"))?.filter(|t| !t.is_empty()),
            None => None,
        };
        if let Some(t) = &ipam_type {
            if !is_plugin_name(t) {
                return Err(invalid(format!("invalid ipam type {t:?}: must be a plugin name, not a path")));
            }
        }
        let dns = match raw.get("dns") {
            None | Some(Value::Null) => None,
            Some(v) => {
                Some(Dns::deserialize(v).map_err(|e| invalid("invalid field \"dns\"").with_details(e.to_string()))?)
            }
        };
        let prev_result = match raw.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(NetResult::from_json(v, version).map_err(|e| e.context("prevResult"))?),
        };
        let attachments_key = ["cni.dev/valid-attachments", "cni.dev/attachments"]
            .into_iter()
            .find_map(|k| raw.get(k).filter(|v| !v.is_null()));
        let valid_attachments = match attachments_key {
            None => Vec::new(),
            Some(v) => Vec::<Attachment>::deserialize(v)
                .map_err(|e| invalid("invalid field \"cni.dev/valid-attachments\"").with_details(e.to_string()))?,
        };
        Ok(NetConf {
            version,
            name,
            plugin_type,
            ipam,
            ipam_type,
            dns,
            prev_result,
            runtime_config: optional_object(&raw, "runtimeConfig")?,
            args: optional_object(&raw, "args")?,
            valid_attachments,
            delegate_timeout: delegate_timeout(&raw)?,
            raw,
        })
    }

    /// Decode a plugin's own typed view of the same document (its extra keys).
    ///
    /// # Errors
    /// Code 7 naming serde's complaint (wrong type of a known key).
    pub fn plugin_config<T: serde::de::DeserializeOwned>(&self) -> Result<T, CniError> {
        T::deserialize(&self.raw)
            .map_err(|e| invalid(format!("invalid network configuration {:?}", self.name)).with_details(e.to_string()))
    }

    /// The `dns` to report: the config's when any field is set, else the one given.
    pub fn dns_or(&self, fallback: Dns) -> Dns {
        match &self.dns {
            Some(d) if !d.is_empty() => d.clone(),
            _ => fallback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> Result<NetConf, CniError> {
        NetConf::from_value(v)
    }

    #[test]
    fn spec_example_plugin_config_parses() {
        // SPEC.md §1 example, first plugin with the values a runtime injects.
        let c = conf(json!({
            "cniVersion": "1.1.0", "name": "dbnet", "type": "bridge", "bridge": "cni0",
            "keyA": ["some more", "plugin specific", "configuration"],
            "ipam": {"type": "host-local", "subnet": "10.1.0.0/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
            "dns": {"nameservers": ["10.1.0.1"]},
            "capabilities": {"mac": true},
            "runtimeConfig": {"mac": "c2:11:22:33:44:55"}
        }))
        .unwrap();
        assert_eq!(c.name, "dbnet");
        assert_eq!(c.ipam_type.as_deref(), Some("host-local"));
        assert_eq!(c.dns.unwrap().nameservers, vec!["10.1.0.1"]);
        assert_eq!(c.runtime_config["mac"], "c2:11:22:33:44:55");
        assert_eq!(c.raw["keyA"][1], "plugin specific");
    }

    #[test]
    fn missing_version_means_0_1_0() {
        assert_eq!(conf(json!({"name": "n"})).unwrap().version, Version::V0_1_0);
    }

    #[test]
    fn name_errors_are_code_7() {
        assert_eq!(conf(json!({"cniVersion": "1.0.0"})).err().map(|e| e.code), Some(7));
        assert_eq!(conf(json!({"cniVersion": "1.0.0", "name": ""})).err().map(|e| e.code), Some(7));
        assert_eq!(conf(json!({"cniVersion": "1.0.0", "name": "../etc"})).err().map(|e| e.code), Some(7));
        assert_eq!(conf(json!({"cniVersion": "1.0.0", "name": "a/b"})).err().map(|e| e.code), Some(7));
        assert_eq!(conf(json!({"cniVersion": "1.0.0", "name": 5})).err().map(|e| e.code), Some(7));
    }

    #[test]
    fn bad_version_is_code_1() {
        assert_eq!(conf(json!({"cniVersion": "9.9.9", "name": "n"})).err().map(|e| e.code), Some(1));
    }

    #[test]
    fn ipam_type_cannot_be_a_path() {
        let e = conf(json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "../../bin/sh"}}));
        assert_eq!(e.err().map(|e| e.code), Some(7));
    }

    #[test]
    fn prev_result_without_version_is_parsed_with_config_version() {
        let c = conf(json!({
            "cniVersion": "0.4.0", "name": "n",
            "prevResult": {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "198.18.0.2/24"}]}
        }))
        .unwrap();
        assert_eq!(c.prev_result.unwrap().ips[0].address.to_string(), "198.18.0.2/24");
        let bad = conf(json!({"cniVersion": "1.0.0", "name": "n", "prevResult": {"ips": "x"}}));
        assert_eq!(bad.err().map(|e| e.code), Some(6));
    }

    #[test]
    fn prev_result_is_read_in_its_own_version() {
        // a 1.0.0 prevResult (no ips[].version) in a 0.4.0 config
        let c = conf(json!({
            "cniVersion": "0.4.0", "name": "n",
            "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "198.18.0.2/24"}]}
        }))
        .unwrap();
        assert_eq!(c.prev_result.unwrap().ips[0].address.to_string(), "198.18.0.2/24");
        // a 0.3.1 prevResult without ips[].version in a 1.1.0 config
        let c = conf(json!({
            "cniVersion": "1.1.0", "name": "n",
            "prevResult": {"cniVersion": "0.3.1", "ips": [{"address": "fd7e:7e7e::2/64", "interface": 0}],
                           "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}]}
        }))
        .unwrap();
        assert_eq!(c.prev_result.unwrap().ips[0].interface, Some(0));
    }

    #[test]
    fn gc_attachments_key_and_fallback() {
        let list = json!([{"containerID": "c1", "ifname": "eth0"}]);
        let a = conf(json!({"cniVersion": "1.1.0", "name": "n", "cni.dev/valid-attachments": list})).unwrap();
        assert_eq!(a.valid_attachments, vec![Attachment { container_id: "c1".into(), ifname: "eth0".into() }]);
        let b = conf(json!({"cniVersion": "1.1.0", "name": "n", "cni.dev/attachments": list})).unwrap();
        assert_eq!(b.valid_attachments.len(), 1);
        let none = conf(json!({"cniVersion": "1.1.0", "name": "n"})).unwrap();
        assert!(none.valid_attachments.is_empty());
    }

    #[test]
    fn delegate_timeout_is_positive_seconds() {
        let with = |t: Value| conf(json!({"cniVersion": "1.0.0", "name": "n", "delegateTimeout": t}));
        assert_eq!(
            conf(json!({"cniVersion": "1.0.0", "name": "n"})).unwrap().delegate_timeout,
            DEFAULT_DELEGATE_TIMEOUT
        );
        assert_eq!(with(json!(2)).unwrap().delegate_timeout, Duration::from_secs(2));
        assert_eq!(with(json!(0.5)).unwrap().delegate_timeout, Duration::from_millis(500));
        for bad in [json!(0), json!(-1), json!("60s"), json!(1e300), json!(true)] {
            assert_eq!(with(bad.clone()).err().map(|e| e.code), Some(7), "{bad}");
        }
    }

    #[test]
    fn decode_rejects_non_json_and_non_objects() {
        assert_eq!(NetConf::decode(b"not json").err().map(|e| e.code), Some(6));
        assert_eq!(NetConf::decode(b"[1]").err().map(|e| e.code), Some(6));
        assert!(NetConf::decode(br#"{"a":1}"#).is_ok());
    }

    #[test]
    fn dns_override_only_when_set() {
        let fallback = Dns { nameservers: vec!["198.18.0.1".into()], ..Dns::default() };
        let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "dns": {}})).unwrap();
        assert_eq!(c.dns_or(fallback.clone()), fallback);
        let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "dns": {"search": ["x"]}})).unwrap();
        assert_eq!(c.dns_or(fallback).search, vec!["x"]);
    }
}
