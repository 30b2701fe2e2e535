//! ADD: validate, allocate, wire, report; on any failure undo exactly what this ADD created (the
//! IPAM reservation included, unless the attachment already held it: a repeated ADD).
//!
//! The mode recipes (`ptp::wire`, `bridge::wire`) record everything with a side effect in
//! [`Undo`] the moment it succeeds, and one place ([`rollback`]) reverses it. A pre-existing
//! interface of the requested name makes the veth creation fail before anything of ours exists,
//! so it is never touched. Shared node state (bridge, gateway addresses, isolation element) is
//! never undone: concurrent ADDs rely on it as soon as it exists.

use crate::attach::{Attachment, Undo};
use crate::config::{Mode, PluginConf};
use crate::ipam::Ipam;
use crate::netlink::Netlink;
use crate::netns::{self, Netns};
use crate::{bridge, isolate, masq, ptp, runtime, spoofchk, veth};
use conf::{CniError, CniResult, Command, NetResult, Request};

/// ADD for every mode.
pub fn add(request: &Request) -> CniResult<NetResult> {
    let conf = PluginConf::from_request(request)?;
    let netns = Netns::of(request)?;
    netns::refuse_own(&netns)?;
    // Before any interface of the network exists, so none is ever forwarded to another network
    // (and a group another isolated network holds fails the ADD before anything is made).
    isolate::ensure(&request.config.name, &conf)?;
    let group = isolate::group(&request.config.name, &conf)?;
    let ipam = Ipam::of(request);
    let (allocated, release_on_failure) = ipam.add(request)?;
    // Before anything exists: an answer that cannot be written would leave the attachment behind.
    if let Err(e) = allocated.encodable_in(request.version()) {
        if release_on_failure {
            if let Err(cleanup) = ipam.run(request, Command::Del) {
                return Err(with_cleanup(e, vec![cleanup.context("release the IPAM reservation")]));
            }
        }
        return Err(e);
    }
    let attachment = Attachment {
        request,
        conf: &conf,
        netns: &netns,
        host_veth: veth::host_veth_name(
            &request.config.name,
            &request.invocation.container_id,
            &request.invocation.ifname,
        ),
        group,
    };
    let mut undo = Undo::default();
    let wired = match conf.mode {
        Mode::Ptp => ptp::wire(&attachment, &allocated, &mut undo),
        Mode::Bridge => bridge::wire(&attachment, &allocated, &mut undo),
    }
    // Once more after the masquerade state exists: a concurrent last DEL of the network drops
    // its tables and its isolation element together (see nft's `masq_del`); the element read
    // above may have gone with them, and without it the network's own traffic is dropped.
    .and_then(|result| isolate::ensure(&request.config.name, &conf).map(|()| result));
    match wired {
        Ok(result) => Ok(result),
        Err(err) => {
            let mut cleanup = rollback(&attachment, undo);
            if !release_on_failure {
                log::info!("the attachment held its addresses before this ADD: they stay reserved");
            } else if let Err(e) = ipam.run(request, Command::Del) {
                cleanup.push(e.context("release the IPAM reservation"));
            }
            Err(with_cleanup(err, cleanup))
        }
    }
}

fn with_cleanup(primary: CniError, cleanup: Vec<CniError>) -> CniError {
    if cleanup.is_empty() {
        return primary;
    }
    let also: Vec<String> = cleanup.iter().map(ToString::to_string).collect();
    let details = if primary.details.is_empty() { String::new() } else { format!("{}; ", primary.details) };
    CniError { details: format!("{details}cleanup after the failure also failed: {}", also.join("; ")), ..primary }
}

/// Reverse what `undo` records; return what could not be undone.
fn rollback(att: &Attachment<'_>, undo: Undo) -> Vec<CniError> {
    let mut errors = Vec::new();
    if undo.masq {
        if let Err(e) = masq::del(att.network(), att.container_id(), att.ifname()) {
            errors.push(e.context("remove masquerade state"));
        }
    }
    if undo.spoofchk {
        if let Err(e) = spoofchk::del(att.network(), att.container_id(), att.ifname()) {
            errors.push(e.context("remove spoof-check state"));
        }
    }
    if let Some(name) = undo.host_veth {
        let deleted = runtime::build().and_then(|rt| {
            rt.block_on(async {
                let nl = Netlink::connect()?;
                match nl.delete_link(&name).await {
                    Err(e) if !e.is_not_found() => Err(e.into_cni(format!("delete {name}"))),
                    _ => Ok(()),
                }
            })
        });
        if let Err(e) = deleted {
            errors.push(e);
        }
    }
    errors
}
