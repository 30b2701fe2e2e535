//! containerd's `conf_template` as containerd renders it: Go's text/template (run with Debian's golang-go) over
//! the data containerd's CRI plugin passes, for a single-stack and a dual-stack node. The result must be the
//! conflist the installer writes for those pod ranges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use tether_install::{render, settings};

fn settings_of(pairs: &[(&str, &str)]) -> settings::Settings {
    let values: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    settings::Settings::parse(&values, "/opt/tether".into()).unwrap()
}

#[test]
fn go_text_template_renders_the_conflist() {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    if Command::new("go").arg("version").output().is_err() {
        assert!(!ci, "go is needed (apt-get install golang-go); CI is set, so this is a failure");
        eprintln!("SKIPPED: go_text_template_renders_the_conflist needs go");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tether-install-gotemplate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gotemplate/render.go");
    for mode in ["ptp", "bridge"] {
        let common = [("TETHER_MODE", mode), ("TETHER_MTU", "1450"), ("TETHER_NON_MASQUERADE_CIDRS", "198.18.0.0/15")];
        let mut t = common.to_vec();
        t.push(("TETHER_OUTPUT", "containerd-template"));
        let template = dir.join(format!("{mode}.template"));
        std::fs::write(&template, render::render(&settings_of(&t))).unwrap();
        for cidrs in [vec!["198.18.4.0/24"], vec!["198.18.4.0/24", "fd7e:7e7e:4::/64"]] {
            let out = Command::new("go")
                .arg("run")
                .arg(&program)
                .arg(&template)
                .args(&cidrs)
                .env("GOCACHE", dir.join("gocache"))
                .env("GOFLAGS", "-mod=mod")
                .env("GO111MODULE", "off")
                .output()
                .unwrap();
            assert!(out.status.success(), "go run: {}", String::from_utf8_lossy(&out.stderr));
            let rendered: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)));
            let mut c = common.to_vec();
            let joined = cidrs.join(",");
            c.push(("TETHER_POD_CIDRS", &joined));
            let want: Value = serde_json::from_str(&render::render(&settings_of(&c))).unwrap();
            assert_eq!(rendered, want, "{mode} {cidrs:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
