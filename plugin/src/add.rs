//! ADD: validate, allocate, wire, report; on any failure undo exactly what this ADD created.
//!
//! Everything with a side effect is recorded in [`Undo`] the moment it succeeds, and one place
//! ([`rollback`]) reverses it. A pre-existing interface of the requested name makes the veth
//! creation fail before anything of ours exists, so it is never touched.

use crate::config::{Mode, PluginConf};
use crate::ipam::Ipam;
use crate::netlink::addr::AddrFlags;
use crate::netlink::link::{Link, VethSpec};
use crate::netlink::{Netlink, NlContext};
use crate::netns::{self, Netns};
use crate::{masq, ptp, runtime, sysctl, veth};
use conf::{CniError, CniResult, Command, ErrorCode, Interface, IpConfig, NetResult, Request};

/// What this ADD created, in order.
#[derive(Debug, Default)]
pub struct Undo {
    /// The node end of the veth pair (deleting it removes the pair, its addresses and routes).
    host_veth: Option<String>,
    /// Masquerade elements were (perhaps partially) added.
    masq: bool,
}

/// The names and handles one attachment is wired with.
pub struct Attachment<'a> {
    pub request: &'a Request,
    pub conf: &'a PluginConf,
    pub netns: &'a Netns,
    pub host_veth: String,
}

impl Attachment<'_> {
    fn network(&self) -> &str {
        &self.request.config.name
    }

    fn container_id(&self) -> &str {
        &self.request.invocation.container_id
    }

    fn ifname(&self) -> &str {
        &self.request.invocation.ifname
    }
}

