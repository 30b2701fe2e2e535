//! Bridge mode's keys: the reference `bridge` plugin's, so its configurations carry over with only
//! `type` (and `mode`) changed. Validation follows the reference, with the same conflicts refused.

use crate::error::{Error, Result};
use conf::NetConf;
use serde::Deserialize;

/// The bridge tether uses when `bridge` is not set (the reference's is `cni0`).
pub const DEFAULT_BRIDGE: &str = "tether0";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    force_address: bool,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default)]
    promisc_mode: bool,
    #[serde(default)]
    vlan: i64,
    vlan_trunk: Option<Vec<Trunk>>,
    #[serde(default)]
    preserve_default_vlan: bool,
    #[serde(default, rename = "macspoofchk")]
    mac_spoof_chk: bool,
    #[serde(default, rename = "enabledad")]
    enable_dad: bool,
    #[serde(default)]
    disable_container_interface: bool,
    #[serde(default)]
    port_isolation: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trunk {
    #[serde(rename = "minID")]
    min_id: Option<i64>,
    #[serde(rename = "maxID")]
    max_id: Option<i64>,
    id: Option<i64>,
}

/// The validated bridge settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConf {
    /// The bridge's name.
    pub name: String,
    /// Gateway addresses go on the bridge (or the VLAN gateway interface), forwarding is on.
    pub is_gateway: bool,
    /// Default routes through the gateway in the container (implies `is_gateway`).
    pub is_default_gateway: bool,
    /// Replace a conflicting address on the bridge instead of failing.
    pub force_address: bool,
    /// Frames may leave through the port they came in (`IFLA_BRPORT_MODE`).
    pub hairpin: bool,
    /// The bridge is promiscuous.
    pub promisc: bool,
    /// Access VLAN of the port (PVID, untagged); 0 = none.
    pub vlan: u16,
    /// Tagged VLANs of the port, sorted, without duplicates.
    pub trunks: Vec<u16>,
    /// `vlan_filtering` on the bridge (`vlan` or `vlanTrunk` given).
    pub vlan_filtering: bool,
    /// Keep the bridge's default VLAN on the port.
    pub preserve_default_vlan: bool,
    /// MAC spoof check on the port.
    pub spoofchk: bool,
    /// Let IPv6 duplicate address detection run on the container's addresses.
    pub dad: bool,
    /// Ports of the bridge cannot talk to each other (`IFLA_BRPORT_ISOLATED`).
    pub port_isolation: bool,
    /// Leave the container's interface down (pure layer 2 only).
    pub no_container_iface: bool,
}

