//! host-local compatible IPAM: configuration, allocation and the on-disk store.

use conf::{CniError, CniResult, ErrorCode, NetResult, Plugin, Request};

/// The IPAM plugin.
pub struct HostLocal;

fn not_yet(verb: &str) -> CniError {
    CniError::new(ErrorCode::Internal, format!("tether-ipam: {verb} is not implemented yet"))
}

impl Plugin for HostLocal {
    fn add(&self, _: &Request) -> CniResult<NetResult> {
        Err(not_yet("ADD"))
    }
    fn del(&self, _: &Request) -> CniResult<()> {
        Err(not_yet("DEL"))
    }
    fn check(&self, _: &Request) -> CniResult<()> {
        Err(not_yet("CHECK"))
    }
    fn status(&self, _: &Request) -> CniResult<()> {
        Err(not_yet("STATUS"))
    }
    fn gc(&self, _: &Request) -> CniResult<()> {
        Err(not_yet("GC"))
    }
}
