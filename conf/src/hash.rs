//! FNV-1a, 64 bit: the one hash behind every name and stamp tether derives from other names.
//!
//! What it names lives on disk and in the kernels of running nodes (node-side veth names and
//! aliases, bridge gateway ports, nftables table names and owner comments, isolation link groups,
//! the IPAM store's owner buckets and seal checksum), and a DEL may run a newer tether than the
//! ADD did: so the hash must be stable across Rust releases and platforms, which std's
//! `DefaultHasher` is not. Its values must never change.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(OFFSET_BASIS, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // The reference values of the FNV specification (draft-eastlake-fnv, test vectors).
        assert_eq!(fnv1a64(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(*b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64("a".bytes()), fnv1a64([b'a']));
    }
}
