//! The example documents of the CNI specification (SPEC.md 1.1.0), run through `conf`.
#![allow(clippy::unwrap_used)]

use conf::{CniError, ErrorCode, NetConf, NetResult, Version};
use serde_json::{json, Value};

/// SPEC §1 "Example configuration".
fn spec_conflist() -> Value {
    json!({
      "cniVersion": "1.1.0",
      "cniVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
      "name": "dbnet",
      "plugins": [
        {
          "type": "bridge",
          "bridge": "cni0",
          "keyA": ["some more", "plugin specific", "configuration"],
          "ipam": {
            "type": "host-local",
            "subnet": "10.1.0.0/16",
            "gateway": "10.1.0.1",
            "routes": [{"dst": "0.0.0.0/0"}]
          },
          "dns": {"nameservers": ["10.1.0.1"]}
        },
        {"type": "tuning", "capabilities": {"mac": true}, "sysctl": {"net.core.somaxconn": "500"}},
        {"type": "portmap", "capabilities": {"portMappings": true}}
      ]
    })
}

/// What a runtime sends one plugin of a conflist (SPEC §3: name and cniVersion injected,
/// runtimeConfig for enabled capabilities, prevResult for all but the first ADD).
fn plugin_config(list: &Value, index: usize, prev: Option<&Value>) -> Value {
    let mut conf = list["plugins"][index].clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    if conf["capabilities"]["mac"] == json!(true) {
        conf["runtimeConfig"] = json!({"mac": "00:11:22:33:44:66"});
    }
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    conf
}

/// SPEC §3 example: the first plugin's ADD result, passed on as prevResult.
fn bridge_result() -> Value {
    json!({
      "cniVersion": "1.1.0",
      "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
      "routes": [{"dst": "0.0.0.0/0"}],
      "interfaces": [
        {"name": "cni0", "mac": "00:11:22:33:44:55"},
        {"name": "veth3243", "mac": "55:44:33:22:11:11"},
        {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
      ],
      "dns": {"nameservers": ["10.1.0.1"]}
    })
}

#[test]
fn every_plugin_of_the_spec_conflist_parses_as_the_runtime_sends_it() {
    let list = spec_conflist();
    let first = NetConf::from_value(plugin_config(&list, 0, None)).unwrap();
    assert_eq!((first.name.as_str(), first.version), ("dbnet", Version::V1_1_0));
    assert_eq!(first.ipam_type.as_deref(), Some("host-local"));
    assert_eq!(first.raw["keyA"][2], "configuration", "unknown keys are kept for the plugin and delegates");

    let tuning = NetConf::from_value(plugin_config(&list, 1, Some(&bridge_result()))).unwrap();
    assert_eq!(tuning.runtime_config["mac"], "00:11:22:33:44:66");
    let prev = tuning.prev_result.unwrap();
    assert_eq!(prev.interface_index("eth0", Some("/var/run/netns/blue")), Some(2));
    assert_eq!(prev.to_json(Version::V1_1_0).unwrap(), bridge_result());

    let portmap = NetConf::from_value(plugin_config(&list, 2, Some(&bridge_result()))).unwrap();
    assert!(portmap.runtime_config.is_empty(), "no portMappings supplied, so none injected");
}

#[test]
fn the_spec_result_converts_to_every_version() {
    let result = NetResult::from_json(&bridge_result(), Version::V1_1_0).unwrap();
    let v040 = result.to_json(Version::V0_4_0).unwrap();
    assert_eq!(
        v040["ips"][0],
        json!({"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2})
    );
    let v020 = result.to_json(Version::V0_2_0).unwrap();
    assert_eq!(
        v020,
        json!({
            "cniVersion": "0.2.0",
            "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
            "dns": {"nameservers": ["10.1.0.1"]}
        })
    );
}

#[test]
fn the_spec_ipam_result_parses() {
    // SPEC §4 "IP Allocation" example: no interfaces, no interface index.
    let ipam = json!({
      "cniVersion": "1.1.0",
      "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
      "routes": [{"dst": "0.0.0.0/0"}],
      "dns": {"nameservers": ["10.1.0.1"]}
    });
    let r = NetResult::from_json(&ipam, Version::V1_1_0).unwrap();
    assert!(r.interfaces.is_empty());
    assert_eq!(r.ips[0].interface, None);
    assert_eq!(r.to_json(Version::V1_1_0).unwrap(), ipam);
}

#[test]
fn the_spec_error_example_is_reproduced() {
    // SPEC §5 "Error" example.
    let e = CniError::new(ErrorCode::InvalidConfig, "Invalid Configuration")
        .with_details("Network 192.168.0.0/31 too small to allocate from.");
    assert_eq!(
        e.to_json("1.1.0"),
        json!({
          "cniVersion": "1.1.0",
          "code": 7,
          "msg": "Invalid Configuration",
          "details": "Network 192.168.0.0/31 too small to allocate from."
        })
    );
}
