//! sysctls under `/proc/sys/net`, which resolve against the namespace of the thread that opens
//! the file: called on the main thread, they act on the node; [`ensure_in`] acts in another
//! namespace through a throwaway thread.
//!
//! A path under `/proc/sys/net` costs time in proportion to the network namespaces of the machine:
//! every namespace in which anything looked at `/proc/sys/net` (a runtime setting a pod's sysctls,
//! another plugin) has its own dentry for `net`, `ipv4`, `conf`, ... under the same parent with the
//! same name, so each component's lookup walks one hash chain of them all, `proc_sys_compare`
//! rejecting the other namespaces' one by one. `perf record` of a bridge ADD on a node with 1,000
//! ports, beside 1,000 containers of the reference plugins: half its CPU in `proc_sys_compare` and
//! `__d_lookup`, its ADD 8.2 ms against 3.9 ms without those containers. So an ADD reads what it
//! can elsewhere (`accept_ra` from the link's netlink attributes, IPv4 forwarding from the
//! namespace's `/proc/thread-self/net/snmp`, whose path is per task) and writes without reading
//! first where it knows the value differs.

use crate::error::{Error, Result};
use crate::netns::{self, Netns};
use std::io::ErrorKind;

/// Write `value` to `/proc/sys/<key>` (key with `/` separators) unless it already holds it.
/// A key that does not exist (IPv6 disabled, link gone) is reported as `Ok(false)`.
///
/// # Errors
/// Code 5 when the file exists but cannot be read or written.
pub fn ensure(key: &str, value: &str) -> Result<bool> {
    let path = format!("/proc/sys/{key}");
    match std::fs::read_to_string(&path) {
        Ok(current) if current.trim() == value => return Ok(true),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(cause) => return Err(Error::File { doing: "read".into(), path, cause }),
    }
    std::fs::write(&path, value).map_err(|cause| Error::File { doing: format!("write {value} to"), path, cause })?;
    Ok(true)
}

/// Write `value` to `/proc/sys/<key>` without reading it first (one path lookup, see the module
/// documentation): for a setting of a link this ADD just created. A key that does not exist (IPv6
/// disabled on the node) is reported as `Ok(false)`.
///
/// # Errors
/// Code 5 when the file exists but cannot be written.
pub fn set(key: &str, value: &str) -> Result<bool> {
    let path = format!("/proc/sys/{key}");
    match std::fs::write(&path, value) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(cause) => Err(Error::File { doing: format!("write {value} to"), path, cause }),
    }
}

/// Enable forwarding on the node for the families in use.
///
/// # Errors
/// Code 5 when a forwarding switch cannot be written.
pub fn enable_forwarding(ipv4: bool, ipv6: bool) -> Result<()> {
    if ipv4 && !ipv4_forwarding().unwrap_or(false) {
        ensure("net/ipv4/ip_forward", "1")?;
    }
    if ipv6 {
        ensure("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

/// Whether IPv4 forwarding (`net.ipv4.ip_forward`) is on in the calling thread's namespace, as
/// the namespace's SNMP counters report it (`Ip: Forwarding`, RFC 1213's ipForwarding: 1 on, 2
/// off). None when the file cannot be read or parsed; the caller then asks `/proc/sys`.
fn ipv4_forwarding() -> Option<bool> {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").ok()?;
    snmp_forwarding(&snmp)
}

/// `Ip: Forwarding` of a `/proc/net/snmp` text: the first `Ip:` line names the fields, the second
/// holds their values.
fn snmp_forwarding(snmp: &str) -> Option<bool> {
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next()?, ip.next()?);
    let at = names.split_whitespace().position(|n| n == "Forwarding")?;
    match values.split_whitespace().nth(at)? {
        "1" => Some(true),
        "2" => Some(false),
        _ => None,
    }
}

/// [`ensure`] inside `netns` (on a short-lived thread, see `netns::run_in`).
///
/// # Errors
/// Code 101 when the namespace cannot be entered, else as [`ensure`].
pub fn ensure_in(netns: &Netns, key: &str, value: &str) -> Result<bool> {
    netns::run_in(netns, || ensure(key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives\nIp: 1 64 17\nIcmp: InMsgs\nIcmp: 0\n";

    #[test]
    fn forwarding_is_read_from_the_snmp_counters() {
        assert_eq!(snmp_forwarding(SNMP), Some(true));
        assert_eq!(snmp_forwarding(&SNMP.replace("Ip: 1 64", "Ip: 2 64")), Some(false));
        assert_eq!(snmp_forwarding("Ip: DefaultTTL Forwarding\nIp: 64 2\n"), Some(false), "found by name");
        assert_eq!(snmp_forwarding("Ip: Forwarding\n"), None, "no values line");
        assert_eq!(snmp_forwarding("Icmp: InMsgs\nIcmp: 0\n"), None);
        assert_eq!(snmp_forwarding("Ip: Forwarding\nIp: 7\n"), None);
    }
}
