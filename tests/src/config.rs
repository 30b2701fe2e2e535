//! Spec versions and network configuration builders. Every address comes from 198.18.0.0/15 and
//! fd7e:7e7e::/32: subnet index `x` gives `198.18.<x>.0/24` and `fd7e:7e7e:<x>::/64`.

use serde_json::{json, Value};
use std::path::Path;

/// Every spec version, oldest first.
pub const ALL_VERSIONS: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The versions with the interface/ips result model (0.3.0 onwards).
pub const RESULT_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The exact VERSION reply of both binaries.
pub const VERSION_REPLY: &str =
    r#"{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#;

/// CHECK exists from 0.4.0.
pub fn has_check(v: &str) -> bool {
    matches!(v, "0.4.0" | "1.0.0" | "1.1.0")
}

/// STATUS and GC exist from 1.1.0.
pub fn has_status_gc(v: &str) -> bool {
    v == "1.1.0"
}

/// `ips[].version` is present in 0.3.x and 0.4.0 results, absent from 1.x.
pub fn has_ip_version(v: &str) -> bool {
    matches!(v, "0.3.0" | "0.3.1" | "0.4.0")
}

/// 0.1.0 / 0.2.0 results use `ip4`/`ip6`.
pub fn is_legacy(v: &str) -> bool {
    matches!(v, "0.1.0" | "0.2.0")
}

/// Run `body` once per version; a failure names the version it happened for.
#[track_caller]
pub fn each_version(versions: &[&str], body: impl Fn(&str)) {
    for v in versions {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(v)));
        if let Err(e) = outcome {
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("[cniVersion {v}] {what}");
        }
    }
}

/// One `#[test]` per version: `version_tests!(body_fn; name_0_3_1 => "0.3.1", name_1_1_0 => "1.1.0");`
/// calls `body_fn("0.3.1")` in a test named `name_0_3_1`, and so on.
#[macro_export]
macro_rules! version_tests {
    ($body:path; $($test:ident => $ver:literal),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                $body($ver)
            }
        )+
    };
}

/// The IPv4 subnet for index `x`.
pub fn v4_subnet(x: u8) -> String {
    format!("198.18.{x}.0/24")
}

/// The IPv6 subnet for index `x`.
pub fn v6_subnet(x: u8) -> String {
    format!("fd7e:7e7e:{x:x}::/64")
}

/// Which IPAM plugin a config delegates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipam {
    /// Ours.
    Tether,
    /// The reference `host-local` from `/usr/lib/cni`.
    HostLocal,
}

impl Ipam {
    /// The `ipam.type`.
    pub fn type_name(self) -> &'static str {
        match self {
            Ipam::Tether => "tether-ipam",
            Ipam::HostLocal => "host-local",
        }
    }
}

/// Address families a network is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Both.
    Dual,
}

impl Family {
    /// Has IPv4.
    pub fn v4(self) -> bool {
        matches!(self, Family::V4 | Family::Dual)
    }
    /// Has IPv6.
    pub fn v6(self) -> bool {
        matches!(self, Family::V6 | Family::Dual)
    }
}

/// A `tether` ptp network configuration.
#[derive(Debug, Clone)]
pub struct Ptp {
    /// `cniVersion`.
    pub version: String,
    /// Network `name`.
    pub name: String,
    /// IPAM plugin.
    pub ipam: Ipam,
    /// IPAM `dataDir`.
    pub data_dir: String,
    /// `ranges`: one range set per entry (subnet strings).
    pub ranges: Vec<Vec<Value>>,
    /// IPAM `routes` destinations.
    pub routes: Vec<String>,
    /// `ipMasq`.
    pub ip_masq: bool,
    /// `mtu` (omitted when `None`).
    pub mtu: Option<u32>,
}

