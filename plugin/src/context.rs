//! One invocation's working set, built once by the verb (`add`, `del`, `check`, `gc`) and
//! handed to everything it calls: the async runtime, the node's route-netlink connection
//! (`connect_in` opens the container's, when the verb has a namespace), and the firewall (one
//! nftables connection, for ADD and CHECK: DEL and GC run theirs apart from the context, so that
//! a context that cannot be built stops none of their other steps).
//!
//! The runtime is current-thread only, so every task runs on the main thread and a namespace
//! switch (which is per thread) can never leak into another task. Every socket is opened in the
//! namespace it serves, on the main thread, switched for the synchronous `connect` only (see
//! `netns.rs`); nothing awaits while switched.

use crate::error::{Doing, Error, Result};
use crate::firewall::Firewall;
use crate::netlink::Netlink;
use crate::netns::Netns;
use std::future::Future;
use std::path::PathBuf;
use tokio::runtime::Runtime;

/// The runtime and the node's connections of one invocation.
pub struct Context {
    runtime: Runtime,
    /// Route netlink on the node (the plugin's own namespace).
    pub node: Netlink,
    /// nftables on the node; its socket opens on first use.
    pub firewall: Firewall,
    /// Where the node's record of ptp gateway users lives (`ptp::gateway`; tests use their own).
    pub gateway_users: PathBuf,
}

impl Context {
    /// Start the runtime and connect on the node (the calling thread's namespace).
    ///
    /// # Errors
    /// Code 999 when tokio cannot start (no file descriptors, ...); 100 when the socket cannot be opened.
    pub fn on_node() -> Result<Context> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("start the async runtime: {e}")))?;
        // Inside `block_on`, so spawning the connection's task wakes no driver (an eventfd write
        // per connection when spawned from outside).
        let node = runtime.block_on(async { Netlink::connect().doing("connect to route netlink on the node") })?;
        Ok(Context {
            runtime,
            node,
            firewall: Firewall::on_node(),
            gateway_users: PathBuf::from(crate::ptp::gateway::ROOT),
        })
    }

    /// A route-netlink connection inside `netns`.
    ///
    /// # Errors
    /// Code 101 when the namespace cannot be entered; 100 when the socket cannot be opened.
    pub fn connect_in(&self, netns: &Netns) -> Result<Netlink> {
        // Not through `block_on`: this is also called from inside it (DEL's fallback).
        let _in_runtime = self.runtime.enter();
        let _inside = netns.enter()?;
        Netlink::connect().doing(format!("connect to route netlink in {}", netns.path().display()))
    }

    /// Run `work` to completion on the invocation's runtime.
    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }
}
