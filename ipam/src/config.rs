//! The host-local configuration, read and validated. Pure: no file is touched here.
//!
//! Keys (`allocator/config.go`): `ipam.ranges` (range sets), the legacy top-level
//! `ipam.subnet/rangeStart/rangeEnd/gateway` (prepended as its own set when `subnet` is set),
//! `runtimeConfig.ipRanges` (capability `ipRanges`, prepended before both), `ipam.routes`,
//! `ipam.dataDir`, `ipam.resolvConf`. Requested addresses come from `CNI_ARGS` `IP=`, then
//! `args.cni.ips`, then `runtimeConfig.ips` (capability `ips`), concatenated. Every error is
//! code 7 and names the key at fault.

use crate::error::{Error, Result};
use crate::range::{Range, RangeSet};
use conf::{NetConf, Route, Version};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;

/// host-local's default `dataDir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// A validated IPAM configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// One address is taken from each set; its index names `last_reserved_ip.<index>`.
    pub sets: Vec<RangeSet>,
    /// Routes returned verbatim.
    pub routes: Vec<Route>,
    /// Where stores live; the store is `<dataDir>/<network name>`.
    pub data_dir: PathBuf,
    /// A resolv.conf to report as `dns`.
    pub resolv_conf: Option<PathBuf>,
    /// Requested addresses, in order, without duplicates.
    pub requested: Vec<IpAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRange {
    subnet: Option<String>,
    range_start: Option<String>,
    range_end: Option<String>,
    gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    subnet: Option<String>,
    range_start: Option<String>,
    range_end: Option<String>,
    gateway: Option<String>,
    ranges: Option<Vec<Vec<RawRange>>>,
    routes: Option<Vec<Value>>,
    data_dir: Option<String>,
    resolv_conf: Option<String>,
}

/// The `ipam` object of the request (code 7 when absent).
fn ipam_value(conf: &NetConf) -> Result<&Value> {
    conf.ipam.as_ref().ok_or_else(|| Error::config("IPAM config missing 'ipam' key"))
}

fn raw_ipam(conf: &NetConf) -> Result<RawIpam> {
    RawIpam::deserialize(ipam_value(conf)?).map_err(|e| {
        Error::config_with_details(format!("invalid ipam configuration of network {:?}", conf.name), e.to_string())
    })
}

fn data_dir_of(raw: &RawIpam) -> PathBuf {
    data_dir_or_default(raw.data_dir.as_deref())
}

fn data_dir_or_default(dir: Option<&str>) -> PathBuf {
    PathBuf::from(dir.filter(|d| !d.is_empty()).unwrap_or(DEFAULT_DATA_DIR))
}

/// Only `ipam.dataDir`, for the verbs that need no ranges (DEL, GC): a DEL must still release
/// when the rest of the IPAM configuration has since become invalid.
///
/// # Errors
/// Code 7 when `ipam` is missing or `dataDir` is not a string.
pub fn data_dir(conf: &NetConf) -> Result<PathBuf> {
    match ipam_value(conf)?.get("dataDir") {
        None | Some(Value::Null) => Ok(data_dir_or_default(None)),
        Some(Value::String(dir)) => Ok(data_dir_or_default(Some(dir))),
        Some(other) => Err(Error::config(format!("ipam.dataDir must be a string, got {other}"))),
    }
}

/// An IP address, or an `ip/prefix` whose prefix is ignored; IPv4-mapped IPv6 becomes IPv4.
fn parse_ip(field: &str, s: &str) -> Result<IpAddr> {
    let addr = s.split('/').next().unwrap_or(s).trim();
    addr.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| Error::config(format!("{field}: {s:?} is not an IP address")))
}

fn optional_ip(field: &str, s: &Option<String>) -> Result<Option<IpAddr>> {
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<IpAddr>()
            .map(|ip| Some(ip.to_canonical()))
            .map_err(|_| Error::config(format!("{field}: {s:?} is not an IP address"))),
    }
}