impl Ptp {
    /// A ptp network named `name` for subnet index `x`, families `fam`, IPAM data under `data_dir`,
    /// default routes for each family, no masquerade.
    pub fn new(version: &str, name: &str, x: u8, fam: Family, data_dir: &Path) -> Ptp {
        let mut ranges = Vec::new();
        let mut routes = Vec::new();
        if fam.v4() {
            ranges.push(vec![json!({"subnet": v4_subnet(x)})]);
            routes.push("0.0.0.0/0".to_string());
        }
        if fam.v6() {
            ranges.push(vec![json!({"subnet": v6_subnet(x)})]);
            routes.push("::/0".to_string());
        }
        Ptp {
            version: version.to_string(),
            name: name.to_string(),
            ipam: Ipam::Tether,
            data_dir: data_dir.display().to_string(),
            ranges,
            routes,
            ip_masq: false,
            mtu: None,
        }
    }

    /// Use this IPAM plugin.
    pub fn ipam(mut self, ipam: Ipam) -> Ptp {
        self.ipam = ipam;
        self
    }

    /// Set `ipMasq`.
    pub fn masq(mut self, on: bool) -> Ptp {
        self.ip_masq = on;
        self
    }

    /// Set `mtu`.
    pub fn mtu(mut self, mtu: u32) -> Ptp {
        self.mtu = Some(mtu);
        self
    }

    /// Replace the ranges by a single IPv4 range `subnet` (e.g. a /30 to exhaust quickly).
    pub fn single_v4_range(mut self, subnet: &str) -> Ptp {
        self.ranges = vec![vec![json!({"subnet": subnet})]];
        self.routes = vec!["0.0.0.0/0".to_string()];
        self
    }

    /// The `ipam` object.
    pub fn ipam_json(&self) -> Value {
        json!({
            "type": self.ipam.type_name(),
            "dataDir": self.data_dir,
            "ranges": self.ranges,
            "routes": self.routes.iter().map(|d| json!({"dst": d})).collect::<Vec<_>>(),
        })
    }

    /// The plugin's own entry, without `cniVersion`/`name` (as inside a conflist's `plugins`).
    pub fn plugin_entry(&self) -> Value {
        let mut v = json!({
            "type": "tether",
            "mode": "ptp",
            "ipMasq": self.ip_masq,
            "ipam": self.ipam_json(),
        });
        if let Some(mtu) = self.mtu {
            v["mtu"] = json!(mtu);
        }
        v
    }

    /// The configuration a runtime sends to the plugin (entry + `cniVersion` + `name`).
    pub fn conf(&self) -> Value {
        let mut v = self.plugin_entry();
        v["cniVersion"] = json!(self.version);
        v["name"] = json!(self.name);
        v
    }

    /// The same network with the reference `ptp` plugin as `type` (for comparisons).
    pub fn reference_conf(&self) -> Value {
        let mut v = self.conf();
        v["type"] = json!("ptp");
        if let Some(obj) = v.as_object_mut() {
            obj.remove("mode");
        }
        v
    }

    /// A conflist holding this network (for cnitool).
    pub fn conflist(&self) -> Value {
        json!({"cniVersion": self.version, "name": self.name, "plugins": [self.plugin_entry()]})
    }
}

/// `conf` with `prevResult` set (for DEL and CHECK).
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut v = conf.clone();
    v["prevResult"] = prev.clone();
    v
}

/// `conf` as libcni 1.3's GC hands it over: `cni.dev/valid-attachments` (pairs of container ID
/// and ifname) and the same list again as `cni.dev/attachments`.
pub fn with_valid_attachments(conf: &Value, valid: &[(&str, &str)]) -> Value {
    let mut v = conf.clone();
    let list = Value::Array(valid.iter().map(|(c, i)| json!({"containerID": c, "ifname": i})).collect());
    v["cni.dev/valid-attachments"] = list.clone();
    v["cni.dev/attachments"] = list;
    v
}

/// The addresses (`addr/prefix`) in a result's `ips`.
pub fn result_addresses(result: &Value) -> Vec<String> {
    result["ips"].as_array().into_iter().flatten().filter_map(|ip| ip["address"].as_str().map(str::to_string)).collect()
}

/// The address part of `addr/prefix`.
pub fn addr_of(cidr: &str) -> &str {
    cidr.split('/').next().unwrap_or(cidr)
}
