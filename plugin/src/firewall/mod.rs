//! The node's packet filtering for tether's networks, through the `nft` crate: what the mode
//! recipes, CHECK, DEL and GC call, and the only place the plugin talks to nftables.
//!
//! * masquerade (`ipMasq`, [`masq`]): the attachment's addresses, except to the network's
//!   `nonMasqueradeCIDRs`;
//! * spoof check (bridge `macspoofchk`, [`spoofchk`]): only the container's MAC enters the bridge
//!   through its port;
//! * isolation (`isolate`, [`isolate`]): nothing forwarded between two isolated networks.
//!
//! Per-attachment state is keyed by its [`Owner`] (network, container ID, ifname), so DEL and GC
//! find it without the interfaces or the addresses. One nftables socket per firewall (an
//! `nft::Session`), opened on first use in the namespace of the thread that uses it: the node's,
//! as the firewall is used from the main thread, or from a thread the main thread started while
//! on the node. Dropping the firewall closes the socket, which waits for the RCU grace period of
//! any deletion it committed (see `del.rs`).

mod isolate;
mod masq;
mod spoofchk;

use crate::error::{Error, Result};
use std::cell::RefCell;

/// The attachment that per-attachment state belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The network name.
    pub network: &'a str,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
}

/// The firewall of the node.
pub struct Firewall {
    session: RefCell<Option<nft::Session>>,
}

impl Firewall {
    /// The node's firewall (the calling thread's namespace); nothing is opened until it is used,
    /// so a network without masquerade, spoof check or isolation opens no nftables socket.
    pub fn on_node() -> Firewall {
        Firewall { session: RefCell::new(None) }
    }

    /// Run `op` on the session, opening it first if needed.
    fn with<T>(&self, op: impl FnOnce(&mut nft::Session) -> std::result::Result<T, nft::NftError>) -> Result<T> {
        let mut session = self.session.borrow_mut();
        let session = match &mut *session {
            Some(open) => open,
            empty => empty.insert(nft::Session::open()?),
        };
        Ok(op(session)?)
    }

    /// Remove the attachment's masquerade and (with `spoof_check`) spoof-check state; nothing
    /// there is success. Both run; what failed is returned.
    pub fn remove(&self, owner: Owner<'_>, masquerade: bool, spoof_check: bool) -> Vec<Error> {
        let mut errors = Vec::new();
        if masquerade {
            if let Err(e) = self.unmasquerade(owner) {
                errors.push(e.context("remove masquerade state"));
            }
        }
        if spoof_check {
            if let Err(e) = self.unguard_port(owner) {
                errors.push(e.context("remove spoof-check state"));
            }
        }
        errors
    }

    /// GC: remove the state of every attachment of `network` that is not in `valid`, and the
    /// network's isolation element when no attachment is left. All run; what failed is returned.
    pub fn gc(&self, network: &str, valid: &[conf::Attachment], spoof_check: bool) -> Vec<Error> {
        let valid_keys: Vec<(String, String)> =
            valid.iter().map(|a| (a.container_id.clone(), a.ifname.clone())).collect();
        let mut errors = Vec::new();
        if let Err(e) = self.gc_masquerade(network, &valid_keys) {
            errors.push(e.context("garbage-collect masquerade state"));
        }
        if spoof_check {
            if let Err(e) = self.gc_port_guards(network, &valid_keys) {
                errors.push(e.context("garbage-collect spoof-check state"));
            }
        }
        if valid.is_empty() {
            if let Err(e) = self.forget_isolation(network) {
                errors.push(e.context("garbage-collect isolation state"));
            }
        }
        errors
    }
}
