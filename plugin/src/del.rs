//! DEL and GC: best-effort and idempotent. Every step runs even when an earlier one failed; what
//! is already gone counts as done; the errors are reported together at the end.
//!
//! DEL finds everything from stable keys, never from the live interface: the node end by its
//! deterministic name, masquerade and spoof-check state by (network, container ID, ifname), the
//! reservation by (container ID, ifname), the node end's use of the ptp gateways by its name. The
//! bridge, its gateway addresses and the network's isolation element are shared and stay; a ptp
//! gateway goes with its last user (`ptp::gateway`). So it completes without the netns, without `prevResult`, and after
//! an ADD that failed half-way. GC finds the network's node ends by their alias
//! ([`veth::node_end_alias`]).

use crate::config::{self, Mode};
use crate::context::Context;
use crate::error::{combine, Doing, Error, Result};
use crate::firewall::{Firewall, Owner};
use crate::ipam::Ipam;
use crate::netns::Netns;
use crate::{ptp, veth};
use conf::{Command, Request};
use std::collections::HashSet;
use std::path::Path;

/// DEL for every mode.
///
/// The links and the nftables state are removed concurrently: both deleting a veth and
/// committing an nftables deletion wait in the kernel for an RCU grace period (~10-15 ms each
/// here; `strace` shows the time in the netlink ack and in `close` of the nfnetlink socket), and
/// the two waits overlap instead of adding up. So DEL's firewall lives on a helper thread, which
/// closes its socket there (the context's firewall stays unopened); the thread is spawned by the
/// main thread while it is in the node's namespace, so it acts on the node. The reservation is
/// released last, and only once the pair is gone: until the node end and its `/32` route are
/// gone, handing the address to another container would make that container's ADD collide with
/// the old route, so a DEL whose link removal failed keeps it for the retry to release.
pub fn del(request: &Request) -> Result<()> {
    let inv = &request.invocation;
    let owner = Owner { network: &request.config.name, container_id: &inv.container_id, ifname: &inv.ifname };
    let spoof_check = config::mode_of(&request.config) == Mode::Bridge;
    let (links, mut errors) = std::thread::scope(|scope| {
        let firewall = scope.spawn(|| Firewall::on_node().remove(owner, true, spoof_check));
        // The context inside the links' step: if it cannot be built, the other steps still run.
        // A gateway record that cannot be changed is reported but keeps no reservation: the
        // node end is gone.
        let links = Context::on_node().and_then(|ctx| {
            ctx.block_on(async {
                remove_links(&ctx, request).await?;
                Ok(release_gateways(&ctx, request).await)
            })
        });
        let errors = firewall.join().unwrap_or_else(|_| vec![Error::Internal("DEL helper thread died".into())]);
        (links, errors)
    });
    match links {
        Ok(released) => {
            errors.extend(released.err());
            if let Err(e) = Ipam::of(request).run(request, Command::Del) {
                errors.push(e.into());
            }
        }
        Err(e) => errors.insert(0, e.context("the address stays reserved until the interface is gone")),
    }
    combine(errors)
}

/// ptp: the node end is gone, so it uses no gateway any more.
async fn release_gateways(ctx: &Context, request: &Request) -> Result<()> {
    if config::mode_of(&request.config) != Mode::Ptp {
        return Ok(());
    }
    let inv = &request.invocation;
    let host_veth = veth::host_veth_name(&request.config.name, &inv.container_id, &inv.ifname);
    ptp::gateway::release(&ctx.node, &ctx.gateway_users, &host_veth).await
}

/// Delete the pair from the node side; if the node end is unknown (an attachment another
/// plugin made, e.g. the reference `ptp` before the node switched `type`), remove the container
/// end instead (see [`remove_foreign_pair`]).
async fn remove_links(ctx: &Context, request: &Request) -> Result<()> {
    let inv = &request.invocation;
    let host_veth = veth::host_veth_name(&request.config.name, &inv.container_id, &inv.ifname);
    match ctx.node.delete_link(&host_veth).await {
        Ok(()) => return Ok(()),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(Error::kernel(format!("delete {host_veth}"), e)),
    }
    let Some(path) = inv.netns.as_deref() else { return Ok(()) };
    // A namespace that is gone, or a path that is no namespace any more: nothing left inside.
    let Ok(netns) = Netns::open(Path::new(path)) else { return Ok(()) };
    remove_foreign_pair(ctx, &netns, &inv.ifname).await
}

