//! What the benchmark sends: network configurations, the runtime's environment, and reading results.
//!
//! Addresses only from 198.18.0.0/15 and fd7e:7e7e::/32. The benchmark sends no traffic.

use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::Path;

/// Debian's containernetworking-plugins (1.1.1) speak up to 1.0.0; both sides get the same version.
pub const CNI_VERSION: &str = "1.0.0";
/// Network name (also the IPAM store directory under each side's own dataDir).
pub const NET: &str = "tbnet";
pub const V4_SUBNET: &str = "198.18.0.0/16";
pub const V6_SUBNET: &str = "fd7e:7e7e::/64";
pub const BRIDGE: &str = "tb-br0";
pub const IFNAME: &str = "eth0";
/// The PATH a runtime typically runs with (the reference finds `iptables` through it).
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Tether,
    Reference,
    /// The kernel work done by `ip -batch` (no IPAM, no result): what any plugin must at least cost.
    Floor,
}

impl Side {
    pub fn letter(self) -> char {
        match self {
            Side::Tether => 't',
            Side::Reference => 'r',
            Side::Floor => 'f',
        }
    }

    /// Its name in `--scale-sides`.
    pub fn key(self) -> &'static str {
        match self {
            Side::Tether => "tether",
            Side::Reference => "reference",
            Side::Floor => "floor",
        }
    }
}

/// The plugin configurations of the sequential and parallel scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ptp,
    PtpMasq,
    Bridge,
    Dual,
}

impl Kind {
    pub fn key(self) -> &'static str {
        match self {
            Kind::Ptp => "ptp",
            Kind::PtpMasq => "masq",
            Kind::Bridge => "bridge",
            Kind::Dual => "dual",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Ptp => "ptp",
            Kind::PtpMasq => "ptp + ipMasq",
            Kind::Bridge => "bridge (isGateway)",
            Kind::Dual => "ptp dual stack",
        }
    }

    /// The reference plugin binary's name.
    pub fn reference_type(self) -> &'static str {
        if self == Kind::Bridge {
            "bridge"
        } else {
            "ptp"
        }
    }
}

/// The IPAM section; `data_dir` is the side's own directory.
pub fn ipam_section(side: Side, dual: bool, data_dir: &Path) -> Value {
    let mut ranges = vec![json!([{ "subnet": V4_SUBNET }])];
    if dual {
        ranges.push(json!([{ "subnet": V6_SUBNET }]));
    }
    json!({
        "type": if side == Side::Tether { "tether-ipam" } else { "host-local" },
        "dataDir": data_dir.to_string_lossy(),
        "ranges": ranges,
        "routes": [{ "dst": "0.0.0.0/0" }],
    })
}

/// The network configuration a runtime would send for `kind` on `side` (not for the floor).
pub fn netconf(side: Side, kind: Kind, data_dir: &Path) -> Value {
    let mut conf = json!({
        "cniVersion": CNI_VERSION,
        "name": NET,
        "ipMasq": kind == Kind::PtpMasq,
        "ipam": ipam_section(side, kind == Kind::Dual, data_dir),
    });
    let extra = match (side, kind) {
        (Side::Tether, Kind::Bridge) => {
            json!({ "type": "tether", "mode": "bridge", "bridge": BRIDGE, "isGateway": true })
        }
        (Side::Tether, _) => json!({ "type": "tether", "mode": "ptp" }),
        (_, Kind::Bridge) => json!({ "type": "bridge", "bridge": BRIDGE, "isGateway": true }),
        (_, _) => json!({ "type": "ptp" }),
    };
    if let (Some(conf), Value::Object(extra)) = (conf.as_object_mut(), extra) {
        conf.extend(extra);
    }
    conf
}

/// `conf` with `prevResult` set, as a runtime sends DEL.
pub fn with_prev_result(conf: &Value, prev: &Value) -> Value {
    let mut conf = conf.clone();
    if let Some(obj) = conf.as_object_mut() {
        obj.insert("prevResult".into(), prev.clone());
    }
    conf
}

