//! `tether`: a veth pair per container, routed (`ptp`) or bridged. The binary (`main.rs`) hands
//! [`Tether`] to `conf::skel`, which owns the protocol (environment, stdin, versions, stdout);
//! each verb is a module here.

mod add;
mod attach;
mod bridge;
mod check;
mod config;
mod container;
mod context;
mod del;
mod error;
mod firewall;
mod ipam;
mod kernel;
mod mac;
mod netlink;
mod netns;
mod ptp;
mod sysctl;
#[cfg(test)]
mod testns;
mod veth;

use conf::{CniResult, NetResult, Plugin, Request};

/// The plugin: stateless; every invocation reads what it needs from the request.
pub struct Tether;

impl Plugin for Tether {
    fn add(&self, request: &Request) -> CniResult<NetResult> {
        Ok(add::add(request)?)
    }

    fn del(&self, request: &Request) -> CniResult<()> {
        Ok(del::del(request)?)
    }

    fn check(&self, request: &Request) -> CniResult<()> {
        Ok(check::check(request)?)
    }

    fn status(&self, request: &Request) -> CniResult<()> {
        ipam::Ipam::of(request).run(request, conf::Command::Status)
    }

    fn gc(&self, request: &Request) -> CniResult<()> {
        Ok(del::gc(request)?)
    }
}

/// Entry points for the fuzz targets (`fuzz/`): the decoding a verb does before it touches the
/// kernel. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use conf::{CniResult, Request};

    /// Decode tether's own configuration (both modes' keys, the MAC from every source) as ADD and
    /// CHECK do, and the mode as DEL and GC read it.
    ///
    /// # Errors
    /// As ADD's decoding.
    pub fn decode_config(request: &Request) -> CniResult<()> {
        let _ = crate::config::mode_of(&request.config);
        Ok(crate::config::PluginConf::from_request(request).map(|_| ())?)
    }
}
