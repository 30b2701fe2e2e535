//! `tether`: a veth pair per container, routed (`ptp`) or bridged.
fn main() -> std::process::ExitCode {
    conf::skel::run(&Tether, "tether: CNI plugin, a veth pair per container (modes ptp, bridge)")
}

use conf::{CniError, CniResult, ErrorCode, NetResult, Plugin, Request};

struct Tether;

fn not_yet(verb: &str) -> CniError {
    CniError::new(ErrorCode::Internal, format!("tether: {verb} is not implemented yet"))
}

impl Plugin for Tether {
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
