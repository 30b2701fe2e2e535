//! Tier 1: the built binaries' command-line protocol, without root or namespaces. Every case here
//! is rejected (or answered) before a plugin touches any network state, so the binaries run
//! directly; each case runs against BOTH `tether` and `tether-ipam`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use serde_json::{json, Value};
use tether_tests::bins;
use tether_tests::config::VERSION_REPLY;
use tether_tests::plugin::{assert_no_panic, Plugin};
use tether_tests::TempDir;

/// Both binaries, run directly with `RUST_BACKTRACE=1` so that a panic would show.
fn binaries() -> Vec<(&'static str, Plugin)> {
    vec![
        ("tether", Plugin::direct(bins::tether()).env("RUST_BACKTRACE", "1")),
        ("tether-ipam", Plugin::direct(bins::tether_ipam()).env("RUST_BACKTRACE", "1")),
    ]
}

/// A well-formed config whose only flaw is whatever the test changes.
fn conf(version: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": "tt-cli",
        "type": "tether",
        "mode": "ptp",
        "ipam": {"type": "tether-ipam", "dataDir": "/nonexistent/tt-cli", "ranges": [[{"subnet": "198.18.1.0/24"}]]}
    })
}

/// A complete ADD environment (the netns path does not exist; nothing may get that far).
fn env(command: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", "tt-cli-container".to_string()),
        ("CNI_NETNS", "/run/netns/tt-cli-does-not-exist".to_string()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_PATH", bins::cni_path()),
    ]
}

