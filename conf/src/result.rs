//! Results: one in-memory model (the 1.1.0 result) and exact conversion to and from every layout.
//!
//! 1.1.0 is written as is; 1.0.0 drops the 1.1 interface (`mtu`, `socketPath`, `pciID`) and route
//! (`mtu`, `advmss`, `priority`, `table`, `scope`) fields; 0.3.x/0.4.0 drop them too and add
//! `ips[].version`; 0.1.0/0.2.0 keep the first IPv4 and first IPv6 address as `ip4`/`ip6` with the
//! routes of their family (Go `pkg/types/{100,040,020}` and `internal/convert.go`). A document is
//! read in its own `cniVersion`, as libcni's `create.Create` does, whatever the request's is.

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
//
// Decoding is as lenient as libcni's: every layout reads the route fields 1.1.0 added (Go shares
// one `types.Route` between all versions), 1.0.0 reads the 1.1.0 interface fields, and 0.3.x/0.4.0
// `ips[].version` may be missing (the address says it). Encoding writes only what the version has.

/// An interface as 0.3.0 to 1.0.0 write it.
#[derive(Serialize, Deserialize)]
struct BasicInterface {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sandbox: Option<String>,
}

impl From<&Interface> for BasicInterface {
    fn from(i: &Interface) -> Self {
        BasicInterface { name: i.name.clone(), mac: i.mac.clone(), sandbox: i.sandbox.clone() }
    }
}

/// A route as 0.1.0 to 1.0.0 write it.
#[derive(Serialize, Deserialize)]
struct BasicRoute {
    dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
}

