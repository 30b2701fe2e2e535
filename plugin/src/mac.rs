//! The container's MAC address: the `mac` capability (`runtimeConfig.mac`), `args.cni.mac`, or
//! `CNI_ARGS` `MAC=`, in that order of precedence (the reference bridge's), validated.

use crate::error::{Error, Result};
use conf::Request;

/// Parse `aa:bb:cc:dd:ee:ff` (or with `-`): six hex octets.
pub fn parse(text: &str) -> Option<[u8; 6]> {
    let sep = if text.contains('-') { '-' } else { ':' };
    let mut out = [0u8; 6];
    let mut parts = text.split(sep);
    for byte in &mut out {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The MAC requested for the container, if any.
///
/// # Errors
/// Code 7 for a malformed, multicast or all-zero value in the configuration, 4 in `CNI_ARGS`.
pub fn requested(request: &Request) -> Result<Option<[u8; 6]>> {
    let config = &request.config;
    let from_runtime = config.runtime_config.get("mac").and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let from_args =
        config.args.get("cni").and_then(|c| c.get("mac")).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let (text, source, from_environment) = match (from_runtime, from_args) {
        (Some(m), _) => (m.to_string(), "runtimeConfig.mac", false),
        (None, Some(m)) => (m.to_string(), "args.cni.mac", false),
        (None, None) => match request.cni_args()?.mac() {
            Some(m) => (m.to_string(), "CNI_ARGS MAC", true),
            None => return Ok(None),
        },
    };
    let invalid = |msg: String| match from_environment {
        true => Error::Environment(msg),
        false => Error::Config(msg),
    };
    let mac =
        parse(&text).ok_or_else(|| invalid(format!("{source}: {text:?} is not a MAC address (aa:bb:cc:dd:ee:ff)")))?;
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(invalid(format!("{source}: {text} is not a unicast MAC address")));
    }
    Ok(Some(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("c2:11:22:33:44:55"), Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(parse("C2-11-22-33-44-55"), Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]));
        for bad in ["", "c2:11:22:33:44", "c2:11:22:33:44:55:66", "c2:11:22:33:44:5", "zz:11:22:33:44:55", "c2:11-22"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(format(&[0xc2, 0x11, 0x22, 0x33, 0x44, 0x05]), "c2:11:22:33:44:05");
    }
}
