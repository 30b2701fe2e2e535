//! One attachment being added or checked: what it is wired with ([`Attachment`]) and what this
//! ADD has created so far ([`Undo`]). Shared by the mode recipes (`ptp`, `bridge`), `container`,
//! `check` and `add`, which owns the single rollback.

use crate::config::PluginConf;
use crate::firewall::Owner;
use crate::netlink::Netlink;
use crate::netns::Netns;
use conf::Request;

/// What this ADD created (`add::rollback` reverses it in a fixed order). Shared node state (the
/// bridge, a gateway address on it, forwarding switches, the isolation element) is never recorded:
/// other ADDs may be using it from the moment it exists. (ptp's gateways on `lo` go with their
/// last user, which `gateway_user` records.)
#[derive(Debug, Default)]
pub struct Undo {
    /// The node end of the veth pair (deleting it removes the pair, its addresses and routes).
    pub host_veth: Option<String>,
    /// Masquerade elements were (perhaps partially) added.
    pub masq: bool,
    /// Spoof-check elements were (perhaps partially) added.
    pub spoofchk: bool,
    /// The node end was (perhaps) recorded as a user of the node's ptp gateways.
    pub gateway_user: bool,
}

/// The names and handles one attachment is wired with.
pub struct Attachment<'a> {
    /// The request being served.
    pub request: &'a Request,
    /// Its validated configuration.
    pub conf: &'a PluginConf,
    /// The container's namespace.
    pub netns: &'a Netns,
    /// Route netlink inside it.
    pub ctr: Netlink,
    /// The node end's deterministic name.
    pub host_veth: String,
    /// The network's isolation group, for every node-side interface it creates.
    pub group: u32,
}

impl Attachment<'_> {
    /// The network name.
    pub fn network(&self) -> &str {
        &self.request.config.name
    }

    /// `CNI_CONTAINERID`.
    pub fn container_id(&self) -> &str {
        &self.request.invocation.container_id
    }

    /// `CNI_IFNAME`.
    pub fn ifname(&self) -> &str {
        &self.request.invocation.ifname
    }

    /// The key of its per-attachment firewall state.
    pub fn owner(&self) -> Owner<'_> {
        Owner { network: self.network(), container_id: self.container_id(), ifname: self.ifname() }
    }

    /// The container namespace path, as results write it.
    pub fn sandbox(&self) -> String {
        self.netns.path().display().to_string()
    }
}