fn without(mut env: Vec<(&'static str, String)>, key: &str) -> Vec<(&'static str, String)> {
    env.retain(|(k, _)| *k != key);
    env
}

fn with(mut env: Vec<(&'static str, String)>, key: &'static str, value: &str) -> Vec<(&'static str, String)> {
    env.retain(|(k, _)| *k != key);
    env.push((key, value.to_string()));
    env
}

/// Run `env` + `stdin` against both binaries and require the CNI error `code` from each: non-zero
/// exit, exactly one JSON error object on stdout, no panic on stderr.
#[track_caller]
fn expect_code(env: &[(&'static str, String)], stdin: &str, code: u64) {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (name, plugin) in binaries() {
        let out = plugin.run_env(&pairs, stdin);
        let got = out.assert_error();
        assert_eq!(got, code, "{name}: expected error code {code}, got {got}:\n{out}");
        let doc = out.json.as_ref().unwrap();
        assert!(doc["cniVersion"].is_string(), "{name}: error object without cniVersion:\n{out}");
    }
}

#[test]
fn version_prints_exactly_the_supported_versions() {
    for (name, plugin) in binaries() {
        // libcni sends fake values and {"cniVersion":"1.1.0"}; skel ignores stdin.
        for stdin in [r#"{"cniVersion":"1.1.0"}"#, "", "not json at all", r#"{"cniVersion":"0.3.1"}"#] {
            let out = plugin.run_env(
                &[("CNI_COMMAND", "VERSION"), ("CNI_NETNS", "dummy"), ("CNI_IFNAME", "dummy"), ("CNI_PATH", "dummy")],
                stdin,
            );
            assert_eq!(out.code(), Some(0), "{name}: VERSION must exit 0:\n{out}");
            assert_eq!(out.run.stdout.trim_end(), VERSION_REPLY, "{name}: VERSION reply with stdin {stdin:?}:\n{out}");
            assert_no_panic(&out.run);
        }
        // VERSION needs nothing but CNI_COMMAND.
        let out = plugin.run_env(&[("CNI_COMMAND", "VERSION")], "");
        assert_eq!(out.code(), Some(0), "{name}: bare VERSION:\n{out}");
        assert_eq!(out.run.stdout.trim_end(), VERSION_REPLY, "{name}: bare VERSION:\n{out}");
    }
}

#[test]
fn missing_ifname_is_code_4() {
    for cmd in ["ADD", "DEL", "CHECK"] {
        expect_code(&without(env(cmd), "CNI_IFNAME"), &conf("1.0.0").to_string(), 4);
    }
}

#[test]
fn missing_container_id_is_code_4() {
    for cmd in ["ADD", "DEL", "CHECK"] {
        expect_code(&without(env(cmd), "CNI_CONTAINERID"), &conf("1.0.0").to_string(), 4);
    }
}

#[test]
fn missing_netns_on_add_and_check_is_code_4() {
    for cmd in ["ADD", "CHECK"] {
        expect_code(&without(env(cmd), "CNI_NETNS"), &conf("1.0.0").to_string(), 4);
    }
}

#[test]
fn ifname_of_16_bytes_is_code_4() {
    let long = "abcdefghijklmnop";
    assert_eq!(long.len(), 16);
    for cmd in ["ADD", "DEL", "CHECK"] {
        expect_code(&with(env(cmd), "CNI_IFNAME", long), &conf("1.0.0").to_string(), 4);
    }
}

#[test]
fn ifname_with_forbidden_characters_is_code_4() {
    for bad in ["eth/0", "eth 0", "eth:0", ".", ".."] {
        expect_code(&with(env("ADD"), "CNI_IFNAME", bad), &conf("1.0.0").to_string(), 4);
    }
}

#[test]
fn container_id_with_slash_is_code_4() {
    for bad in ["a/b", "../etc", "/abs", "-leading-dash", "spa ce"] {
        expect_code(&with(env("ADD"), "CNI_CONTAINERID", bad), &conf("1.0.0").to_string(), 4);
    }
}

#[test]
fn stdin_not_json_is_code_6() {
    for stdin in ["not json", "{", "", "[1,2]", "\"a string\""] {
        expect_code(&env("ADD"), stdin, 6);
    }
}

#[test]
fn unsupported_cni_version_is_code_1() {
    for v in ["9.9.9", "1.2.0", "0.5.0", "1.0"] {
        expect_code(&env("ADD"), &conf(v).to_string(), 1);
    }
}

#[test]
fn missing_network_name_is_code_7() {
    let mut c = conf("1.0.0");
    c.as_object_mut().unwrap().remove("name");
    expect_code(&env("ADD"), &c.to_string(), 7);
    c["name"] = json!("");
    expect_code(&env("ADD"), &c.to_string(), 7);
}

#[test]
fn network_name_that_is_a_path_is_code_7() {
    for bad in ["../x", "a/b", "/etc", "..", "."] {
        let mut c = conf("1.0.0");
        c["name"] = json!(bad);
        for cmd in ["ADD", "DEL"] {
            expect_code(&env(cmd), &c.to_string(), 7);
        }
    }
}

#[test]
fn check_with_0_3_1_is_code_1() {
    for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1"] {
        expect_code(&env("CHECK"), &conf(v).to_string(), 1);
    }
}

#[test]
fn status_and_gc_with_1_0_0_are_code_1() {
    for cmd in ["STATUS", "GC"] {
        for v in ["0.4.0", "1.0.0"] {
            expect_code(&[("CNI_COMMAND", cmd.to_string()), ("CNI_PATH", bins::cni_path())], &conf(v).to_string(), 1);
        }
    }
}

#[test]
fn unknown_command_is_code_4() {
    for cmd in ["FOO", "add", "Version"] {
        expect_code(&with(env("ADD"), "CNI_COMMAND", cmd), &conf("1.0.0").to_string(), 4);
    }
}

#[test]
fn no_command_prints_about_on_stderr_only() {
    for (name, plugin) in binaries() {
        for env in [vec![], vec![("CNI_IFNAME", "eth0")], vec![("CNI_COMMAND", "")]] {
            let out = plugin.run_env(&env, "");
            assert_eq!(out.code(), Some(0), "{name}: no CNI_COMMAND must exit 0:\n{out}");
            assert!(out.run.stdout.is_empty(), "{name}: no CNI_COMMAND must print nothing on stdout:\n{out}");
            assert!(!out.run.stderr.trim().is_empty(), "{name}: no CNI_COMMAND must print the about text:\n{out}");
            assert!(out.run.stderr.contains("1.1.0"), "{name}: about text should list the versions:\n{out}");
            assert_no_panic(&out.run);
        }
    }
}

#[test]
fn errors_are_reported_in_the_request_version() {
    // A version the request did choose (a verb it does not allow) is echoed in the error object.
    for (name, plugin) in binaries() {
        let e = env("CHECK");
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = plugin.run_env(&pairs, &conf("0.3.1").to_string());
        out.assert_error();
        assert_eq!(out.json.as_ref().unwrap()["cniVersion"], "0.3.1", "{name}:\n{out}");
    }
}

/// The SPEC's "Add example": the bridge entry of the `dbnet` conflist as the runtime sends it
/// (`cniVersion` and `name` injected, plugin-specific keys, IPAM with `subnet`/`gateway`, `dns`),
/// re-addressed into 198.18.0.0/15, with runtime-injected `runtimeConfig` and `args`.
fn spec_document(ipam_type: &str, data_dir: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "dbnet",
        "type": "tether",
        "bridge": "cni0",
        "keyA": ["some more", "plugin specific", "configuration"],
        "ipam": {
            "type": ipam_type,
            "subnet": "198.18.64.0/18",
            "gateway": "198.18.64.1",
            "dataDir": data_dir,
            "routes": [{"dst": "0.0.0.0/0"}]
        },
        "dns": {"nameservers": ["198.18.64.1"]},
        "runtimeConfig": {"mac": "00:11:22:33:44:66", "portMappings": []},
        "args": {"cni": {"labels": [{"key": "app", "value": "db"}]}}
    })
}

