//! The installer's settings: environment variables named `TETHER_*`, optionally on top of a settings file of
//! `KEY=VALUE` lines with the same names (`TETHER_SETTINGS_FILE`; a variable overrides the file). Every value is
//! validated before anything is written, and a bad one is an error naming the setting.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One setting the installer knows: its name, default (None: required or unset) and meaning (the README table
/// is this list).
pub struct Known {
    /// The variable name, e.g. `TETHER_MODE`.
    pub name: &'static str,
    /// The default as written in the README.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

/// Every setting, in the README's order.
pub const KNOWN: &[Known] = &[
    Known { name: "TETHER_SETTINGS_FILE", default: "none", meaning: "a file of `KEY=VALUE` lines with these names; a variable overrides the file" },
    Known { name: "TETHER_OUTPUT", default: "conflist", meaning: "`conflist`: write the network's conflist into the conf dir from `TETHER_POD_CIDRS`; `containerd-template`: write containerd's `conf_template` instead (containerd renders it with the pod CIDR the kubelet reports)" },
    Known { name: "TETHER_POD_CIDRS", default: "required for `conflist`", meaning: "this node's pod ranges, comma-separated (one IPv4 and/or one IPv6 range per family is usual)" },
    Known { name: "TETHER_MODE", default: "ptp", meaning: "`ptp` or `bridge`" },
    Known { name: "TETHER_BRIDGE", default: "tether0", meaning: "the bridge (bridge mode)" },
    Known { name: "TETHER_MTU", default: "kernel default", meaning: "MTU of the pods' interfaces (68-65535)" },
    Known { name: "TETHER_MASQUERADE", default: "true", meaning: "masquerade pod traffic that leaves the node (`ipMasq`)" },
    Known { name: "TETHER_NON_MASQUERADE_CIDRS", default: "none", meaning: "destinations never masqueraded, comma-separated (`nonMasqueradeCIDRs`): the cluster's pod ranges, so pods see each other's addresses" },
    Known { name: "TETHER_NETWORK_NAME", default: "tether", meaning: "the network's `name`" },
    Known { name: "TETHER_CNI_VERSION", default: "1.0.0", meaning: "the conflist's `cniVersion` (containerd 1.6 speaks up to 1.0.0)" },
    Known { name: "TETHER_CONFLIST_NAME", default: "tether", meaning: "the conflist's file name without priority and extension" },
    Known { name: "TETHER_CONFLIST_PRIORITY", default: "10", meaning: "two digits before the name: runtimes use the first conflist in lexical order" },
    Known { name: "TETHER_IPAM_DATA_DIR", default: "/var/lib/cni/networks", meaning: "tether-ipam's `dataDir` on the node (mount it from the host too)" },
    Known { name: "TETHER_BIN_DIR", default: "/host/opt/cni/bin", meaning: "the node's CNI bin dir, as mounted" },
    Known { name: "TETHER_CONF_DIR", default: "/host/etc/cni/net.d", meaning: "the node's CNI conf dir, as mounted" },
    Known { name: "TETHER_CONF_TEMPLATE", default: "/host/etc/cni/net.d/tether.conflist.template", meaning: "where `containerd-template` writes the template; containerd's `conf_template` names it as the node sees it (without `/host`). libcni ignores the `.template` extension in the conf dir" },
    Known { name: "TETHER_SOURCE_DIR", default: "the installer's own directory", meaning: "where the `tether` and `tether-ipam` to install are" },
    Known { name: "TETHER_CHECK_INTERVAL", default: "5", meaning: "seconds between checks that everything is still installed (0.05-60)" },
    Known { name: "TETHER_UNINSTALL", default: "false", meaning: "on SIGTERM, remove the conflist (or template) before exiting; the binaries stay for the pods still running" },
    Known { name: "TETHER_LOG", default: "info", meaning: "log filter (env_logger syntax); logs go to stderr" },
];

/// What the installer writes into the conf dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A conflist for this node's pod ranges.
    Conflist { pod_cidrs: Vec<IpNet> },
    /// containerd's `conf_template`, written to this path.
    ContainerdTemplate { path: PathBuf },
}

