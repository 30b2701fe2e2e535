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
    /// The IPAM configured for `request` (`ipam.type` is a plugin name: `conf` validates it).
    pub fn of(request: &'a Request) -> Ipam<'a> {
        match request.config.ipam_type.as_deref() {
            Some(IN_PROCESS_TYPE) => Ipam::InProcess,
            Some(other) => Ipam::Delegated(other),
            None => Ipam::None,
        }
    }

    /// Allocate. The flag says whether a failed ADD may release the allocation through IPAM DEL:
    /// not when tether-ipam returned addresses the attachment already held (a repeated ADD),
    /// which belong to the live attachment. A delegated IPAM decides for itself (host-local
    /// refuses a second allocation for an attachment), so its allocation is always this ADD's.
    ///
    /// The result comes in the request's version (`NetResult::in_version`): what the version
    /// cannot report (a route's `table`, say) is not applied, in-process as through the binary.
    pub fn add(&self, request: &Request) -> CniResult<(NetResult, bool)> {
        let (result, release_on_failure) = match self {
            Ipam::InProcess => tether_ipam::HostLocal.allocate(request).map(|a| (a.result, a.all_new))?,
            Ipam::Delegated(t) => (delegate::add(request, t)?, true),
            Ipam::None => (NetResult::default(), true),
        };
        Ok((result.in_version(request.version()), release_on_failure))
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
