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
  # native build dependencies (the nft crate may link libnftnl)
  gcc libc6-dev pkg-config libnftnl-dev libmnl-dev
  # benchmarks
  time hyperfine
)
