//! The rules for names that come from the runtime or the configuration and become paths,
//! interface names or nftables names: one definition for the whole workspace, so that what conf
//! accepts is exactly what ipam, nft and the installer accept again.

use std::fmt;

/// libcni's rule for container IDs and network names (`pkg/utils.ValidateContainerID`,
/// `ValidateNetworkName`), as written in error messages.
pub const IDENTIFIER_PATTERN: &str = "^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$";

/// Whether `s` matches [`IDENTIFIER_PATTERN`]: non-empty, ASCII letters and digits, `_`, `.`
/// and `-`, starting with a letter or digit. Such a name can be neither `.`, `..` nor contain
/// `/`, so it is safe as one path component.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A plugin type (`type`, `ipam.type`) is a file name looked up in `CNI_PATH`, never a path.
pub fn is_plugin_name(plugin_type: &str) -> bool {
    !plugin_type.is_empty() && !plugin_type.contains('/') && plugin_type != "." && plugin_type != ".."
}

/// The kernel's limit on an interface name, without the trailing NUL (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Why a name is not one the kernel accepts for an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfnameProblem {
    /// The empty name.
    Empty,
    /// Over [`MAX_IFNAME_LEN`] bytes.
    TooLong,
    /// `.` or `..`.
    Reserved,
    /// A `/`, `:`, NUL or whitespace.
    BadCharacter,
}

impl fmt::Display for IfnameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IfnameProblem::Empty => "empty",
            IfnameProblem::TooLong => "longer than 15 bytes",
            IfnameProblem::Reserved => "reserved name",
            IfnameProblem::BadCharacter => "contains '/', ':', NUL or whitespace",
        })
    }
}

/// What is wrong with `name` as an interface name, if anything: the kernel's `dev_valid_name`
/// (1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace), and no NUL, which would cut the
/// name short on its way through netlink.
pub fn ifname_problem(name: &str) -> Option<IfnameProblem> {
    if name.is_empty() {
        Some(IfnameProblem::Empty)
    } else if name.len() > MAX_IFNAME_LEN {
        Some(IfnameProblem::TooLong)
    } else if name == "." || name == ".." {
        Some(IfnameProblem::Reserved)
    } else if name.chars().any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace()) {
        Some(IfnameProblem::BadCharacter)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for good in ["a", "0abc", "a_b.c-d", "cnitool-1234567890abcdef", "net1"] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in ["", "-a", "_a", ".a", ".", "..", "a/b", "../x", "a b", "a;b", "é", "a\0"] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
    }

    #[test]
    fn interface_names() {
        for good in ["eth0", "a", "123456789012345", "net1.100", "e-th_0", "tether0"] {
            assert_eq!(ifname_problem(good), None, "{good}");
        }
        assert_eq!(ifname_problem(""), Some(IfnameProblem::Empty));
        assert_eq!(ifname_problem("1234567890123456"), Some(IfnameProblem::TooLong));
        assert_eq!(ifname_problem(".."), Some(IfnameProblem::Reserved));
        for bad in ["a/b", "a:b", "a b", "a\tb", "a\nb", "a\0b"] {
            assert_eq!(ifname_problem(bad), Some(IfnameProblem::BadCharacter), "{bad:?}");
        }
    }

    #[test]
    fn plugin_names() {
        for good in ["host-local", "tether-ipam", "a.b"] {
            assert!(is_plugin_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../../bin/sh", "/usr/bin/x", "a/b"] {
            assert!(!is_plugin_name(bad), "{bad:?}");
        }
    }
}
