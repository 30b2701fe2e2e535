//! `CNI_ARGS`: `K=V;K=V` pairs (CONVENTIONS.md; Go `pkg/types/args.go LoadArgs`).
//!
//! Parsed as libcni's `LoadArgs` parses: each pair is `K=V` with exactly one `=`, and `V` may be
//! empty (runtimes send empty labels, e.g. `K8S_POD_UID=`). Keys are case-sensitive. A key this
//! plugin does not know is an error unless `IgnoreUnknown` is true, which every runtime sends;
//! unknown keys are never validated. Only the values tether uses are checked, each where it is
//! used (`IgnoreUnknown` here, `IP` by [`CniArgs::ips`], `MAC` by the plugin), as code 4 naming the
//! key. An empty `IP=` or `MAC=` is no request, as Go's `net.IP.UnmarshalText` reads it.

use crate::error::{CniError, ErrorCode};
use std::net::IpAddr;

/// Keys tether understands. `IP` and `MAC` are used; the others are accepted and kept for logs.
const KNOWN_KEYS: [&str; 8] = [
    "IgnoreUnknown",
    "IP",
    "MAC",
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
    "GATEWAY",
];

/// Parsed `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// Every pair, in order.
    pub pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parse `CNI_ARGS`. An empty string is no arguments.
    ///
    /// # Errors
    /// Code 4 for a pair without exactly one `=`, a bad `IgnoreUnknown` value, or an unknown key
    /// without `IgnoreUnknown`.
    pub fn parse(raw: &str) -> Result<CniArgs, CniError> {
        let invalid = |what: String| Err(CniError::new(ErrorCode::InvalidEnvironment, format!("CNI_ARGS: {what}")));
        let mut pairs = Vec::new();
        for pair in raw.split(';').filter(|p| !p.is_empty()) {
            let mut parts = pair.split('=');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(k), Some(v), None) => pairs.push((k.to_string(), v.to_string())),
                _ => return invalid(format!("invalid pair {pair:?}")),
            }
        }
        let args = CniArgs { pairs };
        let ignore_unknown = match args.get("IgnoreUnknown") {
            None => false,
            Some("1" | "true" | "True" | "TRUE" | "t" | "T") => true,
            Some("0" | "false" | "False" | "FALSE" | "f" | "F") => false,
            Some(other) => return invalid(format!("IgnoreUnknown={other:?} is not a boolean")),
        };
        if !ignore_unknown {
            let unknown: Vec<&str> =
                args.pairs.iter().map(|(k, _)| k.as_str()).filter(|k| !KNOWN_KEYS.contains(k)).collect();
            if !unknown.is_empty() {
                return invalid(format!("unknown args {unknown:?}"));
            }
        }
        Ok(args)
    }

    /// The value of `key` (the last one if repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key` unless it is absent or empty.
    fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// `IP=`: one address or a comma list (dual stack); `ip/prefix` accepted, the prefix ignored.
    ///
    /// # Errors
    /// Code 4 when an entry is not an IP address.
    pub fn ips(&self) -> Result<Vec<IpAddr>, CniError> {
        let Some(raw) = self.non_empty("IP") else {
            return Ok(Vec::new());
        };
        raw.split(',')
            .map(|s| {
                let addr = s.split('/').next().unwrap_or(s).trim();
                addr.parse::<IpAddr>().map_err(|_| {
                    CniError::new(ErrorCode::InvalidEnvironment, format!("CNI_ARGS: IP={s:?} is not an IP address"))
                })
            })
            .collect()
    }

    /// `MAC=`, unvalidated (the plugin that uses it validates).
    pub fn mac(&self) -> Option<&str> {
        self.non_empty("MAC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_nothing() {
        assert_eq!(CniArgs::parse("").unwrap().pairs.len(), 0);
        assert_eq!(CniArgs::parse(";;").unwrap().pairs.len(), 0);
    }

    #[test]
    fn runtime_args_parse() {
        let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u1",
        )
        .unwrap();
        assert_eq!(a.get("K8S_POD_NAME"), Some("web-0"));
        assert_eq!(a.pairs.len(), 5);
    }

    #[test]
    fn empty_values_are_values() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_UID=").unwrap();
        assert_eq!(a.get("K8S_POD_UID"), Some(""));
        assert!(CniArgs::parse("FOO=;IgnoreUnknown=1").is_ok());
        assert!(CniArgs::parse("=x;IgnoreUnknown=1").is_ok(), "an empty key is an unknown key");
        let none = CniArgs::parse("IP=;MAC=").unwrap();
        assert!(none.ips().unwrap().is_empty());
        assert_eq!(none.mac(), None);
    }

    #[test]
    fn a_bad_value_of_a_used_key_names_the_key() {
        let err = CniArgs::parse("IgnoreUnknown=").unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.to_string().contains("IgnoreUnknown"), "{err}");
        let err = CniArgs::parse("IgnoreUnknown=1;IP=nope").unwrap().ips().unwrap_err();
        assert!(err.to_string().contains("IP="), "{err}");
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        assert_eq!(CniArgs::parse("FOO=bar").err().map(|e| e.code), Some(4));
        assert!(CniArgs::parse("FOO=bar;IgnoreUnknown=true").is_ok());
        assert_eq!(CniArgs::parse("FOO=bar;IgnoreUnknown=0").err().map(|e| e.code), Some(4));
        assert_eq!(CniArgs::parse("IgnoreUnknown=maybe").err().map(|e| e.code), Some(4));
    }

    #[test]
    fn malformed_pairs_are_rejected() {
        for bad in ["IP", "IP=1=2", "a=b;c", "IgnoreUnknown=1;K8S_POD_UID=a=b"] {
            assert_eq!(CniArgs::parse(bad).err().map(|e| e.code), Some(4), "{bad}");
        }
    }

    #[test]
    fn ip_accepts_prefix_and_lists() {
        let a = CniArgs::parse("IP=198.18.0.5/24,fd7e:7e7e::5").unwrap();
        let ips = a.ips().unwrap();
        assert_eq!(ips, vec!["198.18.0.5".parse::<IpAddr>().unwrap(), "fd7e:7e7e::5".parse::<IpAddr>().unwrap()]);
        assert_eq!(CniArgs::parse("IP=nope").unwrap().ips().err().map(|e| e.code), Some(4));
        assert!(CniArgs::parse("").unwrap().ips().unwrap().is_empty());
    }

    #[test]
    fn mac_is_read() {
        assert_eq!(CniArgs::parse("MAC=c2:11:22:33:44:55").unwrap().mac(), Some("c2:11:22:33:44:55"));
    }
}
