//! sysctls under `/proc/sys/net`, which resolve against the namespace of the thread that opens
//! the file: called on the main thread, they act on the node; [`ensure_in`] acts in another
//! namespace through a throwaway thread.

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

/// Whether the node runs IPv6 at all (not booted with `ipv6.disable=1`, where any IPv6 link
/// setting fails with EAFNOSUPPORT).
pub fn node_has_ipv6() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

/// Enable forwarding on the node for the families in use.
///
/// # Errors
/// Code 5 when a forwarding switch cannot be written.
pub fn enable_forwarding(ipv4: bool, ipv6: bool) -> Result<()> {
    if ipv4 {
        ensure("net/ipv4/ip_forward", "1")?;
    }
    if ipv6 {
        ensure("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

/// [`ensure`] inside `netns` (on a short-lived thread, see `netns::run_in`).
///
/// # Errors
/// Code 101 when the namespace cannot be entered, else as [`ensure`].
pub fn ensure_in(netns: &Netns, key: &str, value: &str) -> Result<bool> {
    netns::run_in(netns, || ensure(key, value))
}
