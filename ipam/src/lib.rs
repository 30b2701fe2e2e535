//! # tether-ipam: host-local compatible IPAM
//!
//! A drop-in for the reference `host-local` IPAM plugin: the same configuration keys, the same
//! round-robin allocation and the same files in `<dataDir>/<network>/`, so both plugins can run
//! on one store at once (they lock the same `lock` file). What differs: a private index under
//! `.tether/` keeps ADD, DEL and CHECK independent of the number of reservations (host-local
//! reads every file on every command); a repeated ADD for an attachment returns the addresses it
//! already holds instead of failing; reservations are created whole (temp file + link) so a crash
//! never leaves a half-written one; gateways, network and broadcast addresses are never handed
//! out; STATUS and GC (CNI 1.1) are implemented.
//!
//! [`HostLocal`] is both the binary's plugin and the library entry point: the `tether` plugin
//! calls it in process ([`HostLocal::allocate`], `HostLocal.del(&request)`, ...) when `ipam.type`
//! is `tether-ipam`, with its own [`conf::Request`]. It keeps no state between calls and never prints.

mod allocator;
mod config;
mod error;
mod range;
mod resolv;
mod store;

use conf::{CniError, CniResult, IpConfig, NetResult, Plugin, Request};
use config::{IpamConfig, StatusConfig};
use error::{Error, Result};
use std::collections::HashSet;
use store::{DiskStore, FileOwner, Owner, Probe, Store};

/// The IPAM plugin (`type: "tether-ipam"`). A unit struct: every call opens, locks and closes the
/// store itself, so it is safe to call from several threads or processes at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostLocal;

/// What an ADD answered, and whether it reserved all of it.
#[derive(Debug)]
pub struct Allocation {
    /// The IPAM result.
    pub result: NetResult,
    /// True when every address was reserved by this call; false when the attachment already held
    /// some (a repeated ADD). An ADD that fails afterwards may release the reservations through
    /// DEL only when this is true: otherwise they belong to a live attachment.
    pub all_new: bool,
}

impl HostLocal {
    /// ADD, telling which addresses it reserved (see [`Allocation::all_new`]).
    ///
    /// # Errors
    /// As [`Plugin::add`].
    pub fn allocate(&self, request: &Request) -> CniResult<Allocation> {
        allocate(request).map_err(CniError::from)
    }
}

fn owner(request: &Request) -> Owner<'_> {
    Owner { id: &request.invocation.container_id, ifname: &request.invocation.ifname }
}

fn describe(request: &Request) -> String {
    format!(
        "container {} interface {} in network {:?}",
        request.invocation.container_id, request.invocation.ifname, request.config.name
    )
}

fn open_existing(data_dir: &std::path::Path, request: &Request) -> Result<Option<DiskStore>> {
    DiskStore::open_existing(data_dir, &request.config.name)
}

/// Reserve one address per range set (or return those the attachment already holds).
fn allocate(request: &Request) -> Result<Allocation> {
    let cfg = IpamConfig::parse(&request.config, request.cni_args()?.ips()?)?;
    let dns = cfg.resolv_conf.as_deref().map(resolv::read).transpose()?.unwrap_or_default();
    let who = owner(request);
    let mut store = DiskStore::create(&cfg.data_dir, &request.config.name)?;
    let leases =
        store.held_by(&who).and_then(|held| allocator::allocate(&mut store, &cfg.sets, &who, &cfg.requested, &held));
    store.finish();
    let leases = leases.map_err(|e| e.context(format!("network {:?}", request.config.name)))?;
    for lease in leases.iter().filter(|l| !l.fresh) {
        log::info!("{} already holds {}; returning it", describe(request), lease.address);
    }
    let result = NetResult {
        ips: leases
            .iter()
            .map(|l| IpConfig { address: l.address, gateway: Some(l.gateway), interface: None })
            .collect(),
        routes: cfg.routes,
        dns,
        interfaces: Vec::new(),
    };
    Ok(Allocation { result, all_new: leases.iter().all(|l| l.fresh) })
}

/// Release the attachment's reservations. Needs only `ipam.dataDir`; absent store or
/// reservations are success.
fn del(request: &Request) -> Result<()> {
    let data_dir = config::data_dir(&request.config)?;
    let Some(mut store) = open_existing(&data_dir, request)? else {
        return Ok(());
    };
    let released = store.release_owner(&owner(request));
    store.finish();
    let released = released?;
    log::debug!("released {released:?} of {}", describe(request));
    Ok(())
}

