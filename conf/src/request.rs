//! One request as a plugin's handlers see it: the validated environment, the validated
//! configuration and stdin exactly as received (for delegates).

use crate::args::CniArgs;
use crate::config::NetConf;
use crate::env::Invocation;
use crate::error::CniResult;
use crate::version::Version;

/// One request: the validated environment, the validated configuration and the exact stdin.
#[derive(Debug, Clone)]
pub struct Request {
    /// The `CNI_*` variables.
    pub invocation: Invocation,
    /// The shared configuration fields and the raw document.
    pub config: NetConf,
    /// stdin exactly as received, for delegates.
    pub stdin: Vec<u8>,
}

impl Request {
    /// The request's spec version.
    pub fn version(&self) -> Version {
        self.config.version
    }

    /// `CNI_ARGS`, parsed on demand so that DEL never fails on them.
    pub fn cni_args(&self) -> CniResult<CniArgs> {
        CniArgs::parse(&self.invocation.args)
    }
}
