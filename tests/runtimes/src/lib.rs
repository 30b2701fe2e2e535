//! tether under real runtimes, started by the tests from Debian packages inside namespaces and
//! mounts the tests make: containerd's CRI plugin driven by [`cri`] (as the kubelet drives it),
//! and podman's CNI backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

pub mod cgroup;
pub mod checks;
pub mod containerd;
pub mod cri;
pub mod host;
pub mod image;
pub mod networks;
pub mod nodebox;
pub mod podman;