/// The network's attachment mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Routed veth per pod.
    Ptp,
    /// Pods on a node bridge with a gateway.
    Bridge,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// What is written besides the binaries.
    pub output: Output,
    /// Attachment mode.
    pub mode: Mode,
    /// Bridge name (bridge mode).
    pub bridge: String,
    /// MTU, if set.
    pub mtu: Option<u32>,
    /// `ipMasq`.
    pub masquerade: bool,
    /// `nonMasqueradeCIDRs`.
    pub non_masquerade: Vec<IpNet>,
    /// The network's name.
    pub network: String,
    /// `cniVersion`.
    pub cni_version: String,
    /// `<priority>-<name>.conflist`.
    pub conflist_file: String,
    /// tether-ipam's `dataDir`.
    pub ipam_data_dir: String,
    /// The CNI bin dir.
    pub bin_dir: PathBuf,
    /// The CNI conf dir.
    pub conf_dir: PathBuf,
    /// Where the binaries to install are.
    pub source_dir: PathBuf,
    /// Between checks.
    pub interval: Duration,
    /// Remove the conflist on SIGTERM.
    pub uninstall: bool,
}

/// A setting with a bad value (or a setting nobody knows): names it and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The setting.
    pub name: String,
    /// What is wrong.
    pub why: String,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "setting {}: {}", self.name, self.why)
    }
}

fn bad(name: &str, why: impl Into<String>) -> SettingError {
    SettingError { name: name.to_string(), why: why.into() }
}

/// The CNI versions a conflist may declare.
const CNI_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A network or conflist name: libcni's rule ([`conf::names::is_identifier`]), at most 64 bytes here.
fn is_name(s: &str) -> bool {
    s.len() <= 64 && conf::names::is_identifier(s)
}

/// The raw values: the file's lines, then the environment over them. Only `TETHER_*` names are read; an unknown
/// `TETHER_*` name (a typo) is an error, so a setting cannot be silently ignored.
pub fn collect(
    env: &BTreeMap<String, String>,
    read_file: impl Fn(&str) -> std::io::Result<String>,
) -> Result<BTreeMap<String, String>, SettingError> {
    let mut values = BTreeMap::new();
    if let Some(file) = env.get("TETHER_SETTINGS_FILE").filter(|f| !f.is_empty()) {
        let text = read_file(file).map_err(|e| bad("TETHER_SETTINGS_FILE", format!("cannot read {file}: {e}")))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| {
                bad("TETHER_SETTINGS_FILE", format!("{file} line {}: expected KEY=VALUE, got {line:?}", n + 1))
            })?;
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    for (k, v) in env {
        if k.starts_with("TETHER_") {
            values.insert(k.clone(), v.clone());
        }
    }
    if let Some(unknown) = values.keys().find(|k| !KNOWN.iter().any(|s| s.name == k.as_str())) {
        return Err(bad(unknown, "unknown setting (see the README's installer table)"));
    }
    Ok(values)
}

fn cidrs(name: &str, value: &str) -> Result<Vec<IpNet>, SettingError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| bad(name, format!("{s:?} is not a CIDR"))))
        .collect()
}

fn boolean(name: &str, value: &str) -> Result<bool, SettingError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(bad(name, format!("{value:?} is not true or false"))),
    }
}

fn absolute(name: &str, value: &str) -> Result<PathBuf, SettingError> {
    let path = PathBuf::from(value);
    if !path.is_absolute() {
        return Err(bad(name, format!("{value:?} is not an absolute path")));
    }
    Ok(path)
}