/// The environment libcni gives a plugin (`CNI_ARGS` is always set, possibly empty).
pub fn env(command: &str, container_id: &str, netns: &Path, cni_path: &Path) -> Vec<(String, String)> {
    [
        ("PATH", SYSTEM_PATH.to_string()),
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", container_id.to_string()),
        ("CNI_NETNS", netns.to_string_lossy().into_owned()),
        ("CNI_IFNAME", IFNAME.to_string()),
        ("CNI_ARGS", String::new()),
        ("CNI_PATH", cni_path.to_string_lossy().into_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A 64-hex-digit container ID, unique per (scenario, side, round, slot).
pub fn container_id(scenario: &str, side: Side, round: usize, slot: usize) -> String {
    let tag = conf::hash::fnv1a64(scenario.bytes());
    format!("{:016x}{:016x}{:016x}{:016x}", std::process::id(), tag, (side.letter() as u64) << 32 | round as u64, slot)
}

/// A plugin's stdout: the result document, or the CNI error (`code`, `msg`, `details`) as one line.
pub fn parse_answer(stdout: &[u8], exit_ok: Result<(), String>) -> Result<Value, String> {
    let doc: Option<Value> = serde_json::from_slice(stdout).ok();
    if let Some(code) = doc.as_ref().and_then(|d| d.get("code")) {
        let field = |k: &str| doc.as_ref().and_then(|d| d.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
        let (msg, details) = (field("msg"), field("details"));
        let details = if details.is_empty() { String::new() } else { format!(" ({details})") };
        return Err(format!("code {code}: {msg}{details}"));
    }
    exit_ok?;
    if stdout.iter().all(u8::is_ascii_whitespace) {
        // DEL (and CHECK) print nothing on success.
        return Ok(Value::Null);
    }
    doc.ok_or_else(|| format!("stdout is not JSON: {:?}", String::from_utf8_lossy(stdout)))
}

/// The addresses (without prefix length) of a result's `ips`.
pub fn result_ips(result: &Value) -> Vec<IpAddr> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .map(|ips| ips.iter().filter_map(|ip| ip.get("address")?.as_str()?.split('/').next()?.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_per_side() {
        let dir = Path::new("/tmp/x");
        let t = netconf(Side::Tether, Kind::PtpMasq, dir);
        assert_eq!(
            (t["type"].as_str(), t["mode"].as_str(), t["ipMasq"].as_bool()),
            (Some("tether"), Some("ptp"), Some(true))
        );
        assert_eq!(t["ipam"]["type"], "tether-ipam");
        let r = netconf(Side::Reference, Kind::Bridge, dir);
        assert_eq!((r["type"].as_str(), r["bridge"].as_str(), r.get("mode")), (Some("bridge"), Some(BRIDGE), None));
        assert_eq!(r["ipam"]["type"], "host-local");
        let d = netconf(Side::Reference, Kind::Dual, dir);
        assert_eq!(d["ipam"]["ranges"][1][0]["subnet"], V6_SUBNET);
        assert_eq!(d["cniVersion"], CNI_VERSION);
    }

    #[test]
    fn answers() {
        let ok = br#"{"cniVersion":"1.0.0","ips":[{"address":"198.18.0.2/16"},{"address":"fd7e:7e7e::2/64"}]}"#;
        let v = parse_answer(ok, Ok(())).unwrap();
        assert_eq!(result_ips(&v).len(), 2);
        let err = br#"{"code":999,"msg":"tether: ADD is not implemented yet"}"#;
        assert_eq!(
            parse_answer(err, Err("exit status 1".into())).unwrap_err(),
            "code 999: tether: ADD is not implemented yet"
        );
        assert_eq!(parse_answer(b"", Err("exit status 2".into())).unwrap_err(), "exit status 2");
        assert_eq!(parse_answer(b"", Ok(())), Ok(Value::Null));
        assert!(parse_answer(b"garbage", Ok(())).is_err());
        assert_eq!(container_id("ptp", Side::Tether, 1, 2).len(), 64);
        assert_ne!(container_id("ptp", Side::Tether, 1, 2), container_id("ptp", Side::Reference, 1, 2));
    }
}
