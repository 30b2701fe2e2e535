# tether as an installer image, the way CNI plugins are usually shipped to Kubernetes nodes:
# a DaemonSet runs it with the node's CNI directory mounted at /host/opt/cni/bin, and it copies
# the two static binaries there.
#
#   docker build -t tether .
#   docker run --rm -v /opt/cni/bin:/host/opt/cni/bin tether
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# .git is not sent (.dockerignore): pass the commit for `tether --version`, e.g.
#   docker build --build-arg TETHER_GIT_COMMIT=$(git rev-parse --short HEAD) -t tether .
ARG TETHER_GIT_COMMIT
# Static, size-optimised binaries (see scripts/lib/release.sh).
RUN dir="$(scripts/build-release)" && mkdir /out && cp "$dir/tether" "$dir/tether-ipam" /out/

FROM debian:bookworm-slim
COPY --from=build /out/ /opt/cni/bin/
COPY LICENSE /usr/share/doc/tether/LICENSE
ENTRYPOINT ["/bin/sh", "-c", "install -m 0755 /opt/cni/bin/tether /opt/cni/bin/tether-ipam /host/opt/cni/bin/ && echo 'tether installed into /host/opt/cni/bin'"]
