//! # tether-conf: the plugin side of the Container Network Interface
//!
//! Everything a CNI plugin binary needs besides its networking: the `CNI_*` environment
//! ([`env`]), `CNI_ARGS` ([`args`]), the network configuration ([`config`]), results in every
//! spec version from 0.1.0 to 1.1.0 ([`result`], [`version`]), error objects ([`error`]), the
//! single dispatcher that owns stdout and the exit code ([`skel`]), delegation to another plugin
//! such as IPAM ([`delegate`]) and logging that never touches stdout ([`logging`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod config;
pub mod delegate;
pub mod env;
pub mod error;
pub mod logging;
pub mod result;
pub mod skel;
mod timestamp;
pub mod version;

pub use config::{Attachment, NetConf};
pub use env::{Command, Invocation};
pub use error::{CniError, CniResult, ErrorCode};
pub use result::{Dns, Interface, IpConfig, NetResult, Route};
pub use skel::{Plugin, Request};
pub use version::Version;
