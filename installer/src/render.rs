//! The network's configuration as the installer writes it: a conflist for this node's pod ranges, or containerd's
//! `conf_template`, the same document with the ranges and routes left to containerd (its CRI plugin renders the
//! template with Go's text/template when the kubelet reports the node's pod CIDRs through `UpdateRuntimeConfig`;
//! the data are `.PodCIDR`, `.PodCIDRRanges` and `.Routes`, one default route per range's family).

use crate::settings::{Mode, Output, Settings};
use ipnet::IpNet;
use serde_json::{json, Value};

/// Placeholders in the JSON document that the template replaces with Go template actions.
const RANGES_HOLE: &str = "\"@tether-ranges@\"";
const ROUTES_HOLE: &str = "\"@tether-routes@\"";

/// `ranges` for containerd: one range set per pod CIDR (containerd reports one per family).
pub const TEMPLATE_RANGES: &str =
    r#"[{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$r}}"}]{{end}}]"#;
/// `routes` for containerd: its `.Routes` are `0.0.0.0/0` and/or `::/0`, matching the ranges' families.
pub const TEMPLATE_ROUTES: &str = r#"[{{range $i, $r := .Routes}}{{if $i}}, {{end}}{"dst": "{{$r}}"}{{end}}]"#;

/// One range set per address family (so a dual-stack node gives each pod one address of each family), and a
/// default route for each family present.
fn ranges_and_routes(pod_cidrs: &[IpNet]) -> (Value, Value) {
    let mut sets: Vec<Value> = Vec::new();
    let mut routes: Vec<Value> = Vec::new();
    for v4 in [true, false] {
        let family: Vec<Value> =
            pod_cidrs.iter().filter(|n| n.addr().is_ipv4() == v4).map(|n| json!({"subnet": n.to_string()})).collect();
        if !family.is_empty() {
            sets.push(Value::Array(family));
            routes.push(json!({"dst": if v4 { "0.0.0.0/0" } else { "::/0" }}));
        }
    }
    (Value::Array(sets), Value::Array(routes))
}

/// The conflist document, with `ranges` and `routes` as given.
fn document(s: &Settings, ranges: Value, routes: Value) -> Value {
    let mut plugin = json!({"type": "tether"});
    match s.mode {
        Mode::Ptp => plugin["mode"] = json!("ptp"),
        Mode::Bridge => {
            plugin["mode"] = json!("bridge");
            plugin["bridge"] = json!(s.bridge);
            plugin["isGateway"] = json!(true);
            plugin["isDefaultGateway"] = json!(true);
        }
    }
    if let Some(mtu) = s.mtu {
        plugin["mtu"] = json!(mtu);
    }
    plugin["ipMasq"] = json!(s.masquerade);
    if s.masquerade && !s.non_masquerade.is_empty() {
        plugin["nonMasqueradeCIDRs"] = json!(s.non_masquerade.iter().map(ToString::to_string).collect::<Vec<_>>());
    }
    let mut ipam = json!({"type": "tether-ipam", "dataDir": s.ipam_data_dir, "ranges": ranges});
    // Bridge mode's default routes come from isDefaultGateway.
    if s.mode == Mode::Ptp {
        ipam["routes"] = routes;
    }
    plugin["ipam"] = ipam;
    json!({"cniVersion": s.cni_version, "name": s.network, "plugins": [plugin]})
}

/// What to write besides the binaries: the file's contents (pretty JSON, or the template).
pub fn render(s: &Settings) -> String {
    match &s.output {
        Output::Conflist { pod_cidrs } => {
            let (ranges, routes) = ranges_and_routes(pod_cidrs);
            pretty(&document(s, ranges, routes))
        }
        Output::ContainerdTemplate { .. } => {
            let doc = document(s, Value::String(hole(RANGES_HOLE)), Value::String(hole(ROUTES_HOLE)));
            pretty(&doc).replace(RANGES_HOLE, TEMPLATE_RANGES).replace(ROUTES_HOLE, TEMPLATE_ROUTES)
        }
    }
}

