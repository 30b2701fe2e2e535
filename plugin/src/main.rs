//! `tether`: a veth pair per container, routed (`ptp`) or bridged.
//!
//! Each verb is a module; `conf::skel` owns the protocol (environment, stdin, versions, stdout).

mod add;
mod attach;
mod bridge;
mod check;
mod config;
mod del;
mod ipam;
mod isolate;
mod mac;
mod masq;
mod netlink;
mod netns;
mod nftables;
mod ptp;
mod runtime;
mod spoofchk;
mod sysctl;
#[cfg(test)]
mod testns;
mod veth;

use conf::{CniResult, NetResult, Plugin, Request};

/// The plugin: stateless; every invocation reads what it needs from the request.
struct Tether;

impl Plugin for Tether {
    fn add(&self, request: &Request) -> CniResult<NetResult> {
        add::add(request)
    }

    fn del(&self, request: &Request) -> CniResult<()> {
        del::del(request)
    }

    fn check(&self, request: &Request) -> CniResult<()> {
        check::check(request)
    }

    fn status(&self, request: &Request) -> CniResult<()> {
        ipam::Ipam::of(request).run(request, conf::Command::Status)
    }

    fn gc(&self, request: &Request) -> CniResult<()> {
        del::gc(request)
    }
}

fn main() -> std::process::ExitCode {
    conf::skel::run(&Tether, "tether", "CNI plugin, a veth pair per container (modes ptp, bridge)")
}
