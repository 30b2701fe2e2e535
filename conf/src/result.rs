//! Results: one in-memory model (the 1.1.0 result) and exact conversion to and from every layout.
//!
//! 1.0.0/1.1.0 are written as is; 0.3.x/0.4.0 add `ips[].version` and drop the 1.1 interface
//! fields; 0.1.0/0.2.0 keep the first IPv4 and first IPv6 address as `ip4`/`ip6` with the routes of
//! their family (Go `pkg/types/{100,040,020}` and `internal/convert.go`).

use crate::error::{CniError, ErrorCode};
use crate::version::{ResultLayout, Version};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// An interface the plugin created or knows of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Link name.
    pub name: String,
    /// MAC address, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for container interfaces; absent on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Socket path (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// PCI ID (1.1.0).
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An address given to an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with the prefix of its subnet, e.g. `198.18.0.5/24`.
    pub address: IpNet,
    /// The gateway for this address, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`; IPAM results have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; when absent a gateway from `ips` may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Priority / metric, lower wins (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope: 0 universe, 253 link, 254 host (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A plain route to `dst`, optionally via `gw`.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }
}

/// DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when no field is set (then `dns` is left out of a result).
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_none() && self.search.is_empty() && self.options.is_empty()
    }
}

/// A successful ADD result, in the 1.1.0 model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetResult {
    /// Interfaces, in the order the plugin reports them.
    pub interfaces: Vec<Interface>,
    /// Addresses.
    pub ips: Vec<IpConfig>,
    /// Routes.
    pub routes: Vec<Route>,
    /// DNS.
    pub dns: Dns,
}

