//! deploy/ validated offline: every document parses, the objects reference each other correctly, the DaemonSet
//! has what a node network needs (every taint tolerated, system-node-critical, host network, the three host
//! paths, resources, rolling update), and the ConfigMap holds only settings the installer knows, with values it
//! accepts, pointing at the paths the DaemonSet mounts. A typo anywhere fails this test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tether_install::settings::{self, Output, Settings};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("deploy")
}

/// Every document of every deploy/*.yaml, as JSON values, with the file it came from.
fn documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no deploy/*.yaml");
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !v.is_null() {
                out.push((file.file_name().unwrap().to_string_lossy().into_owned(), v));
            }
        }
    }
    out
}

fn one<'a>(docs: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().map(|(_, v)| v).filter(|v| v["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind}");
    found[0]
}

#[test]
fn every_object_is_well_formed_and_in_the_namespace() {
    let docs = documents();
    let ns = one(&docs, "Namespace");
    let name = ns["metadata"]["name"].as_str().unwrap();
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged", "hostPath needs it");
    let mut kinds: Vec<&str> = Vec::new();
    for (file, d) in &docs {
        let kind = d["kind"].as_str().unwrap_or_else(|| panic!("{file}: no kind"));
        let api = d["apiVersion"].as_str().unwrap_or_else(|| panic!("{file}: {kind} has no apiVersion"));
        let want_api = match kind {
            "Namespace" | "ServiceAccount" | "ConfigMap" => "v1",
            "DaemonSet" => "apps/v1",
            other => panic!("{file}: unexpected kind {other}"),
        };
        assert_eq!(api, want_api, "{file}: {kind}");
        assert!(d["metadata"]["name"].is_string(), "{file}: {kind} has no name");
        if kind != "Namespace" {
            assert_eq!(d["metadata"]["namespace"], name, "{file}: {kind} outside {name}");
        }
        kinds.push(kind);
    }
    kinds.sort_unstable();
    assert_eq!(kinds, ["ConfigMap", "DaemonSet", "Namespace", "ServiceAccount"]);
}

#[test]
fn the_daemonset_is_a_node_network_installer() {
    let docs = documents();
    let ds = one(&docs, "DaemonSet");
    let spec = &ds["spec"];
    let pod = &spec["template"]["spec"];
    // The selector selects the template.
    let selector = spec["selector"]["matchLabels"].as_object().unwrap();
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(&spec["template"]["metadata"]["labels"][k], v, "selector {k} does not match the template");
    }
    assert_eq!(spec["updateStrategy"]["type"], "RollingUpdate");
    assert!(spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"].is_u64());
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["hostNetwork"], true, "the pod network does not exist before the installer ran");
    // Every taint: a toleration with operator Exists and neither key nor effect.
    let tolerations = pod["tolerations"].as_array().unwrap();
    assert!(
        tolerations.iter().any(|t| t["operator"] == "Exists" && t.get("key").is_none() && t.get("effect").is_none()),
        "no toleration of every taint: {tolerations:?}"
    );
    // The service account exists and needs no token.
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(pod["automountServiceAccountToken"], false);

    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert!(c["image"].as_str().is_some_and(|i| i.contains(':')), "the image needs a tag");
    for r in ["cpu", "memory"] {
        assert!(c["resources"]["requests"][r].is_string(), "no {r} request");
    }
    assert!(c["resources"]["limits"]["memory"].is_string(), "no memory limit");
    // The settings come from the ConfigMap.
    let cm = one(&docs, "ConfigMap");
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], cm["metadata"]["name"]);

    // Host paths, by the container path they are mounted at.
    let volumes: BTreeMap<&str, &str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["hostPath"]["path"].as_str().unwrap()))
        .collect();
    let mounts: BTreeMap<String, String> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let volume = m["name"].as_str().unwrap();
            let host = volumes.get(volume).unwrap_or_else(|| panic!("mount of undeclared volume {volume}"));
            (m["mountPath"].as_str().unwrap().to_string(), host.to_string())
        })
        .collect();
    let mut host_paths: Vec<&str> = mounts.values().map(String::as_str).collect();
    host_paths.sort_unstable();
    assert_eq!(host_paths, ["/etc/cni/net.d", "/opt/cni/bin", "/var/lib/cni/networks"]);

    // The settings, parsed by the installer itself, write where the host paths are mounted.
    let values: BTreeMap<String, String> = cm["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_else(|| panic!("{k}: quote the value")).to_string()))
        .collect();
    let s = Settings::parse(&settings::collect(&values, |_| unreachable!("no settings file")).unwrap(), "/x".into())
        .unwrap_or_else(|e| panic!("the ConfigMap's settings: {e}"));
    let host_of = |container_path: &Path| -> String {
        let (mount, host) = mounts
            .iter()
            .filter(|(m, _)| container_path.starts_with(m))
            .max_by_key(|(m, _)| m.len())
            .unwrap_or_else(|| panic!("{} is not on a mounted host path", container_path.display()));
        let rest = container_path.strip_prefix(mount).unwrap();
        if rest.as_os_str().is_empty() {
            host.clone()
        } else {
            Path::new(host).join(rest).display().to_string()
        }
    };
    assert_eq!(host_of(&s.bin_dir), "/opt/cni/bin");
    assert_eq!(host_of(&s.conf_dir), "/etc/cni/net.d");
    assert_eq!(s.ipam_data_dir, mounts["/host/var/lib/cni/networks"], "the conflist's dataDir is the mounted one");
    if let Output::ContainerdTemplate { path } = &s.output {
        // What containerd's conf_template must say (the ConfigMap's comment and the README).
        let node_path = host_of(path);
        let text = std::fs::read_to_string(deploy_dir().join("10-settings.yaml")).unwrap();
        assert!(text.contains(&format!("conf_template = \"{node_path}\"")), "the comment must name {node_path}");
    }
}

#[test]
fn every_configmap_key_is_a_known_setting() {
    let docs = documents();
    let cm = one(&docs, "ConfigMap");
    for key in cm["data"].as_object().unwrap().keys() {
        assert!(settings::KNOWN.iter().any(|k| k.name == key), "ConfigMap key {key} is no installer setting");
    }
}

#[test]
fn the_readme_documents_every_setting() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("README.md")).unwrap();
    for k in settings::KNOWN {
        assert!(readme.contains(&format!("| `{}` |", k.name)), "README's installer table lacks {}", k.name);
    }
}
