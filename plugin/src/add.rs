//! ADD: validate, allocate, wire, report; on any failure undo exactly what this ADD created (the
//! IPAM reservation included, unless the attachment already held it: a repeated ADD).
//!
//! The mode recipes (`ptp::wire`, `bridge::wire`) record everything with a side effect in
//! [`Undo`] the moment it succeeds, and one place ([`rollback`]) reverses it. A pre-existing
//! interface of the requested name makes the veth creation fail before anything of ours exists,
//! so it is never touched. Shared node state (bridge, gateway addresses, isolation element) is
//! never undone: concurrent ADDs rely on it as soon as it exists (a ptp gateway goes with its last
//! user, `ptp::gateway::release`).

use crate::attach::{Attachment, Undo};
use crate::config::{Mode, PluginConf};
use crate::context::Context;
use crate::error::{with_cleanup, Error, Result};
use crate::ipam::Ipam;
use crate::netns::{self, Netns};
use crate::{bridge, ptp, veth};
use conf::{Command, NetResult, Request};

/// ADD for every mode.
pub fn add(request: &Request) -> Result<NetResult> {
    let conf = PluginConf::from_request(request)?;
    let netns = Netns::of(request)?;
    netns::refuse_own(&netns)?;
    let ctx = Context::on_node()?;
    let ctr = ctx.connect_in(&netns)?;
    let network = request.config.name.as_str();
    // Before any interface of the network exists, so none is ever forwarded to another network
    // (and a group another isolated network holds fails the ADD before anything is made).
    ctx.firewall.ensure_isolation(network, conf.isolate)?;
    let group = ctx.firewall.isolation_group(network, conf.isolate)?;
    let ipam = Ipam::of(request);
    let (allocated, release_on_failure) = ipam.add(request)?;
    // Before anything exists: an answer that cannot be written would leave the attachment behind.
    if let Err(e) = allocated.encodable_in(request.version()) {
        if release_on_failure {
            if let Err(cleanup) = ipam.run(request, Command::Del) {
                return Err(with_cleanup(e.into(), vec![Error::from(cleanup).context("release the IPAM reservation")]));
            }
        }
        return Err(e.into());
    }
    let att = Attachment {
        request,
        conf: &conf,
        netns: &netns,
        ctr,
        host_veth: veth::host_veth_name(network, &request.invocation.container_id, &request.invocation.ifname),
        group,
    };
    let mut undo = Undo::default();
    let wired = ctx.block_on(async {
        let result = match conf.mode {
            Mode::Ptp => ptp::wire(&ctx, &att, &allocated, &mut undo).await,
            Mode::Bridge => bridge::wire(&ctx, &att, &allocated, &mut undo).await,
        }?;
        // Once more after the masquerade state exists: a concurrent last DEL of the network drops
        // its tables and its isolation element together (see nft's `masq_del`); the element read
        // above may have gone with them, and without it the network's own traffic is dropped.
        ctx.firewall.ensure_isolation(network, conf.isolate)?;
        Ok::<NetResult, Error>(result)
    });
    match wired {
        Ok(result) => Ok(result),
        Err(err) => {
            let mut cleanup = ctx.block_on(rollback(&ctx, &att, undo));
            if !release_on_failure {
                log::info!("the attachment held its addresses before this ADD: they stay reserved");
            } else if let Err(e) = ipam.run(request, Command::Del) {
                cleanup.push(Error::from(e).context("release the IPAM reservation"));
            }
            Err(with_cleanup(err, cleanup))
        }
    }
}

/// Reverse what `undo` records; return what could not be undone.
async fn rollback(ctx: &Context, att: &Attachment<'_>, undo: Undo) -> Vec<Error> {
    let mut errors = ctx.firewall.remove(att.owner(), undo.masq, undo.spoofchk);
    if let Some(name) = undo.host_veth {
        match ctx.node.delete_link(&name).await {
            Err(cause) if !cause.is_not_found() => errors.push(Error::kernel(format!("delete {name}"), cause)),
            // Only once the node end is gone: a user is recorded for as long as its link exists.
            _ if undo.gateway_user => {
                if let Err(e) = ptp::gateway::release(&ctx.node, &ctx.gateway_users, &name).await {
                    errors.push(e);
                }
            }
            _ => {}
        }
    }
    errors
}