// ---- wire layouts -------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CurrentWire {
    #[serde(default)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct VersionedInterface {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sandbox: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct VersionedIp {
    version: String,
    address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionedWire {
    #[serde(default)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<VersionedInterface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<VersionedIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct LegacyRoute {
    dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct LegacyIp {
    ip: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<LegacyRoute>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyWire {
    #[serde(default)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

impl NetResult {
    /// Encode for `version`; the result's `cniVersion` is always the request's.
    ///
    /// # Errors
    /// Code 999 when a 0.1.0/0.2.0 result would carry no address (the spec's "cannot convert").
    pub fn to_json(&self, version: Version) -> Result<serde_json::Value, CniError> {
        let cni_version = version.as_str().to_string();
        let value = match version.layout() {
            ResultLayout::Current => serde_json::to_value(CurrentWire {
                cni_version,
                interfaces: self.interfaces.clone(),
                ips: self.ips.clone(),
                routes: self.routes.clone(),
                dns: self.dns.clone(),
            }),
            ResultLayout::Versioned => serde_json::to_value(VersionedWire {
                cni_version,
                interfaces: self
                    .interfaces
                    .iter()
                    .map(|i| VersionedInterface {
                        name: i.name.clone(),
                        mac: i.mac.clone(),
                        sandbox: i.sandbox.clone(),
                    })
                    .collect(),
                ips: self
                    .ips
                    .iter()
                    .map(|ip| VersionedIp {
                        version: if ip.address.addr().is_ipv4() { "4" } else { "6" }.to_string(),
                        address: ip.address,
                        gateway: ip.gateway,
                        interface: ip.interface,
                    })
                    .collect(),
                routes: self.routes.clone(),
                dns: self.dns.clone(),
            }),
            ResultLayout::Legacy => {
                let legacy_ip = |v4: bool| {
                    self.ips.iter().find(|ip| ip.address.addr().is_ipv4() == v4).map(|ip| LegacyIp {
                        ip: ip.address,
                        gateway: ip.gateway,
                        routes: self
                            .routes
                            .iter()
                            .filter(|r| r.dst.addr().is_ipv4() == v4)
                            .map(|r| LegacyRoute { dst: r.dst, gw: r.gw })
                            .collect(),
                    })
                };
                let (ip4, ip6) = (legacy_ip(true), legacy_ip(false));
                if ip4.is_none() && ip6.is_none() {
                    return Err(CniError::new(ErrorCode::Internal, "cannot convert: no valid IP addresses")
                        .with_details(format!("a {version} result needs an IPv4 or IPv6 address")));
                }
                serde_json::to_value(LegacyWire { cni_version, ip4, ip6, dns: self.dns.clone() })
            }
        };
        value.map_err(|e| CniError::new(ErrorCode::Internal, "encode result").with_details(e.to_string()))
    }

    /// Decode a result written in `version`'s layout (a `prevResult` or a delegate's answer).
    ///
    /// # Errors
    /// Code 6 when the JSON does not fit the layout.
    pub fn from_json(value: &serde_json::Value, version: Version) -> Result<NetResult, CniError> {
        let decode_err = |e: serde_json::Error| {
            CniError::new(ErrorCode::Decode, format!("decode {version} result")).with_details(e.to_string())
        };
        match version.layout() {
            ResultLayout::Current => {
                let w = CurrentWire::deserialize(value).map_err(decode_err)?;
                Ok(NetResult { interfaces: w.interfaces, ips: w.ips, routes: w.routes, dns: w.dns })
            }
            ResultLayout::Versioned => {
                let w = VersionedWire::deserialize(value).map_err(decode_err)?;
                Ok(NetResult {
                    interfaces: w
                        .interfaces
                        .into_iter()
                        .map(|i| Interface { name: i.name, mac: i.mac, sandbox: i.sandbox, ..Interface::default() })
                        .collect(),
                    ips: w
                        .ips
                        .into_iter()
                        .map(|ip| IpConfig { address: ip.address, gateway: ip.gateway, interface: ip.interface })
                        .collect(),
                    routes: w.routes,
                    dns: w.dns,
                })
            }
            ResultLayout::Legacy => {
                let w = LegacyWire::deserialize(value).map_err(decode_err)?;
                let mut result = NetResult { dns: w.dns, ..NetResult::default() };
                for legacy in [w.ip4, w.ip6].into_iter().flatten() {
                    result.ips.push(IpConfig { address: legacy.ip, gateway: legacy.gateway, interface: None });
                    result.routes.extend(legacy.routes.into_iter().map(|r| Route::new(r.dst, r.gw)));
                }
                Ok(result)
            }
        }
    }

    /// The index of the interface named `name` whose sandbox is `sandbox`.
    pub fn interface_index(&self, name: &str, sandbox: Option<&str>) -> Option<usize> {
        self.interfaces.iter().position(|i| i.name == name && i.sandbox.as_deref() == sandbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example result from SPEC.md §5 (1.1.0).
    fn spec_example() -> serde_json::Value {
        json!({
          "cniVersion": "1.1.0",
          "interfaces": [
              {"name": "cni0", "mac": "00:11:22:33:44:55"},
              {"name": "veth3243", "mac": "55:44:33:22:11:11"},
              {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue", "mtu": 1500}
          ],
          "ips": [
              {"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2},
              {"address": "2001:db8::5/64", "gateway": "2001:db8::1", "interface": 2}
          ],
          "routes": [
              {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "advmss": 1360, "priority": 100, "table": 100, "scope": 0},
              {"dst": "::/0"}
          ],
          "dns": {"nameservers": ["10.1.0.1"], "domain": "example.com", "search": ["example.com"], "options": ["ndots:5"]}
        })
    }

    #[test]
    fn current_round_trips_exactly() {
        let r = NetResult::from_json(&spec_example(), Version::V1_1_0).unwrap();
        assert_eq!(r.to_json(Version::V1_1_0).unwrap(), spec_example());
        let mut v100 = spec_example();
        v100["cniVersion"] = json!("1.0.0");
        assert_eq!(r.to_json(Version::V1_0_0).unwrap(), v100);
    }

    #[test]
    fn versioned_layout_adds_version_and_drops_new_interface_fields() {
        let r = NetResult::from_json(&spec_example(), Version::V1_1_0).unwrap();
        let v = r.to_json(Version::V0_4_0).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][1]["version"], "6");
        assert_eq!(v["ips"][0]["interface"], 2);
        assert!(v["interfaces"][2].get("mtu").is_none());
        assert_eq!(v["interfaces"][2]["sandbox"], "/var/run/netns/blue");
        // and back: nothing is lost but what 0.4.0 cannot carry
        let back = NetResult::from_json(&v, Version::V0_4_0).unwrap();
        let mut expected = r.clone();
        expected.interfaces[2].mtu = None;
        assert_eq!(back, expected);
    }

    #[test]
    fn legacy_layout_takes_first_address_of_each_family() {
        let mut r = NetResult::from_json(&spec_example(), Version::V1_1_0).unwrap();
        r.ips.push(IpConfig { address: "10.2.0.5/16".parse().unwrap(), gateway: None, interface: Some(2) });
        let v = r.to_json(Version::V0_2_0).unwrap();
        assert_eq!(
            v,
            json!({
                "cniVersion": "0.2.0",
                "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
                "ip6": {"ip": "2001:db8::5/64", "gateway": "2001:db8::1", "routes": [{"dst": "::/0"}]},
                "dns": {"nameservers": ["10.1.0.1"], "domain": "example.com", "search": ["example.com"], "options": ["ndots:5"]}
            })
        );
        let back = NetResult::from_json(&v, Version::V0_1_0).unwrap();
        assert_eq!(back.ips.len(), 2);
        assert_eq!(back.routes.len(), 2);
    }

    #[test]
    fn legacy_without_addresses_cannot_convert() {
        let r = NetResult::default();
        assert_eq!(r.to_json(Version::V0_1_0).err().map(|e| e.code), Some(999));
    }

    #[test]
    fn all_versions_round_trip_through_each_other() {
        let r = NetResult::from_json(&spec_example(), Version::V1_1_0).unwrap();
        for s in crate::version::SUPPORTED {
            let v = Version::parse(s).unwrap();
            let wire = r.to_json(v).unwrap();
            assert_eq!(wire["cniVersion"], s);
            let back = NetResult::from_json(&wire, v).unwrap();
            // a second trip through the same version is the identity
            assert_eq!(back.to_json(v).unwrap(), wire, "{s}");
        }
    }

    #[test]
    fn ipam_result_without_interfaces_parses() {
        let v = json!({"cniVersion":"0.3.1","ips":[{"version":"4","address":"198.18.0.2/24","gateway":"198.18.0.1"}]});
        let r = NetResult::from_json(&v, Version::V0_3_1).unwrap();
        assert_eq!(r.ips[0].interface, None);
        assert!(r.interfaces.is_empty());
    }

    #[test]
    fn garbage_is_code_6() {
        assert_eq!(NetResult::from_json(&json!({"ips": 3}), Version::V1_0_0).err().map(|e| e.code), Some(6));
    }
}
