# shellcheck shell=bash
# The Debian 12 packages the test suite needs (shared by .ci/run and scripts/test).
TEST_PACKAGES=(
  ca-certificates git
  # tests: namespaces, addresses, routes, nftables state, traffic
  iproute2 nftables iputils-ping procps
  # reference plugins in /usr/lib/cni (compatibility tests, benchmarks)
  containernetworking-plugins
  # cnitool from Debian's source package (scripts/build-cnitool)
  golang-go golang-github-appc-cni-dev dpkg-dev xz-utils patch
  # the C toolchain and static libc that Rust links with (release builds are static: libc6-dev's libc.a)
  gcc libc6-dev
  # the node image: built and run by tests/tests/image.rs (unshare and nsenter are util-linux's)
  podman util-linux
  # real runtimes (tests/runtimes): containerd's CRI plugin with runc, podman's CNI backend (podman above) with
  # crun (runc refuses podman's cgroups = "disabled"), the test image's busybox, iptables for the
  # reference portmap and ptp's ipMasq
  containerd runc crun conmon busybox-static iptables
  # benchmarks
  time hyperfine
)