/// Run the IPAM flow ADD, CHECK, DEL, DEL with the SPEC document; return the ADD result with the
/// allocated address blanked out (so results of two implementations compare equal).
fn ipam_spec_flow(plugin: &Plugin, ipam_type: &str) -> Value {
    let dir = TempDir::new("ipam-spec");
    let data = dir.path().join("data");
    let doc = spec_document(ipam_type, &data.display().to_string());
    let env_for = |cmd: &str| env(cmd);
    let run = |cmd: &str, stdin: &Value| {
        let e = env_for(cmd);
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        plugin.run_env(&pairs, &stdin.to_string())
    };
    let add = run("ADD", &doc);
    let result = add.result().clone();
    assert_eq!(result["cniVersion"], "1.0.0", "{ipam_type}: result version:\n{add}");
    assert!(result.get("interfaces").is_none(), "{ipam_type}: an IPAM result has no interfaces:\n{add}");
    let ips = result["ips"].as_array().unwrap_or_else(|| panic!("{ipam_type}: no ips:\n{add}"));
    assert_eq!(ips.len(), 1, "{ipam_type}: one address expected:\n{add}");
    let address = ips[0]["address"].as_str().unwrap().to_string();
    assert!(address.starts_with("198.18.") && address.ends_with("/18"), "{ipam_type}: address {address}:\n{add}");
    assert_ne!(address, "198.18.64.1/18", "{ipam_type}: the gateway must not be handed out:\n{add}");
    assert_eq!(ips[0]["gateway"], "198.18.64.1", "{ipam_type}:\n{add}");
    assert!(ips[0].get("interface").is_none(), "{ipam_type}: IPAM results carry no interface index:\n{add}");
    let files: Vec<String> = walk(&data);
    assert!(
        files.iter().any(|f| f.ends_with(&format!("dbnet/{}", address.split('/').next().unwrap()))),
        "{ipam_type}: no reservation file for {address} in {files:?}"
    );

    let mut prev = doc.clone();
    prev["prevResult"] = result.clone();
    run("CHECK", &prev).assert_ok_silent();
    run("DEL", &prev).assert_ok_silent();
    let bare = address.split('/').next().unwrap();
    let left: Vec<String> = walk(&data).into_iter().filter(|f| f.rsplit('/').next() == Some(bare)).collect();
    assert!(left.is_empty(), "{ipam_type}: reservation left after DEL: {left:?}");
    run("DEL", &prev).assert_ok_silent();
    run("DEL", &doc).assert_ok_silent();

    let mut blank = result;
    blank["ips"][0]["address"] = json!("<allocated>");
    // Debian's host-local (plugins 1.1.1) prints an empty `"dns": {}`; newer Go omits it. Same meaning.
    if blank["dns"].as_object().is_some_and(serde_json::Map::is_empty) {
        blank.as_object_mut().unwrap().remove("dns");
    }
    blank
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// The oracle: the reference host-local takes the SPEC document (proves the flow's assertions).
#[test]
fn spec_document_is_accepted_by_reference_host_local() {
    match bins::reference("host-local") {
        Some(host_local) => {
            ipam_spec_flow(&Plugin::direct(host_local), "host-local");
        }
        None => eprintln!("SKIPPED: /usr/lib/cni/host-local not installed"),
    }
}

/// tether-ipam answers the SPEC document exactly as the reference host-local does (IPAM touches
/// only its data directory, so this needs neither root nor a namespace).
#[test]
fn spec_document_is_accepted_by_tether_ipam_like_host_local() {
    let ours = ipam_spec_flow(&Plugin::direct(bins::tether_ipam()).env("RUST_BACKTRACE", "1"), "tether-ipam");
    if let Some(host_local) = bins::reference("host-local") {
        let reference = ipam_spec_flow(&Plugin::direct(host_local), "host-local");
        assert_eq!(ours, reference, "tether-ipam and host-local disagree on the SPEC document");
    }
}

/// A configuration both binaries refuse in their handler, after logging is set up: tether for the
/// unknown `mode` (code 2), tether-ipam for the subnet that is not one (code 7). Nothing is created.
fn conf_failing_in_the_handler() -> Value {
    let mut c = conf("1.0.0");
    c["mode"] = json!("no-such-mode");
    c["ipam"]["ranges"] = json!([[{"subnet": "not-a-subnet"}]]);
    c
}

#[test]
fn a_log_file_that_is_stdout_is_refused_and_stdout_keeps_one_document() {
    let e = env("ADD");
    let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (name, plugin) in binaries() {
        let by_env = plugin.clone().env("TETHER_LOG", "debug").env("TETHER_LOG_FILE", "/dev/stdout");
        let mut by_config = conf_failing_in_the_handler();
        by_config["logFile"] = json!("/proc/self/fd/1");
        by_config["logLevel"] = json!("debug");
        for (how, plugin, stdin) in [
            ("TETHER_LOG_FILE=/dev/stdout", by_env, conf_failing_in_the_handler()),
            ("logFile /proc/self/fd/1", plugin, by_config),
        ] {
            let out = plugin.run_env(&pairs, &stdin.to_string());
            out.assert_error(); // exactly one JSON document on stdout
            assert!(out.run.stderr.contains("not logging to"), "{name}, {how}: no warning on stderr:\n{out}");
            assert!(out.run.stderr.contains("failed"), "{name}, {how}: the log lines go to stderr:\n{out}");
        }
    }
}

#[test]
fn log_lines_carry_an_rfc3339_utc_timestamp_and_the_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let e = env("ADD");
    let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (name, plugin) in binaries() {
        let dir = TempDir::new("log");
        let log = dir.path().join("tether.log");
        let out = plugin
            .env("TETHER_LOG_FILE", log.to_str().unwrap())
            .run_env(&pairs, &conf_failing_in_the_handler().to_string());
        out.assert_error();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.is_empty(), "{name}: nothing logged");
        for line in text.lines() {
            let stamp = line.split(' ').next().unwrap();
            // 2026-12-01T23:45:12.345Z
            let shape: String = stamp.chars().map(|c| if c.is_ascii_digit() { 'd' } else { c }).collect();
            assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.dddZ", "{name}: {line:?}");
        }
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}: log file mode {mode:o}");
    }
}

