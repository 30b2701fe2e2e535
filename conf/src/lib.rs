//! # tether-conf: the plugin side of the Container Network Interface
//!
//! Everything a CNI plugin binary needs besides its networking: the `CNI_*` environment
//! ([`env`]), `CNI_ARGS` ([`args`]), the network configuration ([`config`]), results in every
//! spec version from 0.1.0 to 1.1.0 ([`result`], [`version`]), error objects ([`error`]),
//! the request a handler receives ([`request`]), the single dispatcher that owns stdout and the
//! exit code ([`skel`]), delegation to another plugin such as IPAM ([`delegate`]), logging that
//! never touches stdout ([`logging`]), and what every crate of the workspace shares about names:
//! the rules for untrusted names ([`names`]) and the stable hash derived names use ([`hash`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod config;
pub mod delegate;
pub mod env;
pub mod error;
pub mod hash;
pub mod logging;
pub mod names;
pub mod request;
pub mod result;
pub mod skel;
mod timestamp;
pub mod version;

pub use config::{Attachment, NetConf};
pub use env::{Command, Invocation};
pub use error::{CniError, CniResult, ErrorCode};
pub use request::Request;
pub use result::{Dns, Interface, IpConfig, NetResult, Route};
pub use skel::Plugin;
pub use version::Version;