fn parse_range(at: &str, raw: &RawRange) -> Result<Range> {
    let subnet_s = raw
        .subnet
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::config(format!("{at}.subnet is missing")))?;
    let subnet: IpNet = subnet_s
        .parse()
        .map_err(|_| Error::config(format!("{at}.subnet: {subnet_s:?} is not a CIDR (e.g. 198.18.0.0/24)")))?;
    let start = optional_ip(&format!("{at}.rangeStart"), &raw.range_start)?;
    let end = optional_ip(&format!("{at}.rangeEnd"), &raw.range_end)?;
    let gateway = optional_ip(&format!("{at}.gateway"), &raw.gateway)?;
    Range::new(subnet, start, end, gateway).map_err(|e| Error::config(format!("{at}.{}: {}", e.field, e.msg)))
}

fn parse_set(at: &str, raw: &[RawRange]) -> Result<RangeSet> {
    let ranges = raw.iter().enumerate().map(|(j, r)| parse_range(&format!("{at}[{j}]"), r)).collect::<Result<_>>()?;
    RangeSet::new(ranges).map_err(|e| Error::config(format!("{at}: {e}")))
}

/// A list of addresses at `field` of `map` (strings, `ip` or `ip/prefix`).
fn ip_list(map: Option<&Value>, field: &str) -> Result<Vec<IpAddr>> {
    match map {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => parse_ip(&format!("{field}[{i}]"), s),
                other => Err(Error::config(format!("{field}[{i}]: {other} is not an IP address string"))),
            })
            .collect(),
        Some(other) => Err(Error::config(format!("{field} must be a list of IP addresses, got {other}"))),
    }
}

fn parse_routes(raw: &Option<Vec<Value>>) -> Result<Vec<Route>> {
    let Some(list) = raw else { return Ok(Vec::new()) };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            Route::deserialize(v)
                .map_err(|e| Error::config_with_details(format!("ipam.routes[{i}]: invalid route {v}"), e.to_string()))
        })
        .collect()
}

impl IpamConfig {
    /// Read and validate the configuration of `conf`, with `env_ips` from `CNI_ARGS` `IP=`.
    ///
    /// # Errors
    /// Code 7 naming the key: missing `ipam`, a bad CIDR or address, host bits, a subnet too
    /// small, an address outside its subnet, start after end, mixed families, overlapping ranges
    /// or sets, no ranges at all, or more than one set per family before cniVersion 0.3.0.
    pub fn parse(conf: &NetConf, env_ips: Vec<IpAddr>) -> Result<IpamConfig> {
        let raw = raw_ipam(conf)?;
        let sets = range_sets(conf, &raw)?;
        if sets.is_empty() {
            return Err(Error::config("no IP ranges specified: set ipam.ranges (or ipam.subnet)"));
        }
        let mut requested = env_ips.into_iter().map(|ip| ip.to_canonical()).collect::<Vec<_>>();
        requested.extend(ip_list(conf.args.get("cni").and_then(|c| c.get("ips")), "args.cni.ips")?);
        requested.extend(ip_list(conf.runtime_config.get("ips"), "runtimeConfig.ips")?);
        let mut unique = Vec::with_capacity(requested.len());
        for ip in requested {
            if !unique.contains(&ip) {
                unique.push(ip);
            }
        }
        Ok(IpamConfig {
            sets,
            routes: parse_routes(&raw.routes)?,
            data_dir: data_dir_of(&raw),
            resolv_conf: raw.resolv_conf.as_deref().filter(|p| !p.is_empty()).map(PathBuf::from),
            requested: unique,
        })
    }
}

/// What STATUS needs: the store's directory and the range sets known without `runtimeConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// Where stores live.
    pub data_dir: PathBuf,
    /// The static range sets (possibly none: a network whose ranges come only from the
    /// `ipRanges` capability, which libcni does not pass to STATUS).
    pub sets: Vec<RangeSet>,
}

impl StatusConfig {
    /// Read and validate the configuration as for ADD, except that no range set is needed.
    ///
    /// # Errors
    /// As [`IpamConfig::parse`], except "no ranges".
    pub fn parse(conf: &NetConf) -> Result<StatusConfig> {
        let raw = raw_ipam(conf)?;
        Ok(StatusConfig { sets: range_sets(conf, &raw)?, data_dir: data_dir_of(&raw) })
    }
}