#[test]
fn dash_dash_version_prints_tether_version_and_commit_on_stdout() {
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(bins::repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    for (name, binary) in [("tether", bins::tether()), ("tether-ipam", bins::tether_ipam())] {
        for arg in ["--version", "-V"] {
            let mut cmd = std::process::Command::new(&binary);
            cmd.arg(arg).env_clear();
            let run = tether_tests::cmd::run(cmd, Vec::new(), "", tether_tests::cmd::DEFAULT_TIMEOUT);
            assert_eq!(run.code(), Some(0), "{name} {arg}:\n{run}");
            assert!(run.stderr.is_empty(), "{name} {arg}: stderr:\n{run}");
            let lines: Vec<&str> = run.stdout.lines().collect();
            assert_eq!(lines.len(), 2, "{name} {arg}:\n{run}");
            let release = format!("{name} {} (commit ", env!("CARGO_PKG_VERSION"));
            let commit = lines[0].strip_prefix(&release).and_then(|rest| rest.strip_suffix(')'));
            let commit = commit.unwrap_or_else(|| panic!("{name} {arg}: first line {:?}", lines[0]));
            match &head {
                // built from this checkout: the commit is a prefix of HEAD (unless rebuilt since)
                Some(head) => assert!(head.starts_with(commit) && commit.len() >= 7, "{name}: {commit} vs HEAD {head}"),
                None => assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()), "{commit}"),
            }
            assert_eq!(lines[1], "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
        }
    }
}

/// A panic inside a verb answers with exactly one code-999 object on stdout and a non-zero exit,
/// in the build that runs: the debug build here, and the release build (`panic = "abort"`, so
/// only the panic hook stands between the panic and an abort with nothing on stdout) when
/// `scripts/test` runs this suite again against it.
#[test]
fn a_panic_answers_with_one_code_999_object() {
    for (name, plugin) in binaries() {
        for verb in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
            let env = with(env(verb), "TETHER_TEST_PANIC", "1");
            let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let out = plugin.run_env(&pairs, &conf("1.1.0").to_string());
            assert_eq!(out.code(), Some(1), "{name} {verb}: a panic exits 1, not by a signal:\n{out}");
            assert_eq!(out.run.stdout.lines().count(), 1, "{name} {verb}: one document:\n{out}");
            let doc = out.json.as_ref().unwrap_or_else(|| panic!("{name} {verb}: no JSON document:\n{out}"));
            assert_eq!(doc["code"], 999, "{name} {verb}:\n{out}");
            assert_eq!(doc["cniVersion"], "1.1.0", "{name} {verb}: in the request's version:\n{out}");
            assert_eq!(doc["msg"], "internal error", "{name} {verb}:\n{out}");
            assert!(doc["details"].as_str().unwrap_or("").contains("on purpose"), "{name} {verb}:\n{out}");
        }
    }
}
