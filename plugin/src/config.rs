//! tether's own configuration keys, on top of the shared ones `conf` parses; bridge mode's keys
//! are in `bridge::config`.

use crate::bridge::config::BridgeConf;
use crate::error::{Error, Result};
use crate::mac;
use conf::{NetConf, Request};
use ipnet::IpNet;
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
    #[serde(default)]
    isolate: bool,
    #[serde(default, rename = "nonMasqueradeCIDRs")]
    non_masquerade_cidrs: Vec<String>,
}

/// The validated configuration of one tether network.
#[derive(Debug, Clone)]
pub struct PluginConf {
    /// Attachment mode.
    pub mode: Mode,
    /// MTU of both veth ends (and of a bridge tether creates).
    pub mtu: Option<u32>,
    /// Masquerade traffic leaving the container's subnets.
    pub ip_masq: bool,
    /// Destinations never masqueraded (`nonMasqueradeCIDRs`), host bits cleared.
    pub non_masquerade: Vec<IpNet>,
    /// The container's MAC, when the runtime or the configuration asks for one.
    pub mac: Option<[u8; 6]>,
    /// An IPAM plugin assigns addresses. False only in bridge mode with an `ipam` without
    /// `type` (or none): pure layer 2, as the reference bridge allows.
    pub layer3: bool,
    /// Bridge mode's keys (their defaults in ptp mode, where they are not used).
    pub bridge: BridgeConf,
    /// Drop what the node forwards between this network and any other isolated network
    /// (netavark's `isolate`); off by default, as the reference routes between networks.
    pub isolate: bool,
}

/// The mode named by `mode`, read leniently (DEL must work whatever else the document holds):
/// anything but a valid mode is ptp.
pub fn mode_of(netconf: &NetConf) -> Mode {
    parse_mode(netconf.raw.get("mode").and_then(|m| m.as_str())).unwrap_or(Mode::Ptp)
}

/// `mode`: absent or empty is ptp; an unknown value is code 2.
fn parse_mode(mode: Option<&str>) -> Result<Mode> {
    match mode {
        None | Some("") | Some("ptp") => Ok(Mode::Ptp),
        Some("bridge") => Ok(Mode::Bridge),
        Some(other) => {
            Err(Error::Unsupported(format!("unsupported mode {other:?}")).hint("mode must be \"ptp\" or \"bridge\""))
        }
    }
}

/// A list of CIDRs under `key`: each must parse (code 7 naming the key, the index and the value); host bits are
/// cleared, as ip-masq-agent's `net.ParseCIDR` does.
fn parse_cidrs(key: &str, values: &[String]) -> Result<Vec<IpNet>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
                Error::config(format!("{key}[{i}]: {v:?} is not a CIDR"))
                    .hint("expected an address and a prefix length, e.g. \"198.18.0.0/15\" or \"fd7e:7e7e::/32\"")
            })
        })
        .collect()
}

impl PluginConf {
    /// Read and validate tether's keys (the MAC may come from `CNI_ARGS`).
    ///
    /// # Errors
    /// Code 2 for an unknown `mode`; 7 for a missing IPAM type (ptp), a malformed key or
    /// conflicting options (the message names them); 4 for a malformed `CNI_ARGS` MAC.
    pub fn from_request(request: &Request) -> Result<PluginConf> {
        let mut conf = PluginConf::from_netconf(&request.config)?;
        conf.mac = mac::requested(request)?;
        Ok(conf)
    }

