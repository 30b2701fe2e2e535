//! The invocation: the `CNI_*` environment variables, which verb needs which, and their validation.
//!
//! Names that come from the runtime are untrusted: the container ID and the interface name are
//! checked here, before they can become a path or a link name (libcni `pkg/utils`, skel codes).

use crate::error::{CniError, ErrorCode};
use crate::names::{ifname_problem, is_identifier, IDENTIFIER_PATTERN};
use std::path::PathBuf;

/// The verb in `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach a container; best-effort and idempotent.
    Del,
    /// Verify an attachment (0.4.0+).
    Check,
    /// Is the plugin ready for ADD? (1.1.0+)
    Status,
    /// Remove state of attachments that are no longer valid (1.1.0+).
    Gc,
    /// Which versions the plugin speaks.
    Version,
}

impl Command {
    /// Parse `CNI_COMMAND`; an unknown verb is code 4.
    pub fn parse(s: &str) -> Result<Command, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            other => return Err(CniError::new(ErrorCode::InvalidEnvironment, format!("unknown CNI_COMMAND: {other}"))),
        })
    }

    /// The verb as written in `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// Verbs that act on one attachment and so need a container ID and an interface name.
    fn is_per_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }

    /// Verbs that need `CNI_NETNS` (DEL may come without it: the netns may be gone).
    fn needs_netns(self) -> bool {
        matches!(self, Command::Add | Command::Check)
    }
}

/// Everything the runtime passed in the environment, validated for the verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`; empty for STATUS, GC and VERSION.
    pub container_id: String,
    /// `CNI_NETNS`; `None` when unset or empty.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`; empty for STATUS, GC and VERSION.
    pub ifname: String,
    /// `CNI_ARGS`, unparsed (see [`crate::args`]).
    pub args: String,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<PathBuf>,
}

impl Invocation {
    /// Read the invocation through `lookup` (the process environment in production, a map in tests).
    ///
    /// # Errors
    /// Code 4 when a variable the verb needs is missing or invalid.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Invocation, CniError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let command_raw = get("CNI_COMMAND").ok_or_else(|| missing_env("CNI_COMMAND"))?;
        let command = Command::parse(&command_raw)?;
        let mut inv = Invocation {
            command,
            container_id: String::new(),
            netns: get("CNI_NETNS").map(PathBuf::from),
            ifname: String::new(),
            args: get("CNI_ARGS").unwrap_or_default(),
            path: get("CNI_PATH")
                .map(|p| p.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect())
                .unwrap_or_default(),
        };
        if command.is_per_attachment() {
            inv.container_id = get("CNI_CONTAINERID").ok_or_else(|| missing_env("CNI_CONTAINERID"))?;
            validate_container_id(&inv.container_id)?;
            inv.ifname = get("CNI_IFNAME").ok_or_else(|| missing_env("CNI_IFNAME"))?;
            validate_ifname(&inv.ifname)?;
        }
        if command.needs_netns() && inv.netns.is_none() {
            return Err(missing_env("CNI_NETNS"));
        }
        Ok(inv)
    }
}

fn missing_env(name: &str) -> CniError {
    CniError::new(ErrorCode::InvalidEnvironment, format!("required environment variable {name} is missing"))
}

/// A container ID must match [`IDENTIFIER_PATTERN`]: code 4 otherwise.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if is_identifier(id) {
        Ok(())
    } else {
        Err(CniError::new(ErrorCode::InvalidEnvironment, format!("invalid characters in container ID {id:?}"))
            .with_details(format!("must match {IDENTIFIER_PATTERN}")))
    }
}

/// An interface name the kernel accepts ([`ifname_problem`]): code 4 otherwise.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    match ifname_problem(name) {
        None => Ok(()),
        Some(why) => {
            Err(CniError::new(ErrorCode::InvalidEnvironment, format!("invalid interface name {name:?}: {why}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn inv(pairs: &[(&str, &str)]) -> Result<Invocation, CniError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Invocation::from_lookup(|k| map.get(k).cloned())
    }

    const ADD: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ];

    fn with(over: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = ADD.iter().filter(|(k, _)| !over.iter().any(|(o, _)| o == k)).cloned().collect();
        v.extend(over.iter().filter(|(_, val)| *val != "<unset>").cloned());
        v
    }

    fn code(pairs: &[(&str, &str)]) -> Option<u32> {
        inv(pairs).err().map(|e| e.code)
    }

    #[test]
    fn full_add_parses() {
        let i = inv(&ADD).unwrap();
        assert_eq!(i.command, Command::Add);
        assert_eq!(i.path, vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]);
        assert_eq!(i.netns, Some(PathBuf::from("/var/run/netns/x")));
    }

    #[test]
    fn missing_variables_are_code_4() {
        assert_eq!(code(&with(&[("CNI_IFNAME", "<unset>")])), Some(4));
        assert_eq!(code(&with(&[("CNI_CONTAINERID", "<unset>")])), Some(4));
        assert_eq!(code(&with(&[("CNI_NETNS", "<unset>")])), Some(4));
        assert_eq!(code(&with(&[("CNI_IFNAME", "")])), Some(4));
        assert_eq!(code(&[]), Some(4));
        assert_eq!(code(&[("CNI_COMMAND", "FROB")]), Some(4));
    }

    #[test]
    fn del_needs_no_netns() {
        let i = inv(&with(&[("CNI_COMMAND", "DEL"), ("CNI_NETNS", "")])).unwrap();
        assert_eq!(i.netns, None);
    }

    #[test]
    fn status_and_gc_need_no_attachment() {
        assert!(inv(&[("CNI_COMMAND", "STATUS")]).is_ok());
        assert!(inv(&[("CNI_COMMAND", "GC"), ("CNI_CONTAINERID", ""), ("CNI_IFNAME", "")]).is_ok());
        assert!(inv(&[("CNI_COMMAND", "VERSION")]).is_ok());
    }

    #[test]
    fn container_id_rules() {
        for good in ["a", "0abc", "a_b.c-d", "cnitool-1234567890abcdef"] {
            assert!(validate_container_id(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "_a", ".a", "a/b", "../x", "a b", "a;b", "é"] {
            assert_eq!(validate_container_id(bad).err().map(|e| e.code), Some(4), "{bad}");
        }
        assert_eq!(code(&with(&[("CNI_CONTAINERID", "a/b")])), Some(4));
    }

    #[test]
    fn ifname_rules() {
        for good in ["eth0", "a", "123456789012345", "net1.100", "e-th_0"] {
            assert!(validate_ifname(good).is_ok(), "{good}");
        }
        for bad in ["", "1234567890123456", ".", "..", "a/b", "a:b", "a b", "a\tb", "a\nb"] {
            assert_eq!(validate_ifname(bad).err().map(|e| e.code), Some(4), "{bad:?}");
        }
    }
}
