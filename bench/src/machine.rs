//! The machine and software the numbers come from.

use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub date: String,
    pub reference: String,
    pub iptables: String,
    /// 1/5/15-minute load averages when the run started.
    pub load: String,
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The 1/5/15-minute load averages (other work on the machine inflates absolute times).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl Machine {
    pub fn probe() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .unwrap_or_else(|| "unknown CPU".into());
        Machine {
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            cpu,
            kernel: output("uname", &["-srvm"]).unwrap_or_else(|| "unknown kernel".into()),
            date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown date".into()),
            reference: output("dpkg-query", &["-W", "-f=${Version}", "containernetworking-plugins"])
                .map(|v| format!("containernetworking-plugins {v} (Debian)"))
                .unwrap_or_else(|| "containernetworking-plugins (version unknown)".into()),
            iptables: output("iptables", &["--version"]).unwrap_or_else(|| "iptables: not found".into()),
            load: load_average(),
        }
    }
}
