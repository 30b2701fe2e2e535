//! The networks the runtime tests give a runtime: tether in `ptp` and `bridge` mode, and the
//! reference `ptp` + `host-local` as the oracle, each followed by the reference `portmap`.
//! Subnet index `x` is `198.18.<x>.0/24` and `fd7e:7e7e:<x>::/64`; the gateway is `.1` / `::1`.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tether_install::render;
use tether_install::settings::Settings;
use tether_tests::config::{v4_subnet, v6_subnet};
use tether_tests::Family;

/// The libcni version containerd 1.6 and podman 4.3 speak.
pub const CNI_VERSION: &str = "1.0.0";

/// The node-side bridge of the bridge variant.
pub const BRIDGE: &str = "tt-br0";

/// Which plugins wire the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `tether`, `mode: ptp`, with `tether-ipam`.
    TetherPtp,
    /// `tether`, `mode: bridge` (a gateway bridge), with `tether-ipam`.
    TetherBridge,
    /// The reference `ptp` with `host-local`: the oracle.
    ReferencePtp,
}

impl Variant {
    /// Every variant, the oracle last.
    pub const ALL: [Variant; 3] = [Variant::TetherPtp, Variant::TetherBridge, Variant::ReferencePtp];

    /// The main plugin's and the IPAM plugin's `type`.
    pub fn types(self) -> (&'static str, &'static str) {
        match self {
            Variant::TetherPtp | Variant::TetherBridge => ("tether", "tether-ipam"),
            Variant::ReferencePtp => ("ptp", "host-local"),
        }
    }

    /// Short name for messages and network names.
    pub fn label(self) -> &'static str {
        match self {
            Variant::TetherPtp => "tether-ptp",
            Variant::TetherBridge => "tether-bridge",
            Variant::ReferencePtp => "reference-ptp",
        }
    }

    /// The main plugin's entry, without `ipam`.
    fn main_plugin(self) -> Value {
        let (main, _) = self.types();
        match self {
            Variant::TetherPtp => json!({ "type": main, "mode": "ptp", "ipMasq": true }),
            Variant::TetherBridge => {
                json!({ "type": main, "mode": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true })
            }
            Variant::ReferencePtp => json!({ "type": main, "ipMasq": true }),
        }
    }

    /// The conflist of network `name`: subnet index `x`, families `fam`, IPAM data under
    /// `data_dir`, `portmap` chained after the main plugin.
    pub fn conflist(self, name: &str, x: u8, fam: Family, data_dir: &Path) -> Value {
        let (_, ipam_type) = self.types();
        let mut ranges = Vec::new();
        let mut routes = Vec::new();
        if fam.v4() {
            ranges.push(json!([{ "subnet": v4_subnet(x) }]));
            routes.push(json!({ "dst": "0.0.0.0/0" }));
        }
        if fam.v6() {
            ranges.push(json!([{ "subnet": v6_subnet(x) }]));
            routes.push(json!({ "dst": "::/0" }));
        }
        let mut main = self.main_plugin();
        main["ipam"] = json!({
            "type": ipam_type,
            "dataDir": data_dir.display().to_string(),
            "ranges": ranges,
            "routes": routes,
        });
        json!({
            "cniVersion": CNI_VERSION,
            "name": name,
            "plugins": [main, { "type": "portmap", "capabilities": { "portMappings": true } }],
        })
    }

    /// containerd's `conf_template` for this variant, IPAM data under `data_dir`: the template
    /// tether's installer writes (`TETHER_OUTPUT=containerd-template`), and for the reference the
    /// same document with only the `type`s changed, as a user switching plugins would.
    pub fn conf_template(self, data_dir: &Path) -> String {
        let mode = if self == Variant::TetherBridge { "bridge" } else { "ptp" };
        let values: BTreeMap<String, String> = [
            ("TETHER_OUTPUT", "containerd-template"),
            ("TETHER_MODE", mode),
            ("TETHER_BRIDGE", BRIDGE),
            ("TETHER_IPAM_DATA_DIR", &data_dir.display().to_string()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings = Settings::parse(&values, PathBuf::from("/nonexistent"))
            .unwrap_or_else(|e| panic!("the installer's settings: {e:?}"));
        let template = render::render(&settings);
        let (main, ipam) = self.types();
        let typed = |t: &str| format!("\"type\": \"{t}\"");
        assert!(template.contains(&typed("tether-ipam")) && template.contains(&typed("tether")), "{template}");
        template.replace(&typed("tether-ipam"), &typed(ipam)).replace(&typed("tether"), &typed(main))
    }
}

/// The IPv4 gateway (the node's address towards the pods) of subnet index `x`.
pub fn v4_gateway(x: u8) -> String {
    format!("198.18.{x}.1")
}

/// The IPv6 gateway of subnet index `x`.
pub fn v6_gateway(x: u8) -> String {
    format!("fd7e:7e7e:{x:x}::1")
}
