# shellcheck shell=bash
# The Debian 12 packages scripts/kernel-test needs on the host, on top of TEST_PACKAGES.
KERNEL_TEST_PACKAGES=(
  # the machine: TCG (this host's /dev/kvm cannot run a stock kernel), virtio-9p shares
  qemu-system-x86
  # the initramfs: a static shell, and kmod to resolve module dependencies (its modprobe is
  # what the kernel calls, from the host's /usr, to autoload modules in the guest)
  busybox-static kmod xz-utils
  # reading cargo's --message-format=json
  jq
)
