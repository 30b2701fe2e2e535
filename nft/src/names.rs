//! Names derived from untrusted input: the per-network table name and the owner comment
//! `<containerID>/<ifname>` that keys per-attachment state. Both are validated again here (defence in depth:
//! conf already validated them) and kept within nftables' limits.

use crate::NftError;
use conf::hash::fnv1a64;
use conf::names::{ifname_problem, is_identifier, IDENTIFIER_PATTERN};

/// NFT_NAME_MAXLEN (256) minus the NUL.
const MAX_NAME_LEN: usize = 255;
/// Prefix of every table tether owns.
pub(crate) const TABLE_PREFIX: &str = "tether-";
/// Longest network name used verbatim in a table name; longer ones are shortened and hashed.
const MAX_NETWORK_IN_NAME: usize = 200;
/// Longest container ID used verbatim in a comment; longer ones are shortened and hashed (comments stay under
/// nft's 128-byte limit: 90 + 1 + 16 + 1 + 15 = 123).
const MAX_ID_IN_COMMENT: usize = 96;
const ID_PREFIX_WHEN_HASHED: usize = 90;

/// An interface name as the kernel accepts it ([`conf::names::ifname_problem`]).
pub(crate) fn check_ifname(op: &'static str, what: &str, name: &str) -> Result<(), NftError> {
    match ifname_problem(name) {
        None => Ok(()),
        Some(why) => Err(NftError::invalid(op, format!("{what} {name:?}"), why.to_string())),
    }
}

/// The table name for `network`: `tether-<network>`, or `tether-<first 200 bytes>-<hash>` for very long names.
pub(crate) fn table_name(op: &'static str, network: &str) -> Result<String, NftError> {
    if !is_identifier(network) {
        return Err(NftError::invalid(
            op,
            format!("network {network:?}"),
            format!("network name must match {IDENTIFIER_PATTERN}"),
        ));
    }
    let name = if network.len() <= MAX_NETWORK_IN_NAME {
        format!("{TABLE_PREFIX}{network}")
    } else {
        format!("{TABLE_PREFIX}{}-{:016x}", &network[..MAX_NETWORK_IN_NAME], fnv1a64(network.bytes()))
    };
    debug_assert!(name.len() <= MAX_NAME_LEN);
    Ok(name)
}

/// A network's name as an element comment: verbatim up to nft's comment limit, else shortened and hashed.
pub(crate) fn network_comment(network: &str) -> String {
    shortened(network)
}

/// `id` itself when it fits a comment, else its prefix and a hash of the whole.
fn shortened(id: &str) -> String {
    if id.len() <= MAX_ID_IN_COMMENT {
        id.to_owned()
    } else {
        format!("{}~{:016x}", &id[..ID_PREFIX_WHEN_HASHED], fnv1a64(id.bytes()))
    }
}

/// The owner comment of an attachment: `<containerID>/<ifname>` (IDs over 96 bytes are shortened and hashed).
/// Neither part can contain '/', so the comment is unambiguous.
pub(crate) fn owner(op: &'static str, container_id: &str, ifname: &str) -> Result<String, NftError> {
    if !is_identifier(container_id) {
        return Err(NftError::invalid(
            op,
            format!("container ID {container_id:?}"),
            format!("container ID must match {IDENTIFIER_PATTERN}"),
        ));
    }
    check_ifname(op, "interface", ifname)?;
    Ok(format!("{}/{ifname}", shortened(container_id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::MAX_COMMENT_LEN;

    #[test]
    fn table_names() {
        assert_eq!(table_name("t", "net1").unwrap(), "tether-net1");
        assert_eq!(table_name("t", "a_b.c-d").unwrap(), "tether-a_b.c-d");
        for bad in ["", "-x", "a/b", "a b", "ä", "a\0"] {
            assert!(table_name("t", bad).unwrap_err().is_invalid_input(), "{bad:?}");
        }
    }

    #[test]
    fn long_network_names_stay_within_limits_and_distinct() {
        let a = "n".repeat(300);
        let b = format!("{}x", "n".repeat(299));
        let (ta, tb) = (table_name("t", &a).unwrap(), table_name("t", &b).unwrap());
        assert!(ta.len() <= MAX_NAME_LEN && tb.len() <= MAX_NAME_LEN);
        assert_ne!(ta, tb);
        assert_eq!(ta, table_name("t", &a).unwrap(), "stable");
        assert_eq!(table_name("t", &"n".repeat(200)).unwrap().len(), 207);
        // Stable across releases (the hash is FNV-1a 64, computed independently): tables made by an older
        // ADD keep their names.
        assert_eq!(ta, format!("tether-{}-a4cf91b7088f4495", "n".repeat(200)));
    }

    #[test]
    fn owners() {
        assert_eq!(owner("t", "abc123", "eth0").unwrap(), "abc123/eth0");
        let long = "f".repeat(500);
        let o = owner("t", &long, "eth012345678901").unwrap();
        assert!(o.len() <= MAX_COMMENT_LEN, "{}", o.len());
        assert_ne!(o, owner("t", &format!("{long}0"), "eth012345678901").unwrap());
        assert!(owner("t", "a/b", "eth0").is_err());
        assert!(owner("t", "abc", "").is_err());
        assert!(owner("t", "abc", "a/b").is_err());
        assert!(owner("t", "abc", "0123456789abcdef").is_err());
    }
}
