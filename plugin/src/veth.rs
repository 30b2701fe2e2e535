//! The node end's name: deterministic, so DEL and CHECK find it without the container's
//! namespace, and a collision is a real error rather than something to retry.

/// FNV-1a, 64 bit: tiny, and stable across Rust releases and platforms (std's `DefaultHasher`
/// is neither), which matters because a DEL may run a newer tether than the ADD did.
fn fnv1a64(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator that cannot occur in validated names keeps ("ab","c") != ("a","bc").
            hash ^= 0xff;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// `veth` + 11 hex digits of a hash of (network, container ID, ifname): 15 bytes, the kernel's
/// limit. The `veth` prefix is what NetworkManager leaves alone.
pub fn host_veth_name(network: &str, container_id: &str, ifname: &str) -> String {
    let hex = format!("{:016x}", fnv1a64(&[network, container_id, ifname]));
    format!("veth{}", &hex[..11])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_ifnamsiz_and_is_stable() {
        let name = host_veth_name("routed", "c1", "eth0");
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("veth"));
        // Stable across releases: DEL must find what an older ADD created.
        assert_eq!(name, host_veth_name("routed", "c1", "eth0"));
        assert_eq!(fnv1a64(&["a"]), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn every_part_matters() {
        let base = host_veth_name("n", "c1", "eth0");
        assert_ne!(base, host_veth_name("m", "c1", "eth0"));
        assert_ne!(base, host_veth_name("n", "c2", "eth0"));
        assert_ne!(base, host_veth_name("n", "c1", "eth1"));
        assert_ne!(host_veth_name("ab", "c", "x"), host_veth_name("a", "bc", "x"));
    }
}