/// The attachment must hold a reservation, and every `prevResult` address inside our ranges
/// must be one of its reservations.
fn check(request: &Request) -> Result<()> {
    let cfg = IpamConfig::parse(&request.config, Vec::new())?;
    let none_held = || Error::NotReserved { attachment: describe(request) };
    let Some(mut store) = open_existing(&cfg.data_dir, request)? else {
        return Err(none_held());
    };
    let held = store.held_by(&owner(request));
    store.finish();
    let held = held?;
    if held.is_empty() {
        return Err(none_held());
    }
    for ip in request.config.prev_result.iter().flat_map(|r| r.ips.iter()).map(|c| c.address.addr()) {
        if cfg.sets.iter().any(|s| s.contains(ip)) && !held.contains(&ip) {
            return Err(Error::Drift { ip, attachment: describe(request) });
        }
    }
    Ok(())
}

/// Code 50 unless the store is usable and every static range set has a free address. Only
/// reads: the store is neither created nor re-indexed, and its lock is taken shared (see
/// [`store::Probe`]). A network whose ranges come only from `runtimeConfig.ipRanges` (which
/// libcni does not pass to STATUS) is available when its store is usable.
fn status(request: &Request) -> Result<()> {
    let cfg = StatusConfig::parse(&request.config)?;
    let mut probe = Probe::open(&cfg.data_dir, &request.config.name)?;
    for (i, set) in cfg.sets.iter().enumerate() {
        if !allocator::has_free(set, |from, to| probe.next_untaken(from, to))? {
            return Err(Error::Unavailable(format!(
                "range set {i} ({set}) of network {:?} is exhausted: no free address",
                request.config.name
            )));
        }
    }
    Ok(())
}

/// Release every reservation of the network whose attachment is not in
/// `cni.dev/valid-attachments` (legacy ID-only files match on the container ID).
fn gc(request: &Request) -> Result<()> {
    let data_dir = config::data_dir(&request.config)?;
    let Some(mut store) = open_existing(&data_dir, request)? else {
        return Ok(());
    };
    let valid = &request.config.valid_attachments;
    let pairs: HashSet<(&str, &str)> = valid.iter().map(|a| (a.container_id.as_str(), a.ifname.as_str())).collect();
    let ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    let keep = |o: &FileOwner| match o {
        FileOwner::Attachment { id, ifname } => pairs.contains(&(id.as_str(), ifname.as_str())),
        FileOwner::Legacy { id } => ids.contains(id.as_str()),
        FileOwner::Unknown => false,
    };
    let scan = store.gc(&keep);
    store.finish();
    let scan = scan?;
    if !scan.released.is_empty() {
        log::info!("GC of network {:?} released {:?}", request.config.name, scan.released);
    }
    if scan.errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Gc { network: request.config.name.clone(), problems: scan.errors })
    }
}

/// The verbs, each answered through the one mapping of `error.rs`.
impl Plugin for HostLocal {
    fn add(&self, request: &Request) -> CniResult<NetResult> {
        allocate(request).map(|a| a.result).map_err(CniError::from)
    }

    fn del(&self, request: &Request) -> CniResult<()> {
        del(request).map_err(CniError::from)
    }

    fn check(&self, request: &Request) -> CniResult<()> {
        check(request).map_err(CniError::from)
    }

    fn status(&self, request: &Request) -> CniResult<()> {
        status(request).map_err(CniError::from)
    }

    fn gc(&self, request: &Request) -> CniResult<()> {
        gc(request).map_err(CniError::from)
    }
}

/// Entry points for the fuzz targets (`fuzz/`): the configuration decoding of every verb, without
/// touching a store. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use conf::{CniResult, Request};

    /// Decode the IPAM configuration as ADD (with `CNI_ARGS` `IP=`), CHECK, STATUS, DEL and GC do.
    ///
    /// # Errors
    /// The first decoding error, as ADD would report it.
    pub fn decode_config(request: &Request) -> CniResult<()> {
        let _ = crate::config::data_dir(&request.config);
        let _ = crate::config::StatusConfig::parse(&request.config);
        let _ = crate::config::IpamConfig::parse(&request.config, Vec::new());
        crate::config::IpamConfig::parse(&request.config, request.cni_args()?.ips()?)
            .map(|_| ())
            .map_err(conf::CniError::from)
    }
}
