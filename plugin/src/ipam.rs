//! The IPAM client: `tether-ipam` runs in-process (same code, store and locking as the binary,
//! minus a process start); any other type is delegated over `CNI_PATH`.

use conf::{delegate, CniResult, Command, NetResult, Plugin, Request};

/// Which IPAM serves a request.
pub enum Ipam<'a> {
    /// `tether_ipam::HostLocal`, called directly.
    InProcess,
    /// Another plugin binary, by type.
    Delegated(&'a str),
}

/// The IPAM type that runs in-process.
const IN_PROCESS_TYPE: &str = "tether-ipam";

impl<'a> Ipam<'a> {
    /// The IPAM configured for `request` (its `ipam.type` was validated by the plugin config).
    pub fn of(request: &'a Request) -> Ipam<'a> {
        match request.config.ipam_type.as_deref() {
            Some(IN_PROCESS_TYPE) | None => Ipam::InProcess,
            Some(other) => Ipam::Delegated(other),
        }
    }

    /// Allocate.
    pub fn add(&self, request: &Request) -> CniResult<NetResult> {
        match self {
            Ipam::InProcess => tether_ipam::HostLocal.add(request),
            Ipam::Delegated(t) => delegate::add(request, t),
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
        }
    }
}
