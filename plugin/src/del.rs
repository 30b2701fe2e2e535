//! DEL and GC: best-effort and idempotent. Every step runs even when an earlier one failed; what
//! is already gone counts as done; the errors are reported together at the end.
//!
//! DEL finds everything from stable keys, never from the live interface: the node end by its
//! deterministic name, masquerade and spoof-check state by (network, container ID, ifname), the
//! reservation by (container ID, ifname). The bridge, its gateway addresses and the network's
//! isolation element are shared and stay. So it completes without the netns, without `prevResult`, and after
//! an ADD that failed half-way. GC finds the network's node ends by their alias
//! ([`veth::node_end_alias`]).

use crate::config::{self, Mode};
use crate::ipam::Ipam;
use crate::netlink::Netlink;
use crate::netlink::NlContext;
use crate::netns::Netns;
use crate::{isolate, masq, runtime, spoofchk, veth};
use conf::{CniError, CniResult, Command, ErrorCode, Request};
use std::collections::HashSet;
use std::path::Path;

/// DEL for every mode.
///
/// The links and the nftables state are removed concurrently: both deleting a veth and
/// committing an nftables deletion wait in the kernel for an RCU grace period (~10-15 ms each
/// here; `strace` shows the time in the netlink ack and in `close` of the nfnetlink socket), and
/// the two waits overlap instead of adding up. The helper thread is spawned by the main thread
/// while it is in the node's namespace, so it acts on the node. The reservation is released
/// last, and only once the pair is gone: until the node end and its `/32` route are gone,
/// handing the address to another container would make that container's ADD collide with the
/// old route, so a DEL whose link removal failed keeps it for the retry to release.
pub fn del(request: &Request) -> CniResult<()> {
    let (links, mut errors) = std::thread::scope(|scope| {
        let nft_state = scope.spawn(|| remove_nft_state(request));
        let links = remove_links(request);
        let errors =
            nft_state.join().unwrap_or_else(|_| vec![CniError::new(ErrorCode::Internal, "DEL helper thread died")]);
        (links, errors)
    });
    match links {
        Ok(()) => {
            if let Err(e) = Ipam::of(request).run(request, Command::Del) {
                errors.push(e);
            }
        }
        Err(e) => errors.insert(0, e.context("the address stays reserved until the interface is gone")),
    }
    runtime::combine(errors)
}

/// Masquerade and spoof-check state, by key; every step runs.
fn remove_nft_state(request: &Request) -> Vec<CniError> {
    let inv = &request.invocation;
    let mut errors = Vec::new();
    if let Err(e) = masq::del(&request.config.name, &inv.container_id, &inv.ifname) {
        errors.push(e.context("remove masquerade state"));
    }
    if config::mode_of(&request.config) == Mode::Bridge {
        if let Err(e) = spoofchk::del(&request.config.name, &inv.container_id, &inv.ifname) {
            errors.push(e.context("remove spoof-check state"));
        }
    }
    errors
}

/// Delete the pair from the node side; if the node end is unknown (an attachment another
/// plugin made, e.g. the reference `ptp` before the node switched `type`), remove the container
/// end instead (see [`remove_foreign_pair`]).
fn remove_links(request: &Request) -> CniResult<()> {
    let inv = &request.invocation;
    let host_veth = veth::host_veth_name(&request.config.name, &inv.container_id, &inv.ifname);
    runtime::build()?.block_on(async {
        let host = Netlink::connect()?;
        match host.delete_link(&host_veth).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into_cni(format!("delete {host_veth}"))),
        }
        let Some(path) = inv.netns.as_deref() else { return Ok(()) };
        // A namespace that is gone, or a path that is no namespace any more: nothing left inside.
        let Ok(netns) = Netns::open(Path::new(path)) else { return Ok(()) };
        remove_foreign_pair(&netns, &inv.ifname).await
    })
}

/// Delete `ifname` in `netns` if it can be the container end of a pair to this node: a veth
/// whose peer lives in the node's namespace (this thread's). Nothing else of that name is
/// touched: a dummy, a veth to another namespace, or the `eth0` that made an ADD fail. Never in
/// the node's own namespace, which ADD refuses too.
async fn remove_foreign_pair(netns: &Netns, ifname: &str) -> CniResult<()> {
    let node = Netns::current()?;
    if netns.same_as(&node)? {
        log::warn!("CNI_NETNS {} is the plugin's own namespace: {ifname} there is left alone", netns.path().display());
        return Ok(());
    }
    let ctr = {
        let _inside = netns.enter()?;
        Netlink::connect()?
    };
    let link = match ctr.link_by_name(ifname).await {
        Ok(Some(link)) if link.kind.as_deref() == Some("veth") => link,
        Ok(_) => return Ok(()),
        Err(e) => return Err(e.into_cni(format!("read {ifname} in the container"))),
    };
    let node_id = ctr.nsid_of(node.raw_fd()).await.or_cni("read the node's namespace id from the container")?;
    if link.peer_netnsid.is_none() || link.peer_netnsid != node_id {
        log::info!("{ifname} in the container is a veth to another namespace: left alone");
        return Ok(());
    }
    match ctr.delete_link(ifname).await {
        Err(e) if !e.is_not_found() => Err(e.into_cni(format!("delete {ifname} in the container"))),
        _ => Ok(()),
    }
}

/// GC: remove every node end, reservation, masquerade and spoof-check state of the network that
/// belongs to no attachment listed as valid. All run; errors are reported together. As in DEL,
/// reservations are released only when every stale node end is gone.
pub fn gc(request: &Request) -> CniResult<()> {
    let mut errors: Vec<CniError> = Vec::new();
    if let Err(e) = masq::gc(&request.config.name, &request.config.valid_attachments) {
        errors.push(e.context("garbage-collect masquerade state"));
    }
    if config::mode_of(&request.config) == Mode::Bridge {
        if let Err(e) = spoofchk::gc(&request.config.name, &request.config.valid_attachments) {
            errors.push(e.context("garbage-collect spoof-check state"));
        }
    }
    if let Err(e) = isolate::gc(&request.config.name, &request.config.valid_attachments) {
        errors.push(e.context("garbage-collect isolation state"));
    }
    match remove_stale_links(request) {
        Ok(()) => {
            if let Err(e) = Ipam::of(request).run(request, Command::Gc) {
                errors.push(e);
            }
        }
        Err(e) => errors.insert(0, e.context("reservations are kept until the interfaces are gone")),
    }
    runtime::combine(errors)
}

/// Delete the network's node ends (veths marked with its alias) whose name is none of the valid
/// attachments' deterministic names.
fn remove_stale_links(request: &Request) -> CniResult<()> {
    let network = &request.config.name;
    let alias = veth::node_end_alias(network);
    let valid: HashSet<String> = request
        .config
        .valid_attachments
        .iter()
        .map(|a| veth::host_veth_name(network, &a.container_id, &a.ifname))
        .collect();
    runtime::build()?.block_on(async {
        let host = Netlink::connect()?;
        let links = host.all_links().await.or_cni("list the node's links")?;
        let stale = links.into_iter().filter(|l| {
            l.kind.as_deref() == Some("veth") && l.alias.as_deref() == Some(alias.as_str()) && !valid.contains(&l.name)
        });
        let mut failed = Vec::new();
        for link in stale {
            log::info!("GC of network {network:?}: deleting stale node end {}", link.name);
            match host.delete_link(&link.name).await {
                Err(e) if !e.is_not_found() => failed.push(e.into_cni(format!("delete {}", link.name))),
                _ => {}
            }
        }
        runtime::combine(failed)
    })
}