/// ADD for every mode.
pub fn add(request: &Request) -> CniResult<NetResult> {
    let conf = PluginConf::from_netconf(&request.config)?;
    if conf.mode == Mode::Bridge {
        return Err(CniError::new(ErrorCode::UnsupportedField, "mode \"bridge\" is not available in this build"));
    }
    let path = request.invocation.netns.as_deref().ok_or_else(|| {
        CniError::new(ErrorCode::InvalidEnvironment, "required environment variable CNI_NETNS is missing")
    })?;
    let netns = Netns::open(path)?;
    netns::refuse_own(&netns)?;
    let ipam = Ipam::of(request);
    let allocated = ipam.add(request)?;
    let attachment = Attachment {
        request,
        conf: &conf,
        netns: &netns,
        host_veth: veth::host_veth_name(
            &request.config.name,
            &request.invocation.container_id,
            &request.invocation.ifname,
        ),
    };
    let mut undo = Undo::default();
    match wire(&attachment, &allocated, &mut undo) {
        Ok(result) => Ok(result),
        Err(err) => {
            let mut cleanup = rollback(&attachment, undo);
            if let Err(e) = ipam.run(request, Command::Del) {
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

/// Wire the attachment (ptp) and build the result.
fn wire(att: &Attachment<'_>, allocated: &NetResult, undo: &mut Undo) -> CniResult<NetResult> {
    let plan = ptp::plan(allocated)?;
    let has_v4 = plan.container_addrs.iter().any(|a| a.addr().is_ipv4());
    let has_v6 = plan.container_addrs.iter().any(|a| a.addr().is_ipv6());
    sysctl::enable_forwarding(has_v4, has_v6)?;
    let (host, container) = runtime::build()?.block_on(async {
        let host_nl = Netlink::connect()?;
        let ctr_nl = {
            let _in_container = att.netns.enter()?;
            Netlink::connect()?
        };
        let (host, container) = create_pair(att, &host_nl, &ctr_nl, undo).await?;
        let container_side = async {
            for addr in &plan.container_addrs {
                ctr_nl
                    .add_addr(container.index, *addr, AddrFlags { no_prefix_route: true })
                    .await
                    .or_cni(format!("add {addr} to {} in the container", att.ifname()))?;
            }
            ctr_nl.set_up(container.index).await.or_cni(format!("set {} up", att.ifname()))?;
            for route in &plan.container_routes {
                ctr_nl.add_route(container.index, route).await.or_cni(format!(
                    "add route {}{} in the container",
                    route.dst,
                    route.gw.map(|g| format!(" via {g}")).unwrap_or_default()
                ))?;
            }
            Ok::<(), CniError>(())
        };
        let host_side = async {
            for addr in &plan.host_addrs {
                host_nl
                    .add_addr(host.index, *addr, AddrFlags { no_prefix_route: true })
                    .await
                    .or_cni(format!("add gateway {addr} to {}", host.name))?;
            }
            for route in &plan.host_routes {
                host_nl
                    .add_route(host.index, route)
                    .await
                    .or_cni(format!("add route {} dev {}", route.dst, host.name))?;
            }
            Ok::<(), CniError>(())
        };
        let (c, h) = tokio::join!(container_side, host_side);
        c.and(h)?;
        if let (Some(host_mac), Some(ctr_mac)) = (&host.mac, &container.mac) {
            for ip in allocated.ips.iter().filter(|ip| ip.address.addr().is_ipv6()) {
                let (addr, gw) = (ip.address.addr(), ip.gateway);
                host_nl.seed_neighbour(host.index, addr, ctr_mac).await.or_cni(format!("seed neighbour {addr}"))?;
                if let Some(gw) = gw {
                    ctr_nl
                        .seed_neighbour(container.index, gw, host_mac)
                        .await
                        .or_cni(format!("seed neighbour {gw}"))?;
                }
            }
        }
        Ok::<(Link, Link), CniError>((host, container))
    })?;
    // The node end must not learn routes from router advertisements a container sends
    // (plugins#484): the reference sets the same.
    sysctl::ensure(&format!("net/ipv6/conf/{}/accept_ra", host.name), "0")?;
    if att.conf.ip_masq {
        undo.masq = true;
        masq::add(att.network(), att.container_id(), att.ifname(), &allocated.ips)?;
    }
    Ok(result(att, allocated, &host, &container))
}

/// Create the pair and read back both ends (index, MAC).
async fn create_pair(
    att: &Attachment<'_>,
    host_nl: &Netlink,
    ctr_nl: &Netlink,
    undo: &mut Undo,
) -> CniResult<(Link, Link)> {
    let spec = VethSpec {
        host_name: &att.host_veth,
        peer_name: att.ifname(),
        peer_netns_fd: att.netns.raw_fd(),
        mtu: att.conf.mtu,
        peer_mac: None,
        host_master: None,
    };
    if let Err(e) = host_nl.create_veth(&spec).await {
        if e.is_exists() {
            return Err(explain_exists(att, host_nl, ctr_nl).await);
        }
        return Err(e.into_cni(format!("create veth pair {} / {}", att.host_veth, att.ifname())));
    }
    undo.host_veth = Some(att.host_veth.clone());
    let (host, container) = tokio::join!(host_nl.link_by_name(&att.host_veth), ctr_nl.link_by_name(att.ifname()));
    let missing = |what: &str| CniError::new(ErrorCode::Netlink, format!("{what} vanished right after its creation"));
    let host = host.or_cni(format!("read {}", att.host_veth))?.ok_or_else(|| missing(&att.host_veth))?;
    let container = container.or_cni(format!("read {}", att.ifname()))?.ok_or_else(|| missing(att.ifname()))?;
    Ok((host, container))
}

/// EEXIST from the pair creation: say which name is taken, so the operator knows what to fix.
async fn explain_exists(att: &Attachment<'_>, host_nl: &Netlink, ctr_nl: &Netlink) -> CniError {
    if let Ok(Some(_)) = ctr_nl.link_by_name(att.ifname()).await {
        return CniError::new(
            ErrorCode::Netlink,
            format!("interface {} already exists in {}", att.ifname(), att.netns.path().display()),
        );
    }
    if let Ok(Some(_)) = host_nl.link_by_name(&att.host_veth).await {
        return CniError::new(ErrorCode::Netlink, format!("node interface {} already exists", att.host_veth))
            .with_details(format!(
                "a previous ADD of container {} / {} was not deleted",
                att.container_id(),
                att.ifname()
            ));
    }
    CniError::new(ErrorCode::Netlink, format!("create veth pair {} / {}: File exists", att.host_veth, att.ifname()))
}

fn result(att: &Attachment<'_>, allocated: &NetResult, host: &Link, container: &Link) -> NetResult {
    NetResult {
        interfaces: vec![
            Interface { name: host.name.clone(), mac: host.mac_string(), ..Interface::default() },
            Interface {
                name: container.name.clone(),
                mac: container.mac_string(),
                mtu: container.mtu,
                sandbox: Some(att.netns.path().display().to_string()),
                ..Interface::default()
            },
        ],
        ips: allocated.ips.iter().map(|ip| IpConfig { interface: Some(1), ..ip.clone() }).collect(),
        routes: allocated.routes.clone(),
        dns: att.request.config.dns_or(allocated.dns.clone()),
    }
}

/// Reverse what `undo` records; return what could not be undone.
fn rollback(att: &Attachment<'_>, undo: Undo) -> Vec<CniError> {
    let mut errors = Vec::new();
    if undo.masq {
        if let Err(e) = masq::del(att.network(), att.container_id(), att.ifname()) {
            errors.push(e.context("remove masquerade state"));
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
