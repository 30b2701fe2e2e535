//! `tether-install`: puts tether on a Kubernetes node and keeps it there, as a DaemonSet's container.
//!
//! It installs `tether` and `tether-ipam` into the node's CNI bin dir and the network's conflist (or containerd's
//! `conf_template`) into place, each atomically; then it checks every `TETHER_CHECK_INTERVAL` seconds and
//! re-installs what a node operator or an upgrade removed or changed, until SIGTERM or SIGINT, which end it at
//! once (removing the conflist first only with `TETHER_UNINSTALL=true`). `--once` installs and exits (an init
//! container). Settings: see `settings.rs` and the README; a bad one is exit 2 with nothing written.
//!
//! Why polling and not inotify: the directories are host paths that a node operator may delete and recreate
//! (a watch on the old inode then sees nothing), and content edits, renames and removals would each need their
//! own events; comparing three files every few seconds costs microseconds and has no such gaps.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use tether_install::install::{self, Plan};
use tether_install::settings::{self, Settings};

const USAGE: &str = "usage: tether-install [--once]\n\
    Installs tether and tether-ipam into $TETHER_BIN_DIR and the network's conflist into $TETHER_CONF_DIR\n\
    (or containerd's conf_template), then keeps them installed until SIGTERM. Settings are TETHER_*\n\
    environment variables (see the README); --once installs and exits.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => false,
        ["--once"] => true,
        ["--help"] => {
            eprintln!("{USAGE}\n\nsettings:");
            for k in settings::KNOWN {
                eprintln!("  {:<28} default {}: {}", k.name, k.default, k.meaning);
            }
            return ExitCode::SUCCESS;
        }
        ["--version"] => {
            eprintln!("tether-install {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::new()
        .parse_filters(&std::env::var("TETHER_LOG").unwrap_or_else(|_| "info".into()))
        .target(env_logger::Target::Stderr)
        .init();

    let env = std::env::vars().collect();
    let own_dir = std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)).unwrap_or_default();
    let settings = match settings::collect(&env, |f| std::fs::read_to_string(f))
        .and_then(|values| Settings::parse(&values, own_dir))
    {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}; nothing was written");
            return ExitCode::from(2);
        }
    };
    let plan = match Plan::new(&settings) {
        Ok(p) => p,
        Err(e) => {
            log::error!("{e}; nothing was written");
            return ExitCode::FAILURE;
        }
    };
    // Blocked before anything else, so a SIGTERM during the first install is read below, not lost.
    let signals = match watch_signals() {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("cannot watch for SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let swept = plan.sweep();
    if swept > 0 {
        log::info!("removed {swept} temporary file(s) a previous run left");
    }
    if let Err(e) = install(&plan) {
        log::error!("{e}");
        return ExitCode::FAILURE;
    }
    for other in plan.shadowing_configs() {
        log::warn!("{other} sorts before {}: a runtime would use it instead", plan.config_path().display());
    }
    if once {
        return ExitCode::SUCCESS;
    }
    loop {
        match wait_for_signal(&signals, settings.interval) {
            Ok(None) => {}
            Ok(Some(signal)) => {
                log::info!("{signal}: exiting");
                if settings.uninstall {
                    if let Err(e) = plan.remove_config() {
                        log::error!("{e}");
                        return ExitCode::FAILURE;
                    }
                    log::info!("removed {}", plan.config_path().display());
                }
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                log::error!("waiting for signals: {e}");
                return ExitCode::FAILURE;
            }
        }
        // A failure here (a full disk, a directory being replaced) is retried at the next check.
        if let Err(e) = install(&plan) {
            log::error!("{e}; retrying in {:?}", settings.interval);
        }
    }
}

fn install(plan: &Plan) -> Result<(), install::InstallError> {
    for path in plan.reconcile()? {
        log::info!("installed {}", path.display());
    }
    Ok(())
}

fn watch_signals() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// Sleep up to `timeout`; the signal if one arrived.
fn wait_for_signal(fd: &SignalFd, timeout: std::time::Duration) -> nix::Result<Option<Signal>> {
    // At most 60 s (Settings::parse), well within u16 milliseconds.
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(e),
    }
    Ok(fd.read_signal()?.and_then(|info| Signal::try_from(info.ssi_signo as i32).ok()))
}