fn hole(quoted: &str) -> String {
    quoted.trim_matches('"').to_string()
}

fn pretty(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let values: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::parse(&values, "/opt/tether".into()).unwrap()
    }

    #[test]
    fn ptp_conflist_dual_stack() {
        let s = settings(&[
            ("TETHER_POD_CIDRS", "fd7e:7e7e:1::/64,198.18.1.0/24"),
            ("TETHER_MTU", "1450"),
            ("TETHER_NON_MASQUERADE_CIDRS", "198.18.0.0/16,fd7e:7e7e::/48"),
        ]);
        let doc: Value = serde_json::from_str(&render(&s)).unwrap();
        assert_eq!(
            doc,
            json!({
                "cniVersion": "1.0.0",
                "name": "tether",
                "plugins": [{
                    "type": "tether",
                    "mode": "ptp",
                    "mtu": 1450,
                    "ipMasq": true,
                    "nonMasqueradeCIDRs": ["198.18.0.0/16", "fd7e:7e7e::/48"],
                    "ipam": {
                        "type": "tether-ipam",
                        "dataDir": "/var/lib/cni/networks",
                        "ranges": [[{"subnet": "198.18.1.0/24"}], [{"subnet": "fd7e:7e7e:1::/64"}]],
                        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
                    }
                }]
            })
        );
    }

    #[test]
    fn bridge_conflist_without_masquerade() {
        let s = settings(&[
            ("TETHER_POD_CIDRS", "198.18.2.0/24"),
            ("TETHER_MODE", "bridge"),
            ("TETHER_MASQUERADE", "false"),
            ("TETHER_NON_MASQUERADE_CIDRS", "198.18.0.0/16"),
        ]);
        let doc: Value = serde_json::from_str(&render(&s)).unwrap();
        let p = &doc["plugins"][0];
        assert_eq!((p["mode"].as_str(), p["bridge"].as_str()), (Some("bridge"), Some("tether0")));
        assert_eq!((p["isGateway"].as_bool(), p["isDefaultGateway"].as_bool()), (Some(true), Some(true)));
        assert_eq!(p["ipMasq"], false);
        assert!(p.get("nonMasqueradeCIDRs").is_none(), "meaningless without ipMasq");
        assert!(p["ipam"].get("routes").is_none(), "the gateway gives the default route");
        assert!(p.get("mtu").is_none());
    }

    /// Go's text/template applied by hand to the two actions, for containerd's data of a dual-stack node.
    fn expand_as_containerd(template: &str, ranges: &[&str], routes: &[&str]) -> String {
        let list = |items: &[&str], one: &dyn Fn(&str) -> String| {
            format!("[{}]", items.iter().map(|r| one(r)).collect::<Vec<_>>().join(", "))
        };
        template
            .replace(TEMPLATE_RANGES, &list(ranges, &|r| format!(r#"[{{"subnet": "{r}"}}]"#)))
            .replace(TEMPLATE_ROUTES, &list(routes, &|r| format!(r#"{{"dst": "{r}"}}"#)))
    }

    #[test]
    fn containerd_template_renders_to_the_conflist() {
        let common = [("TETHER_NON_MASQUERADE_CIDRS", "198.18.0.0/15"), ("TETHER_MTU", "1400")];
        let mut t = common.to_vec();
        t.push(("TETHER_OUTPUT", "containerd-template"));
        let template = render(&settings(&t));
        assert!(template.contains("{{range $i, $r := .PodCIDRRanges}}"), "{template}");
        assert!(serde_json::from_str::<Value>(&template).is_err(), "a template, not yet JSON");
        let rendered = expand_as_containerd(&template, &["198.18.3.0/24", "fd7e:7e7e:3::/64"], &["0.0.0.0/0", "::/0"]);
        let mut c = common.to_vec();
        c.push(("TETHER_POD_CIDRS", "198.18.3.0/24,fd7e:7e7e:3::/64"));
        let want: Value = serde_json::from_str(&render(&settings(&c))).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&rendered).unwrap(), want);
    }
}
