//! The integration-test harness: the built `tether` and `tether-ipam` binaries (and the reference
//! plugins in `/usr/lib/cni`) driven exactly as a runtime drives them, inside network namespaces
//! the tests make and remove themselves.
//!
//! - [`gate`]: `require_root()` — run, skip with `SKIPPED: ...`, or fail under `CI`.
//! - [`netns`]: [`Netns`] (a test namespace, deleted on drop), [`Node`] (namespace + scratch dir).
//! - [`plugin`]: [`Plugin`] runs a binary inside the node with `env -i` + `CNI_*` + stdin.
//! - [`config`]: spec versions and ptp configuration builders (198.18.0.0/15, fd7e:7e7e::/32 only).
//! - [`cnitool`]: the same flows through libcni's `cnitool`.
//! - [`kernel`]: what the kernel under test supports (bridge VLAN filtering, 802.1Q).
//! - [`bins`]: where the binaries are (`CNI_TEST_BIN_DIR` or the cargo profile directory).
//!
//! This is test code: a failed setup step panics with the full command context.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

pub mod bins;
pub mod cmd;
pub mod cnitool;
pub mod config;
pub mod gate;
pub mod kernel;
pub mod netns;
pub mod plugin;
pub mod wait;

pub use config::{each_version, Family, Ipam, Ptp, ALL_VERSIONS, RESULT_VERSIONS};
pub use gate::{ci_required, require_root, require_tool};
pub use netns::{Netns, Node, TempDir};
pub use plugin::{Invocation, Outcome, Plugin};
