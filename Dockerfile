# tether's node image: the static tether, tether-ipam and tether-install, and nothing else (no shell, no libc).
# The DaemonSet in deploy/ runs tether-install, which copies the plugins into the node's /opt/cni/bin and writes
# the conflist into /etc/cni/net.d (see the README's Kubernetes section).
#
# Two ways to build it:
#
#   # everything inside the build (needs the rust image from a registry):
#   podman build -t tether:0.1.0 .
#
#   # from binaries built outside (no registry needed: the final stage is FROM scratch):
#   dir=$(scripts/build-release)
#   mkdir -p dist && cp "$dir"/tether "$dir"/tether-ipam "$dir"/tether-install dist/
#   podman build --target prebuilt -t tether:0.1.0 .
#
# The binaries must be static (scripts/build-release makes them so): the image has no dynamic loader.

# The toolchain stage, pinned (the workspace's rust-version is 1.85).
FROM docker.io/library/rust:1.85.0-slim-bookworm AS build
WORKDIR /src
COPY . .
# .git is not sent (.dockerignore): pass the commit for `tether --version`, e.g.
#   podman build --build-arg TETHER_GIT_COMMIT=$(git rev-parse --short HEAD) -t tether .
ARG TETHER_GIT_COMMIT
# scripts/build-release adds the musl target through rustup (static glibc if it cannot).
RUN dir="$(scripts/build-release)" \
    && mkdir /out \
    && cp "$dir/tether" "$dir/tether-ipam" "$dir/tether-install" /out/

# Binaries built outside the image, from the directory named by BIN_DIR (relative to the build context).
FROM scratch AS prebuilt
ARG BIN_DIR=dist
COPY ${BIN_DIR}/tether ${BIN_DIR}/tether-ipam ${BIN_DIR}/tether-install /opt/tether/
COPY LICENSE /usr/share/doc/tether/LICENSE
USER 0:0
ENTRYPOINT ["/opt/tether/tether-install"]

# The default target: the same final stage, from the toolchain stage's binaries.
FROM scratch AS image
COPY --from=build /out/ /opt/tether/
COPY LICENSE /usr/share/doc/tether/LICENSE
USER 0:0
ENTRYPOINT ["/opt/tether/tether-install"]