    /// [`PluginConf::from_request`] without the MAC.
    pub fn from_netconf(netconf: &NetConf) -> Result<PluginConf> {
        let raw: Raw = netconf.plugin_config()?;
        let mode = parse_mode(raw.mode.as_deref())?;
        let layer3 = netconf.ipam_type.is_some();
        if mode == Mode::Ptp && !layer3 {
            return Err(Error::config("ipam: missing \"type\"")
                .hint("tether needs an IPAM plugin, e.g. {\"type\": \"tether-ipam\", ...}"));
        }
        if let Some(mtu) = raw.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(Error::config(format!("invalid mtu {mtu}: must be 68..65535")));
            }
        }
        if let Some(backend) = raw.ip_masq_backend {
            log::info!("ipMasqBackend {backend:?} ignored: tether masquerades through nftables in-process");
        }
        let bridge = match mode {
            Mode::Bridge => BridgeConf::from_netconf(netconf, layer3)?,
            Mode::Ptp => BridgeConf::default(),
        };
        if raw.ip_masq && !layer3 {
            log::info!("ipMasq ignored: the network has no IPAM, so no addresses to masquerade");
        }
        let non_masquerade = parse_cidrs("nonMasqueradeCIDRs", &raw.non_masquerade_cidrs)?;
        if !non_masquerade.is_empty() && !raw.ip_masq {
            log::info!("nonMasqueradeCIDRs ignored: ipMasq is off, so nothing is masqueraded anyway");
        }
        Ok(PluginConf {
            mode,
            mtu: raw.mtu,
            ip_masq: raw.ip_masq && layer3,
            non_masquerade,
            mac: None,
            layer3,
            bridge,
            isolate: raw.isolate,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn request(v: serde_json::Value, cni_args: &str) -> Request {
        let invocation = conf::Invocation {
            command: conf::Command::Add,
            container_id: "c1".into(),
            netns: None,
            ifname: "eth0".into(),
            args: cni_args.into(),
            path: vec![],
        };
        Request { invocation, config: NetConf::from_value(v.clone()).unwrap(), stdin: v.to_string().into_bytes() }
    }

    fn parse(v: serde_json::Value) -> Result<PluginConf> {
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
        assert!(c.layer3);
    }

    #[test]
    fn unknown_mode_is_code_2() {
        let mut v = base();
        v["mode"] = json!("macvlan");
        assert_eq!(parse(v).err().map(|e| e.to_cni().code), Some(2));
    }

    #[test]
    fn ipam_type_is_required_in_ptp_mode_only() {
        let mut v = base();
        v["ipam"] = json!({});
        assert_eq!(parse(v.clone()).err().map(|e| e.to_cni().code), Some(7));
        v["mode"] = json!("bridge");
        let c = parse(v).unwrap();
        assert!(!c.layer3, "bridge with ipam {{}} is pure L2");
        let mut v = base();
        v.as_object_mut().unwrap().remove("ipam");
        assert_eq!(parse(v.clone()).err().map(|e| e.to_cni().code), Some(7));
        v["mode"] = json!("bridge");
        assert!(!parse(v).unwrap().layer3);
    }

    #[test]
    fn what_runtimes_and_reference_configs_add_is_tolerated() {
        let mut v = base();
        v["capabilities"] = json!({"portMappings": true, "io.kubernetes.cri.pod-annotations": true});
        v["runtimeConfig"] = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]});
        v["args"] = json!({"cni": {"labels": [{"key": "app", "value": "web"}]}});
        v["ipMasqBackend"] = json!("nftables");
        v["dns"] = json!({"nameservers": ["198.18.0.53"]});
        v["somethingNew"] = json!({"nested": [1, 2]});
        let c = parse(v).unwrap();
        assert_eq!((c.mode, c.mtu, c.ip_masq), (Mode::Ptp, None, false));
        v = base();
        v["mode"] = json!("ptp");
        assert_eq!(parse(v).unwrap().mode, Mode::Ptp);
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
        assert_eq!(parse(v).err().map(|e| e.to_cni().code), Some(7));
        let mut v = base();
        v["mtu"] = json!("big");
        assert_eq!(parse(v).err().map(|e| e.to_cni().code), Some(7));
    }

    #[test]
    fn non_masquerade_cidrs() {
        let mut v = base();
        v["ipMasq"] = json!(true);
        let c = parse(v.clone()).unwrap();
        assert!(c.non_masquerade.is_empty());
        v["nonMasqueradeCIDRs"] = json!(["198.18.0.0/15", "fd7e:7e7e::5/32"]);
        let c = parse(v.clone()).unwrap();
        let want: Vec<IpNet> = vec!["198.18.0.0/15".parse().unwrap(), "fd7e:7e7e::/32".parse().unwrap()];
        assert_eq!(c.non_masquerade, want, "host bits cleared");
        v["nonMasqueradeCIDRs"] = json!(["198.18.0.0/15", "198.18.0.0"]);
        let e = parse(v.clone()).unwrap_err();
        assert_eq!(e.to_cni().code, 7);
        assert!(e.to_cni().msg.contains("nonMasqueradeCIDRs[1]") && e.to_cni().msg.contains("198.18.0.0"), "{e}");
        v["nonMasqueradeCIDRs"] = json!("198.18.0.0/15");
        assert_eq!(parse(v).unwrap_err().to_cni().code, 7, "a string, not a list");
    }

    #[test]
    fn mac_precedence_runtime_config_then_args_then_cni_args() {
        let mut v = base();
        let cni = "IgnoreUnknown=1;MAC=02:00:00:00:00:03";
        assert_eq!(PluginConf::from_request(&request(v.clone(), "")).unwrap().mac, None);
        assert_eq!(PluginConf::from_request(&request(v.clone(), cni)).unwrap().mac, Some([2, 0, 0, 0, 0, 3]));
        v["args"] = json!({"cni": {"mac": "02:00:00:00:00:02"}});
        assert_eq!(PluginConf::from_request(&request(v.clone(), cni)).unwrap().mac, Some([2, 0, 0, 0, 0, 2]));
        v["runtimeConfig"] = json!({"mac": "02:00:00:00:00:01"});
        assert_eq!(PluginConf::from_request(&request(v.clone(), cni)).unwrap().mac, Some([2, 0, 0, 0, 0, 1]));
        v["runtimeConfig"] = json!({"mac": "not-a-mac"});
        let e = PluginConf::from_request(&request(v.clone(), "")).unwrap_err();
        assert_eq!(e.to_cni().code, 7);
        assert!(e.to_cni().msg.contains("runtimeConfig.mac"), "{e}");
        v["runtimeConfig"] = json!({"mac": "03:00:00:00:00:01"});
        assert!(PluginConf::from_request(&request(v, "")).unwrap_err().to_cni().msg.contains("unicast"));
        let e = PluginConf::from_request(&request(base(), "MAC=00:00:00:00:00:00")).unwrap_err();
        assert_eq!(e.to_cni().code, 4);
    }
}