impl From<&Route> for BasicRoute {
    fn from(r: &Route) -> Self {
        BasicRoute { dst: r.dst, gw: r.gw }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CurrentWire<I, R> {
    #[serde(default)]
    cni_version: String,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<I>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<IpConfig>,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    routes: Vec<R>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct VersionedIp {
    /// "4" or "6"; written always, read never (libcni ignores it too).
    #[serde(default)]
    version: String,
    address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionedWire<R> {
    #[serde(default)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<BasicInterface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<VersionedIp>,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    routes: Vec<R>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct LegacyIp {
    ip: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<BasicRoute>,
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

/// The version a result document is written in: its own `cniVersion`, or `fallback` when it has
/// none (libcni's `fixupResultVersion` and `ParsePrevResult` use the config's version then).
fn document_version(value: &serde_json::Value, fallback: Version) -> Result<Version, CniError> {
    match value.get("cniVersion") {
        None | Some(serde_json::Value::Null) => Ok(fallback),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(fallback),
        Some(serde_json::Value::String(s)) => Version::parse(s).map_err(|_| {
            CniError::new(ErrorCode::IncompatibleVersion, format!("result has unsupported cniVersion {s:?}"))
                .with_details(format!("supported: {:?}", crate::version::SUPPORTED))
        }),
        Some(other) => {
            Err(CniError::new(ErrorCode::Decode, format!("result cniVersion must be a string, got {other}")))
        }
    }
}

impl NetResult {
    /// Encode for `version`, with only the fields that version has; the result's `cniVersion` is
    /// always the request's.
    ///
    /// # Errors
    /// Code 999 when a 0.1.0/0.2.0 result would carry no address (the spec's "cannot convert").
    pub fn to_json(&self, version: Version) -> Result<serde_json::Value, CniError> {
        let cni_version = version.as_str().to_string();
        let basic_routes = || self.routes.iter().map(BasicRoute::from).collect::<Vec<_>>();
        let value = match version.layout() {
            ResultLayout::Current if version.has_1_1_fields() => serde_json::to_value(CurrentWire {
                cni_version,
                interfaces: self.interfaces.clone(),
                ips: self.ips.clone(),
                routes: self.routes.clone(),
                dns: self.dns.clone(),
            }),
            ResultLayout::Current => serde_json::to_value(CurrentWire {
                cni_version,
                interfaces: self.interfaces.iter().map(BasicInterface::from).collect(),
                ips: self.ips.clone(),
                routes: basic_routes(),
                dns: self.dns.clone(),
            }),
            ResultLayout::Versioned => serde_json::to_value(VersionedWire {
                cni_version,
                interfaces: self.interfaces.iter().map(BasicInterface::from).collect(),
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
                routes: basic_routes(),
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
                            .map(BasicRoute::from)
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

    /// Decode a result document (a `prevResult` or a delegate's answer) from its own
    /// `cniVersion`, or from `fallback` (the request's) when it names none.
    ///
    /// # Errors
    /// Code 1 for a `cniVersion` tether does not know; code 6 when the JSON does not fit the
    /// layout of its version.
    pub fn from_json(value: &serde_json::Value, fallback: Version) -> Result<NetResult, CniError> {
        let version = document_version(value, fallback)?;
        let decode_err = |e: serde_json::Error| {
            CniError::new(ErrorCode::Decode, format!("decode {version} result")).with_details(e.to_string())
        };
        match version.layout() {
            ResultLayout::Current => {
                let w = CurrentWire::<Interface, Route>::deserialize(value).map_err(decode_err)?;
                Ok(NetResult { interfaces: w.interfaces, ips: w.ips, routes: w.routes, dns: w.dns })
            }
            ResultLayout::Versioned => {
                let w = VersionedWire::<Route>::deserialize(value).map_err(decode_err)?;
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

    /// Whether this result can be written in `version` at all: 0.1.0 and 0.2.0 carry nothing but
    /// addresses, so a result without one cannot be. A plugin checks this before it acts, so that
    /// its answer cannot fail once the work is done (which would leave the work behind).
    ///
    /// # Errors
    /// Code 1 naming the version.
    pub fn encodable_in(&self, version: Version) -> Result<(), CniError> {
        if version.layout() == ResultLayout::Legacy && self.ips.is_empty() {
            return Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("a cniVersion {version} result must carry an IP address, and this one has none"),
            )
            .with_details("use cniVersion 0.3.0 or later for a network without addresses"));
        }
        Ok(())
    }

    /// The result as `version` can carry it: below 1.1.0 without the interface `mtu`/`socketPath`/
    /// `pciID` and the route `mtu`/`advmss`/`priority`/`table`/`scope`. A plugin applies an IPAM
    /// result in its request's version, so that what it configures is what its result reports and
    /// what CHECK can verify.
    pub fn in_version(mut self, version: Version) -> NetResult {
        if version.has_1_1_fields() {
            return self;
        }
        for route in &mut self.routes {
            let plain = Route::new(route.dst, route.gw);
            if *route != plain {
                log::warn!(
                    "route to {}: mtu/advmss/priority/table/scope ignored: they need cniVersion 1.1.0, not {version}",
                    route.dst
                );
                *route = plain;
            }
        }
        for interface in &mut self.interfaces {
            interface.mtu = None;
            interface.socket_path = None;
            interface.pci_id = None;
        }
        self
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
        // 1.0.0: the same document without the 1.1 interface and route fields
        let mut v100 = spec_example();
        v100["cniVersion"] = json!("1.0.0");
        v100["interfaces"][2].as_object_mut().unwrap().remove("mtu");
        v100["routes"][0] = json!({"dst": "0.0.0.0/0", "gw": "10.1.0.1"});
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
        expected.routes[0] = Route::new(expected.routes[0].dst, expected.routes[0].gw);
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
    fn versioned_ips_without_version_take_it_from_the_address() {
        // libcni's 0.4.0 decoder does not require `version`; plugins in the wild omit it.
        let v = json!({"cniVersion": "0.3.1", "ips": [{"address": "198.18.0.2/24"}, {"address": "fd7e:7e7e::2/64"}]});
        let r = NetResult::from_json(&v, Version::V0_3_1).unwrap();
        assert_eq!(r.ips.len(), 2);
        let back = r.to_json(Version::V0_4_0).unwrap();
        assert_eq!(back["ips"][0]["version"], "4");
        assert_eq!(back["ips"][1]["version"], "6");
    }

    #[test]
    fn a_document_is_read_in_its_own_version() {
        // a 1.0.0 answer (no `ips[].version`) to a 0.4.0 request
        let v100 = json!({"cniVersion": "1.0.0", "ips": [{"address": "198.18.0.2/24", "gateway": "198.18.0.1"}]});
        let r = NetResult::from_json(&v100, Version::V0_4_0).unwrap();
        assert_eq!(r.ips[0].gateway, Some("198.18.0.1".parse().unwrap()));
        // a 0.2.0 answer to a 1.0.0 request keeps its addresses and routes
        let v020 = json!({"cniVersion": "0.2.0", "ip4": {"ip": "198.18.0.2/24", "routes": [{"dst": "0.0.0.0/0"}]}});
        let r = NetResult::from_json(&v020, Version::V1_0_0).unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.routes.len(), 1);
        // a 0.4.0 answer to a 0.2.0 request
        let v040 = json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "198.18.0.2/24"}]});
        assert_eq!(NetResult::from_json(&v040, Version::V0_2_0).unwrap().ips.len(), 1);
    }

    #[test]
    fn versioned_routes_keep_the_1_1_fields_they_carry() {
        // Go shares one route type between versions: a 0.4.0 route with `table` keeps it.
        let v = json!({"cniVersion": "0.4.0", "routes": [{"dst": "0.0.0.0/0", "table": 100}]});
        assert_eq!(NetResult::from_json(&v, Version::V0_4_0).unwrap().routes[0].table, Some(100));
    }

    #[test]
    fn a_document_without_version_is_read_in_the_fallback() {
        // libcni: a result without cniVersion is taken to be in the config's version
        let legacy = json!({"ip4": {"ip": "198.18.0.2/24"}});
        assert_eq!(NetResult::from_json(&legacy, Version::V0_2_0).unwrap().ips.len(), 1);
        let versioned = json!({"cniVersion": "", "ips": [{"version": "4", "address": "198.18.0.2/24"}]});
        assert_eq!(NetResult::from_json(&versioned, Version::V0_4_0).unwrap().ips.len(), 1);
    }

    #[test]
    fn a_document_of_an_unknown_version_is_refused() {
        let v = json!({"cniVersion": "9.9.9", "ips": [{"address": "198.18.0.2/24"}]});
        assert_eq!(NetResult::from_json(&v, Version::V1_0_0).err().map(|e| e.code), Some(1));
        let v = json!({"cniVersion": 1, "ips": []});
        assert_eq!(NetResult::from_json(&v, Version::V1_0_0).err().map(|e| e.code), Some(6));
    }

    #[test]
    fn versions_below_1_1_carry_no_1_1_fields() {
        let r = NetResult::from_json(&spec_example(), Version::V1_1_0).unwrap();
        for v in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0, Version::V1_0_0] {
            let wire = r.to_json(v).unwrap();
            for route in wire["routes"].as_array().unwrap() {
                let keys: Vec<&String> = route.as_object().unwrap().keys().collect();
                assert!(keys.iter().all(|k| *k == "dst" || *k == "gw"), "{v}: route {route}");
            }
            for interface in wire["interfaces"].as_array().unwrap() {
                let keys: Vec<&String> = interface.as_object().unwrap().keys().collect();
                assert!(keys.iter().all(|k| ["name", "mac", "sandbox"].contains(&k.as_str())), "{v}: {interface}");
            }
        }
        let wire = r.to_json(Version::V1_1_0).unwrap();
        assert_eq!(wire["routes"][0]["table"], 100);
        assert_eq!(wire["interfaces"][2]["mtu"], 1500);
    }

    #[test]
    fn a_result_without_addresses_cannot_be_legacy() {
        let none = NetResult::default();
        for v in [Version::V0_1_0, Version::V0_2_0] {
            assert_eq!(none.encodable_in(v).unwrap_err().code, 1, "{v}");
            assert!(none.to_json(v).is_err(), "encodable_in agrees with to_json");
        }
        for v in [Version::V0_3_0, Version::V0_4_0, Version::V1_0_0, Version::V1_1_0] {
            assert!(none.encodable_in(v).is_ok() && none.to_json(v).is_ok(), "{v}");
        }
    }

    #[test]
    fn in_version_keeps_only_what_the_version_carries() {
        let r = NetResult::from_json(&spec_example(), Version::V1_1_0).unwrap();
        assert_eq!(r.clone().in_version(Version::V1_1_0), r);
        let v100 = r.clone().in_version(Version::V1_0_0);
        assert_eq!(v100.routes[0], Route::new(r.routes[0].dst, r.routes[0].gw));
        assert_eq!(v100.interfaces[2].mtu, None);
        assert_eq!((v100.ips, v100.dns), (r.ips, r.dns));
    }

    #[test]
    fn garbage_is_code_6() {
        assert_eq!(NetResult::from_json(&json!({"ips": 3}), Version::V1_0_0).err().map(|e| e.code), Some(6));
    }
}