impl Settings {
    /// Validate `values` (from [`collect`]); `own_dir` is the default `TETHER_SOURCE_DIR`.
    pub fn parse(values: &BTreeMap<String, String>, own_dir: PathBuf) -> Result<Settings, SettingError> {
        let get = |name: &str, default: &str| values.get(name).map(|v| v.trim().to_string()).unwrap_or(default.into());
        let mode = match get("TETHER_MODE", "ptp").as_str() {
            "ptp" => Mode::Ptp,
            "bridge" => Mode::Bridge,
            other => return Err(bad("TETHER_MODE", format!("{other:?} is neither ptp nor bridge"))),
        };
        let output = match get("TETHER_OUTPUT", "conflist").as_str() {
            "conflist" => {
                let pod_cidrs = cidrs("TETHER_POD_CIDRS", &get("TETHER_POD_CIDRS", ""))?;
                if pod_cidrs.is_empty() {
                    return Err(bad(
                        "TETHER_POD_CIDRS",
                        "required with TETHER_OUTPUT=conflist: this node's pod ranges",
                    ));
                }
                for net in &pod_cidrs {
                    let host_bits = if net.addr().is_ipv4() { 32 } else { 128 } - u32::from(net.prefix_len());
                    if host_bits < 2 {
                        return Err(bad("TETHER_POD_CIDRS", format!("{net} leaves no room for pods")));
                    }
                }
                Output::Conflist { pod_cidrs }
            }
            "containerd-template" => Output::ContainerdTemplate {
                path: absolute(
                    "TETHER_CONF_TEMPLATE",
                    &get("TETHER_CONF_TEMPLATE", "/host/etc/cni/net.d/tether.conflist.template"),
                )?,
            },
            other => {
                return Err(bad("TETHER_OUTPUT", format!("{other:?} is neither conflist nor containerd-template")))
            }
        };
        let bridge = get("TETHER_BRIDGE", "tether0");
        if conf::names::ifname_problem(&bridge).is_some() {
            return Err(bad("TETHER_BRIDGE", format!("{bridge:?} is not an interface name (1-15 bytes)")));
        }
        let mtu = match get("TETHER_MTU", "").as_str() {
            "" => None,
            v => match v.parse::<u32>() {
                Ok(m) if (68..=65535).contains(&m) => Some(m),
                _ => return Err(bad("TETHER_MTU", format!("{v:?} is not an MTU in 68..65535"))),
            },
        };
        let network = get("TETHER_NETWORK_NAME", "tether");
        if !is_name(&network) {
            return Err(bad("TETHER_NETWORK_NAME", format!("{network:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")));
        }
        let cni_version = get("TETHER_CNI_VERSION", "1.0.0");
        if !CNI_VERSIONS.contains(&cni_version.as_str()) {
            return Err(bad(
                "TETHER_CNI_VERSION",
                format!("{cni_version:?} is not one of {}", CNI_VERSIONS.join(", ")),
            ));
        }
        let name = get("TETHER_CONFLIST_NAME", "tether");
        if !is_name(&name) {
            return Err(bad("TETHER_CONFLIST_NAME", format!("{name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")));
        }
        let priority = get("TETHER_CONFLIST_PRIORITY", "10");
        if priority.len() != 2 || !priority.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("TETHER_CONFLIST_PRIORITY", format!("{priority:?} is not two digits (00-99)")));
        }
        let interval = get("TETHER_CHECK_INTERVAL", "5");
        let interval = match interval.parse::<f64>() {
            Ok(s) if (0.05..=60.0).contains(&s) => Duration::from_secs_f64(s),
            _ => {
                return Err(bad(
                    "TETHER_CHECK_INTERVAL",
                    format!("{interval:?} is not a number of seconds in 0.05..60"),
                ))
            }
        };
        let source_dir = match values.get("TETHER_SOURCE_DIR") {
            Some(dir) => absolute("TETHER_SOURCE_DIR", dir)?,
            None => own_dir,
        };
        Ok(Settings {
            output,
            mode,
            bridge,
            mtu,
            masquerade: boolean("TETHER_MASQUERADE", &get("TETHER_MASQUERADE", "true"))?,
            non_masquerade: cidrs("TETHER_NON_MASQUERADE_CIDRS", &get("TETHER_NON_MASQUERADE_CIDRS", ""))?,
            network,
            cni_version,
            conflist_file: format!("{priority}-{name}.conflist"),
            ipam_data_dir: absolute("TETHER_IPAM_DATA_DIR", &get("TETHER_IPAM_DATA_DIR", "/var/lib/cni/networks"))?
                .display()
                .to_string(),
            bin_dir: absolute("TETHER_BIN_DIR", &get("TETHER_BIN_DIR", "/host/opt/cni/bin"))?,
            conf_dir: absolute("TETHER_CONF_DIR", &get("TETHER_CONF_DIR", "/host/etc/cni/net.d"))?,
            source_dir,
            interval,
            uninstall: boolean("TETHER_UNINSTALL", &get("TETHER_UNINSTALL", "false"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, SettingError> {
        let values = collect(&map(pairs), |_| Err(std::io::Error::other("no file")))?;
        Settings::parse(&values, PathBuf::from("/opt/tether"))
    }

    fn error_names(pairs: &[(&str, &str)]) -> String {
        parse(pairs).unwrap_err().name
    }

    #[test]
    fn defaults_with_pod_cidrs() {
        let s = parse(&[("TETHER_POD_CIDRS", "198.18.1.0/24, fd7e:7e7e:1::/64"), ("PATH", "/bin")]).unwrap();
        assert_eq!(
            s.output,
            Output::Conflist { pod_cidrs: vec!["198.18.1.0/24".parse().unwrap(), "fd7e:7e7e:1::/64".parse().unwrap()] }
        );
        assert_eq!((s.mode, s.mtu, s.masquerade, s.uninstall), (Mode::Ptp, None, true, false));
        assert_eq!(s.conflist_file, "10-tether.conflist");
        assert_eq!(s.network, "tether");
        assert_eq!(s.cni_version, "1.0.0");
        assert_eq!(s.bin_dir, PathBuf::from("/host/opt/cni/bin"));
        assert_eq!(s.conf_dir, PathBuf::from("/host/etc/cni/net.d"));
        assert_eq!(s.source_dir, PathBuf::from("/opt/tether"));
        assert_eq!(s.ipam_data_dir, "/var/lib/cni/networks");
        assert_eq!(s.interval, Duration::from_secs(5));
        assert!(s.non_masquerade.is_empty());
    }

    #[test]
    fn every_value_is_read() {
        let s = parse(&[
            ("TETHER_OUTPUT", "containerd-template"),
            ("TETHER_CONF_TEMPLATE", "/host/etc/containerd/tether.tmpl"),
            ("TETHER_MODE", "bridge"),
            ("TETHER_BRIDGE", "cbr0"),
            ("TETHER_MTU", "1450"),
            ("TETHER_MASQUERADE", "false"),
            ("TETHER_NON_MASQUERADE_CIDRS", "198.18.0.5/15"),
            ("TETHER_NETWORK_NAME", "k8s-pod-network"),
            ("TETHER_CNI_VERSION", "1.1.0"),
            ("TETHER_CONFLIST_NAME", "tether-k8s"),
            ("TETHER_CONFLIST_PRIORITY", "05"),
            ("TETHER_IPAM_DATA_DIR", "/var/lib/tether/ipam"),
            ("TETHER_BIN_DIR", "/b"),
            ("TETHER_CONF_DIR", "/c"),
            ("TETHER_SOURCE_DIR", "/s"),
            ("TETHER_CHECK_INTERVAL", "0.25"),
            ("TETHER_UNINSTALL", "yes"),
            ("TETHER_LOG", "debug"),
        ])
        .unwrap();
        assert_eq!(s.output, Output::ContainerdTemplate { path: "/host/etc/containerd/tether.tmpl".into() });
        assert_eq!((s.mode, s.bridge.as_str(), s.mtu, s.masquerade), (Mode::Bridge, "cbr0", Some(1450), false));
        assert_eq!(s.non_masquerade, vec!["198.18.0.0/15".parse::<IpNet>().unwrap()], "host bits cleared");
        assert_eq!((s.network.as_str(), s.cni_version.as_str()), ("k8s-pod-network", "1.1.0"));
        assert_eq!(s.conflist_file, "05-tether-k8s.conflist");
        assert_eq!(s.ipam_data_dir, "/var/lib/tether/ipam");
        assert_eq!((s.bin_dir, s.conf_dir, s.source_dir), ("/b".into(), "/c".into(), "/s".into()));
        assert_eq!(s.interval, Duration::from_millis(250));
        assert!(s.uninstall);
    }

    #[test]
    fn each_bad_value_names_its_setting() {
        let pods = ("TETHER_POD_CIDRS", "198.18.1.0/24");
        assert_eq!(error_names(&[]), "TETHER_POD_CIDRS");
        assert_eq!(error_names(&[("TETHER_POD_CIDRS", "198.18.1.0")]), "TETHER_POD_CIDRS");
        assert_eq!(error_names(&[("TETHER_POD_CIDRS", "198.18.1.1/32")]), "TETHER_POD_CIDRS");
        for (name, value) in [
            ("TETHER_MODE", "macvlan"),
            ("TETHER_OUTPUT", "cni"),
            ("TETHER_BRIDGE", "a-very-long-bridge-name"),
            ("TETHER_MTU", "9"),
            ("TETHER_MTU", "big"),
            ("TETHER_MASQUERADE", "sometimes"),
            ("TETHER_NON_MASQUERADE_CIDRS", "198.18.0.0/15,cluster"),
            ("TETHER_NETWORK_NAME", "../etc"),
            ("TETHER_CNI_VERSION", "2.0.0"),
            ("TETHER_CONFLIST_NAME", "a/b"),
            ("TETHER_CONFLIST_PRIORITY", "5"),
            ("TETHER_IPAM_DATA_DIR", "relative"),
            ("TETHER_BIN_DIR", "opt/cni/bin"),
            ("TETHER_CONF_DIR", ""),
            ("TETHER_SOURCE_DIR", "x"),
            ("TETHER_CHECK_INTERVAL", "0"),
            ("TETHER_UNINSTALL", "2"),
            ("TETHER_TYPO", "1"),
        ] {
            let e = parse(&[pods, (name, value)]).unwrap_err();
            assert_eq!(e.name, name, "{name}={value}: {e}");
            assert!(e.to_string().starts_with(&format!("setting {name}: ")), "{e}");
        }
        let e = parse(&[("TETHER_OUTPUT", "containerd-template"), ("TETHER_CONF_TEMPLATE", "t")]).unwrap_err();
        assert_eq!(e.name, "TETHER_CONF_TEMPLATE");
    }

    #[test]
    fn a_file_holds_settings_and_the_environment_overrides_it() {
        let file = "# node settings\nTETHER_POD_CIDRS = 198.18.1.0/24\n\nTETHER_MTU=1400\nTETHER_MODE=bridge\n";
        let env = map(&[("TETHER_SETTINGS_FILE", "/etc/tether/settings"), ("TETHER_MODE", "ptp")]);
        let values = collect(&env, |path| {
            assert_eq!(path, "/etc/tether/settings");
            Ok(file.to_string())
        })
        .unwrap();
        let s = Settings::parse(&values, "/x".into()).unwrap();
        assert_eq!((s.mode, s.mtu), (Mode::Ptp, Some(1400)));
        let e = collect(&env, |_| Ok("TETHER_MTU 1400\n".into())).unwrap_err();
        assert_eq!(e.name, "TETHER_SETTINGS_FILE");
        assert!(e.why.contains("line 1"), "{e}");
        let e = collect(&env, |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound))).unwrap_err();
        assert_eq!(e.name, "TETHER_SETTINGS_FILE");
        let e = collect(&env, |_| Ok("TETHER_NOPE=1".into())).unwrap_err();
        assert_eq!(e.name, "TETHER_NOPE");
    }

    #[test]
    fn the_known_list_has_each_name_once() {
        let mut names: Vec<&str> = KNOWN.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KNOWN.len());
    }
}