/// Delete `ifname` in `netns` if it can be the container end of a pair to this node: a veth
/// whose peer lives in the node's namespace (this thread's). Nothing else of that name is
/// touched: a dummy, a veth to another namespace, or the `eth0` that made an ADD fail. Never in
/// the node's own namespace, which ADD refuses too.
async fn remove_foreign_pair(ctx: &Context, netns: &Netns, ifname: &str) -> Result<()> {
    let node = Netns::current()?;
    if netns.same_as(&node)? {
        log::warn!("CNI_NETNS {} is the plugin's own namespace: {ifname} there is left alone", netns.path().display());
        return Ok(());
    }
    let ctr = ctx.connect_in(netns)?;
    let link = match ctr.link_by_name(ifname).await {
        Ok(Some(link)) if link.kind.as_deref() == Some("veth") => link,
        Ok(_) => return Ok(()),
        Err(e) => return Err(Error::kernel(format!("read {ifname} in the container"), e)),
    };
    let node_id = ctr.nsid_of(node.raw_fd()).await.doing("read the node's namespace id from the container")?;
    if link.peer_netnsid.is_none() || link.peer_netnsid != node_id {
        log::info!("{ifname} in the container is a veth to another namespace: left alone");
        return Ok(());
    }
    match ctr.delete_link(ifname).await {
        Err(e) if !e.is_not_found() => Err(Error::kernel(format!("delete {ifname} in the container"), e)),
        _ => Ok(()),
    }
}

/// GC: remove every node end, reservation, masquerade and spoof-check state of the network that
/// belongs to no attachment listed as valid. All run; errors are reported together. As in DEL,
/// reservations are released only when every stale node end is gone.
pub fn gc(request: &Request) -> Result<()> {
    let network = &request.config.name;
    let spoof_check = config::mode_of(&request.config) == Mode::Bridge;
    let mut errors = Firewall::on_node().gc(network, &request.config.valid_attachments, spoof_check);
    let ptp = config::mode_of(&request.config) == Mode::Ptp;
    let links = Context::on_node().and_then(|ctx| {
        ctx.block_on(async {
            remove_stale_links(&ctx, request).await?;
            // After the stale node ends, whose use of the gateways goes with them.
            Ok(if ptp { ptp::gateway::sweep(&ctx.node, &ctx.gateway_users).await } else { Ok(()) })
        })
    });
    match links {
        Ok(swept) => {
            errors.extend(swept.err());
            if let Err(e) = Ipam::of(request).run(request, Command::Gc) {
                errors.push(e.into());
            }
        }
        Err(e) => errors.insert(0, e.context("reservations are kept until the interfaces are gone")),
    }
    combine(errors)
}

/// Delete the network's node ends (veths marked with its alias) whose name is none of the valid
/// attachments' deterministic names.
async fn remove_stale_links(ctx: &Context, request: &Request) -> Result<()> {
    let network = &request.config.name;
    let alias = veth::node_end_alias(network);
    let valid: HashSet<String> = request
        .config
        .valid_attachments
        .iter()
        .map(|a| veth::host_veth_name(network, &a.container_id, &a.ifname))
        .collect();
    let links = ctx.node.all_links().await.doing("list the node's links")?;
    let stale = links.into_iter().filter(|l| {
        l.kind.as_deref() == Some("veth") && l.alias.as_deref() == Some(alias.as_str()) && !valid.contains(&l.name)
    });
    let mut failed = Vec::new();
    for link in stale {
        log::info!("GC of network {network:?}: deleting stale node end {}", link.name);
        match ctx.node.delete_link(&link.name).await {
            Err(e) if !e.is_not_found() => failed.push(Error::kernel(format!("delete {}", link.name), e)),
            _ => {}
        }
    }
    combine(failed)
}
