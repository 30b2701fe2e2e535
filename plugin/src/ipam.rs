//! The IPAM client: `tether-ipam` runs in-process (same code, store and locking as the binary,
//! minus a process start); any other type is delegated over `CNI_PATH`; no type (bridge mode's
//! pure layer 2) is no IPAM at all.

use conf::{delegate, CniResult, Command, NetResult, Plugin, Request};

/// Which IPAM serves a request.
pub enum Ipam<'a> {
    /// `tether_ipam::HostLocal`, called directly.
    InProcess,
    /// Another plugin binary, by type.
    Delegated(&'a str),
    /// No IPAM (`ipam` without `type`): no addresses, every verb succeeds.
    None,
}

/// The IPAM type that runs in-process.
const IN_PROCESS_TYPE: &str = "tether-ipam";

impl<'a> Ipam<'a> {
    /// The IPAM configured for `request` (its `ipam.type` was validated by the plugin config).
    pub fn of(request: &'a Request) -> Ipam<'a> {
        match request.config.ipam_type.as_deref() {
            Some(IN_PROCESS_TYPE) => Ipam::InProcess,
            Some(other) => Ipam::Delegated(other),
            None => Ipam::None,
        }
    }

    /// Allocate.
    pub fn add(&self, request: &Request) -> CniResult<NetResult> {
        match self {
            Ipam::InProcess => tether_ipam::HostLocal.add(request),
            Ipam::Delegated(t) => delegate::add(request, t),
            Ipam::None => Ok(NetResult::default()),
        }
    }

    /// Run a verb that answers nothing on success.
    pub fn run(&self, request: &Request, command: Command) -> CniResult<()> {
        match self {
            Ipam::InProcess => {
                let ipam = tether_ipam::HostLocal;
                match command {
                    Command::Del => ipam.del(request),
                    Command::Check => ipam.check(request),
                    Command::Status => ipam.status(request),
                    Command::Gc => ipam.gc(request),
                    Command::Add | Command::Version => Ok(()),
                }
            }
            Ipam::Delegated(t) => delegate::run(request, t, command),
            Ipam::None => Ok(()),
        }
    }
}
