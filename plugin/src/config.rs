//! tether's own configuration keys, on top of the shared ones `conf` parses.

use conf::{CniError, CniResult, ErrorCode, NetConf};
use serde::Deserialize;

/// How containers are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A routed veth per container (the reference `ptp` topology).
    Ptp,
    /// Containers on a node bridge.
    Bridge,
}

/// The keys every mode shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    ip_masq: bool,
    #[serde(default)]
    ip_masq_backend: Option<String>,
}

/// The validated configuration of one tether network.
#[derive(Debug, Clone)]
pub struct PluginConf {
    /// Attachment mode.
    pub mode: Mode,
    /// MTU of both veth ends.
    pub mtu: Option<u32>,
    /// Masquerade traffic leaving the container's subnets.
    pub ip_masq: bool,
}

impl PluginConf {
    /// Read and validate tether's keys.
    ///
    /// # Errors
    /// Code 2 for an unknown `mode`, 7 for a missing IPAM type or a malformed key.
    pub fn from_netconf(netconf: &NetConf) -> CniResult<PluginConf> {
        let raw: Raw = netconf.plugin_config()?;
        let mode = match raw.mode.as_deref() {
            None | Some("") | Some("ptp") => Mode::Ptp,
            Some("bridge") => Mode::Bridge,
            Some(other) => {
                return Err(CniError::new(ErrorCode::UnsupportedField, format!("unsupported mode {other:?}"))
                    .with_details("mode must be \"ptp\" or \"bridge\""))
            }
        };
        if netconf.ipam_type.is_none() {
            return Err(CniError::new(ErrorCode::InvalidConfig, "ipam: missing \"type\"")
                .with_details("tether needs an IPAM plugin, e.g. {\"type\": \"tether-ipam\", ...}"));
        }
        if let Some(mtu) = raw.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(CniError::new(ErrorCode::InvalidConfig, format!("invalid mtu {mtu}: must be 68..65535")));
            }
        }
        if let Some(backend) = raw.ip_masq_backend {
            log::info!("ipMasqBackend {backend:?} ignored: tether masquerades through nftables in-process");
        }
        Ok(PluginConf { mode, mtu: raw.mtu, ip_masq: raw.ip_masq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> CniResult<PluginConf> {
        PluginConf::from_netconf(&NetConf::from_value(v)?)
    }

    fn base() -> serde_json::Value {
        json!({"cniVersion": "1.1.0", "name": "n", "type": "tether", "ipam": {"type": "tether-ipam"}})
    }

    #[test]
    fn ptp_is_the_default() {
        let c = parse(base()).unwrap();
        assert_eq!(c.mode, Mode::Ptp);
        assert!(!c.ip_masq);
    }

    #[test]
    fn unknown_mode_is_code_2() {
        let mut v = base();
        v["mode"] = json!("macvlan");
        assert_eq!(parse(v).err().map(|e| e.code), Some(2));
    }

    #[test]
    fn ipam_type_is_required() {
        let mut v = base();
        v["ipam"] = json!({});
        assert_eq!(parse(v).err().map(|e| e.code), Some(7));
        let mut v = base();
        v.as_object_mut().unwrap().remove("ipam");
        assert_eq!(parse(v).err().map(|e| e.code), Some(7));
    }

    #[test]
    fn mtu_and_masq() {
        let mut v = base();
        v["mtu"] = json!(1400);
        v["ipMasq"] = json!(true);
        v["ipMasqBackend"] = json!("iptables");
        let c = parse(v).unwrap();
        assert_eq!(c.mtu, Some(1400));
        assert!(c.ip_masq);
        let mut v = base();
        v["mtu"] = json!(10);
        assert_eq!(parse(v).err().map(|e| e.code), Some(7));
        let mut v = base();
        v["mtu"] = json!("big");
        assert_eq!(parse(v).err().map(|e| e.code), Some(7));
    }
}