/// Every range set, in host-local's order: `runtimeConfig.ipRanges`, the legacy top-level range,
/// `ipam.ranges`; validated, possibly none.
fn range_sets(conf: &NetConf, raw: &RawIpam) -> Result<Vec<RangeSet>> {
    let mut sets: Vec<(String, RangeSet)> = Vec::new();
    if let Some(v) = conf.runtime_config.get("ipRanges").filter(|v| !v.is_null()) {
        let runtime = Vec::<Vec<RawRange>>::deserialize(v).map_err(|e| {
            Error::config_with_details("runtimeConfig.ipRanges: not a list of range sets", e.to_string())
        })?;
        for (i, set) in runtime.iter().enumerate() {
            let at = format!("runtimeConfig.ipRanges[{i}]");
            sets.push((at.clone(), parse_set(&at, set)?));
        }
    }
    if raw.subnet.as_deref().is_some_and(|s| !s.is_empty()) {
        let legacy = RawRange {
            subnet: raw.subnet.clone(),
            range_start: raw.range_start.clone(),
            range_end: raw.range_end.clone(),
            gateway: raw.gateway.clone(),
        };
        let range = parse_range("ipam", &legacy)?;
        sets.push(("ipam.subnet".to_string(), RangeSet::new(vec![range]).map_err(Error::config)?));
    } else if raw.range_start.is_some() || raw.range_end.is_some() || raw.gateway.is_some() {
        log::warn!("ipam.rangeStart/rangeEnd/gateway without ipam.subnet are ignored (as host-local does)");
    }
    for (i, set) in raw.ranges.iter().flatten().enumerate() {
        let at = format!("ipam.ranges[{i}]");
        sets.push((at.clone(), parse_set(&at, set)?));
    }
    for (i, (at_a, a)) in sets.iter().enumerate() {
        for (j, (at_b, b)) in sets.iter().enumerate().skip(i + 1) {
            if a.overlaps(b) {
                return Err(Error::config(format!(
                    "range set {i} ({at_a}: {a}) overlaps with range set {j} ({at_b}: {b})"
                )));
            }
        }
    }
    let v4 = sets.iter().filter(|(_, s)| s.is_v4()).count();
    if (v4 > 1 || sets.len() - v4 > 1) && conf.version < Version::V0_3_0 {
        return Err(Error::config(format!(
            "CNI version {} does not support more than 1 address per family",
            conf.version
        )));
    }
    Ok(sets.into_iter().map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> NetConf {
        NetConf::from_value(v).unwrap()
    }

    fn parse(ipam: Value) -> Result<IpamConfig> {
        IpamConfig::parse(
            &conf(json!({"cniVersion": "1.1.0", "name": "n", "type": "tether-ipam", "ipam": ipam})),
            vec![],
        )
    }

    fn fails(ipam: Value, what: &str) {
        let e = parse(ipam.clone()).unwrap_err();
        assert_eq!(e.code(), 7, "{ipam}");
        assert!(e.to_string().contains(what), "{ipam}: {e}");
    }

    #[test]
    fn full_config_parses() {
        let c = parse(json!({
            "type": "tether-ipam", "subnet": "198.18.9.0/24",
            "ranges": [[{"subnet": "198.18.0.0/24", "rangeStart": "198.18.0.10", "rangeEnd": "198.18.0.20", "gateway": "198.18.0.254"}],
                       [{"subnet": "fd7e:7e7e::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "198.19.0.0/16", "gw": "198.18.0.1", "mtu": 1400, "advmss": 1360,
                        "priority": 10, "table": 100, "scope": 253}],
            "dataDir": "/tmp/x", "resolvConf": "/tmp/resolv.conf"
        }))
        .unwrap();
        assert_eq!(c.sets.len(), 3);
        assert_eq!(c.sets[0].to_string(), "198.18.9.1-198.18.9.254", "legacy range is prepended");
        assert_eq!(c.sets[1].ranges[0].gateway.to_string(), "198.18.0.254");
        assert_eq!(c.routes[1].mtu, Some(1400));
        assert_eq!(c.routes[1].scope, Some(253));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.resolv_conf, Some(PathBuf::from("/tmp/resolv.conf")));
    }

    #[test]
    fn defaults() {
        let c = parse(json!({"ranges": [[{"subnet": "198.18.0.0/24"}]]})).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.routes.is_empty() && c.resolv_conf.is_none() && c.requested.is_empty());
    }

    #[test]
    fn runtime_ip_ranges_are_prepended_and_requested_ips_concatenated() {
        let nc = conf(json!({
            "cniVersion": "1.0.0", "name": "n",
            "ipam": {"ranges": [[{"subnet": "198.18.0.0/24"}]]},
            "runtimeConfig": {"ipRanges": [[{"subnet": "198.18.5.0/24"}]], "ips": ["198.18.0.7/24", "fd7e:7e7e::7"]},
            "args": {"cni": {"ips": ["198.18.0.6", "198.18.0.7"]}}
        }));
        let c = IpamConfig::parse(&nc, vec!["198.18.0.5".parse().unwrap()]).unwrap();
        assert_eq!(c.sets[0].to_string(), "198.18.5.1-198.18.5.254");
        let got: Vec<String> = c.requested.iter().map(|i| i.to_string()).collect();
        assert_eq!(got, ["198.18.0.5", "198.18.0.6", "198.18.0.7", "fd7e:7e7e::7"]);
    }

    #[test]
    fn every_error_names_its_field() {
        fails(json!({}), "no IP ranges");
        fails(json!({"ranges": []}), "no IP ranges");
        fails(json!({"ranges": [[]]}), "empty range set");
        fails(json!({"ranges": [[{"subnet": "nope"}]]}), "ipam.ranges[0][0].subnet");
        fails(json!({"ranges": [[{"rangeStart": "198.18.0.1"}]]}), "ipam.ranges[0][0].subnet is missing");
        fails(json!({"ranges": [[{"subnet": "198.18.0.1/24"}]]}), "host bits");
        fails(json!({"ranges": [[{"subnet": "198.18.0.0/31"}]]}), "too small");
        fails(json!({"ranges": [[{"subnet": "fd7e:7e7e::/128"}]]}), "too small");
        fails(
            json!({"ranges": [[{"subnet": "198.18.0.0/24", "rangeStart": "198.18.1.1"}]]}),
            "ipam.ranges[0][0].rangeStart",
        );
        fails(json!({"ranges": [[{"subnet": "198.18.0.0/24", "rangeEnd": "x"}]]}), "ipam.ranges[0][0].rangeEnd");
        fails(
            json!({"ranges": [[{"subnet": "198.18.0.0/24", "rangeStart": "198.18.0.9", "rangeEnd": "198.18.0.2"}]]}),
            "after rangeEnd",
        );
        fails(json!({"subnet": "198.18.0.0/24", "gateway": "198.19.0.1"}), "ipam.gateway");
        fails(
            json!({"ranges": [[{"subnet": "198.18.0.0/24"}, {"subnet": "fd7e:7e7e::/64"}]]}),
            "mixed address families",
        );
        fails(json!({"ranges": [[{"subnet": "198.18.0.0/24"}, {"subnet": "198.18.0.0/25"}]]}), "overlap");
        fails(
            json!({"subnet": "198.18.0.0/24", "ranges": [[{"subnet": "198.18.0.0/16"}]]}),
            "range set 0 (ipam.subnet",
        );
        fails(json!({"ranges": [[{"subnet": "198.18.0.0/24"}]], "routes": [{"dst": "bad"}]}), "ipam.routes[0]");
        fails(json!({"ranges": "x"}), "invalid ipam configuration");
    }

    #[test]
    fn missing_ipam_and_bad_requested_ips() {
        let nc = conf(json!({"cniVersion": "1.0.0", "name": "n"}));
        assert_eq!(IpamConfig::parse(&nc, vec![]).unwrap_err().code(), 7);
        assert_eq!(data_dir(&nc).unwrap_err().code(), 7);
        let nc = conf(json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"subnet": "198.18.0.0/24"},
                             "runtimeConfig": {"ips": ["nope"]}}));
        assert!(IpamConfig::parse(&nc, vec![]).unwrap_err().to_string().contains("runtimeConfig.ips[0]"));
    }

    #[test]
    fn old_versions_allow_one_set_per_family() {
        let ipam = json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "198.18.1.0/24"}]]});
        let old = conf(json!({"cniVersion": "0.2.0", "name": "n", "ipam": ipam}));
        assert_eq!(IpamConfig::parse(&old, vec![]).unwrap_err().code(), 7);
        let dual = conf(json!({"cniVersion": "0.2.0", "name": "n",
                               "ipam": {"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd7e:7e7e::/64"}]]}}));
        assert!(IpamConfig::parse(&dual, vec![]).is_ok());
    }
}