impl Default for BridgeConf {
    fn default() -> BridgeConf {
        BridgeConf {
            name: DEFAULT_BRIDGE.to_string(),
            is_gateway: false,
            is_default_gateway: false,
            force_address: false,
            hairpin: false,
            promisc: false,
            vlan: 0,
            trunks: Vec::new(),
            vlan_filtering: false,
            preserve_default_vlan: false,
            spoofchk: false,
            dad: false,
            port_isolation: false,
            no_container_iface: false,
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::config(msg)
}

/// An interface name the kernel accepts (`conf::names::ifname_problem`): code 7 otherwise.
pub fn check_ifname(what: &str, name: &str) -> Result<()> {
    match conf::names::ifname_problem(name) {
        Some(problem) => Err(invalid(format!("{what} {name:?}: {problem}"))),
        None => Ok(()),
    }
}

/// The trunk's VLAN IDs (the reference's rules: `id`, or `minID` and `maxID` together, each
/// 1..=4094, min <= max), sorted and without duplicates.
fn trunk_vids(trunks: &[Trunk]) -> Result<Vec<u16>> {
    let vid = |what: &str, v: i64| {
        u16::try_from(v)
            .ok()
            .filter(|v| (1..=4094).contains(v))
            .ok_or_else(|| invalid(format!("vlanTrunk: {what} {v} is out of range 1..4094")))
    };
    let mut out = Vec::new();
    for t in trunks {
        match (t.min_id, t.max_id) {
            (Some(min), Some(max)) => {
                let (min, max) = (vid("minID", min)?, vid("maxID", max)?);
                if min > max {
                    return Err(invalid(format!("vlanTrunk: minID {min} is greater than maxID {max}")));
                }
                out.extend(min..=max);
            }
            (None, Some(_)) => return Err(invalid("vlanTrunk: maxID without minID (set both)")),
            (Some(_), None) => return Err(invalid("vlanTrunk: minID without maxID (set both)")),
            (None, None) => {}
        }
        if let Some(id) = t.id {
            out.push(vid("id", id)?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl BridgeConf {
    /// Read and validate bridge mode's keys.
    ///
    /// # Errors
    /// Code 7 naming the key(s): a bad bridge name, `hairpinMode` with `promiscMode`,
    /// `disableContainerInterface` with an IPAM plugin, a VLAN out of range, a gateway VLAN
    /// interface name over 15 bytes.
    pub fn from_netconf(netconf: &NetConf, layer3: bool) -> Result<BridgeConf> {
        let raw: Raw = netconf.plugin_config()?;
        let name = raw.bridge.filter(|b| !b.is_empty()).unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        check_ifname("bridge", &name)?;
        if raw.hairpin_mode && raw.promisc_mode {
            return Err(invalid("hairpinMode and promiscMode cannot both be set"));
        }
        if raw.disable_container_interface && layer3 {
            return Err(invalid("disableContainerInterface cannot be used with an IPAM plugin")
                .hint("an interface left down cannot use addresses; drop ipam.type for a pure layer-2 network"));
        }
        let vlan = u16::try_from(raw.vlan)
            .ok()
            .filter(|v| *v <= 4094)
            .ok_or_else(|| invalid(format!("vlan {} is out of range 0..4094", raw.vlan)))?;
        let trunks = trunk_vids(raw.vlan_trunk.as_deref().unwrap_or_default())?;
        let is_gateway = raw.is_gateway || raw.is_default_gateway;
        if is_gateway && vlan != 0 {
            check_ifname("bridge with vlan (the gateway interface <bridge>.<vlan>)", &format!("{name}.{vlan}"))?;
        }
        Ok(BridgeConf {
            name,
            is_gateway,
            is_default_gateway: raw.is_default_gateway,
            force_address: raw.force_address,
            hairpin: raw.hairpin_mode,
            promisc: raw.promisc_mode,
            vlan,
            trunks,
            vlan_filtering: vlan != 0 || raw.vlan_trunk.is_some(),
            preserve_default_vlan: raw.preserve_default_vlan,
            spoofchk: raw.mac_spoof_chk,
            dad: raw.enable_dad,
            port_isolation: raw.port_isolation,
            no_container_iface: raw.disable_container_interface,
        })
    }

    /// The bridge is sealed: it carries no address of the node (not even IPv6 link-local).
    pub fn sealed(&self) -> bool {
        !self.is_gateway
    }

    /// The gateway interface of a VLAN network: `<bridge>.<vlan>`.
    pub fn vlan_gateway(&self) -> Option<String> {
        (self.is_gateway && self.vlan != 0).then(|| format!("{}.{}", self.name, self.vlan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn conf(extra: Value) -> Result<BridgeConf> {
        let mut v = json!({"cniVersion": "1.1.0", "name": "n", "type": "tether", "mode": "bridge",
            "ipam": {"type": "tether-ipam"}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        let layer3 = v["ipam"].get("type").is_some();
        BridgeConf::from_netconf(&NetConf::from_value(v).unwrap(), layer3)
    }

    fn err(extra: Value) -> String {
        let e = conf(extra).unwrap_err();
        assert_eq!(e.to_cni().code, 7, "{e}");
        e.to_cni().msg
    }

    #[test]
    fn defaults() {
        let c = conf(json!({})).unwrap();
        assert_eq!(c, BridgeConf::default());
        assert_eq!(c.name, "tether0");
        assert!(c.sealed());
    }

    #[test]
    fn every_reference_key_is_read() {
        let c = conf(json!({"bridge": "br7", "isDefaultGateway": true, "forceAddress": true, "hairpinMode": true,
            "vlan": 7, "vlanTrunk": [{"id": 9}, {"minID": 20, "maxID": 22}, {"id": 21}], "preserveDefaultVlan": true,
            "macspoofchk": true, "enabledad": true, "portIsolation": true}))
        .unwrap();
        assert_eq!(c.name, "br7");
        assert!(c.is_gateway && c.is_default_gateway && c.force_address && c.hairpin);
        assert_eq!((c.vlan, c.trunks.clone()), (7, vec![9, 20, 21, 22]));
        assert!(c.vlan_filtering && c.preserve_default_vlan && c.spoofchk && c.dad && c.port_isolation);
        assert_eq!(c.vlan_gateway().as_deref(), Some("br7.7"));
        assert!(!c.sealed());
        let c = conf(json!({"promiscMode": true, "vlanTrunk": []})).unwrap();
        assert!(c.promisc && c.vlan_filtering && c.trunks.is_empty(), "an empty trunk list still filters");
        assert_eq!(c.vlan_gateway(), None);
    }

    #[test]
    fn conflicts_name_both_keys() {
        let m = err(json!({"hairpinMode": true, "promiscMode": true}));
        assert!(m.contains("hairpinMode") && m.contains("promiscMode"), "{m}");
        let m = err(json!({"disableContainerInterface": true}));
        assert!(m.contains("disableContainerInterface") && m.contains("IPAM"), "{m}");
        let c = conf(json!({"disableContainerInterface": true, "ipam": {}})).unwrap();
        assert!(c.no_container_iface);
    }

    #[test]
    fn vlans_are_range_checked() {
        assert!(err(json!({"vlan": 4095})).contains("vlan 4095"));
        assert!(err(json!({"vlan": -1})).contains("vlan -1"));
        assert_eq!(conf(json!({"vlan": 4094})).unwrap().vlan, 4094);
        assert!(err(json!({"vlanTrunk": [{"id": 0}]})).contains("id 0"));
        assert!(err(json!({"vlanTrunk": [{"id": 4095}]})).contains("id 4095"));
        assert!(err(json!({"vlanTrunk": [{"minID": 10, "maxID": 5}]})).contains("greater"));
        assert!(err(json!({"vlanTrunk": [{"minID": 10}]})).contains("maxID"));
        assert!(err(json!({"vlanTrunk": [{"maxID": 10}]})).contains("minID"));
        assert!(err(json!({"vlanTrunk": [{"minID": 0, "maxID": 10}]})).contains("minID 0"));
        assert!(err(json!({"vlan": "x"})).contains("invalid network configuration"));
    }

    #[test]
    fn bridge_names_are_interface_names() {
        for bad in ["0123456789abcdef", "a/b", "a b", "a:b", ".", ".."] {
            let m = err(json!({"bridge": bad}));
            assert!(m.contains("bridge"), "{bad}: {m}");
        }
        assert_eq!(conf(json!({"bridge": ""})).unwrap().name, "tether0");
        assert_eq!(conf(json!({"bridge": "0123456789abcde"})).unwrap().name, "0123456789abcde");
        // <bridge>.<vlan> must fit too when it is created (gateway with a VLAN)
        assert!(err(json!({"bridge": "0123456789abc", "vlan": 100, "isGateway": true})).contains("<bridge>.<vlan>"));
        assert!(conf(json!({"bridge": "0123456789abc", "vlan": 100})).is_ok());
    }
}
