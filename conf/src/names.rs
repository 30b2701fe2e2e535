//! The rules for names that come from the runtime or the configuration and become paths,
//! interface names or nftables names: one definition for the whole workspace, so that what conf
//! accepts is exactly what ipam, nft and the installer accept again.

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
    fn plugin_names() {
        for good in ["host-local", "tether-ipam", "a.b"] {
            assert!(is_plugin_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../../bin/sh", "/usr/bin/x", "a/b"] {
            assert!(!is_plugin_name(bad), "{bad:?}");
        }
    }
}
