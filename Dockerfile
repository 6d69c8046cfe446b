# One image for every role of a Tessera cluster; the command picks the role:
#   tessera-server --ordinal 0     a game server (or --id N)
#   tessera-proxy --id 1           a proxy
#   tessera-cluster                every server and proxy of a map in one container
#   tessera-bots --bots 20         a swarm of bots
# Configured by flags or environment (TESSERA_CLUSTER, TESSERA_SECRET_FILE,
# TESSERA_STORE, TESSERA_ID, TESSERA_ORDINAL, the proxy's limits: see each --help);
# the cluster map and the secret are mounted, never baked in. docs/hosting.md says how.
#
#   docker build -t tessera .
#
# Without a registry, make the two base images first: hosting/docker/base-images.sh.

ARG BUILD_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# The workspace and nothing else, so that docs or hosting files edited do not make the
# compile below run again.
COPY Cargo.toml Cargo.lock ./
COPY assets assets
COPY shared shared
COPY service service
COPY store store
COPY server server
COPY proxy proxy
COPY cluster cluster
COPY player player
COPY bots bots
COPY bench bench
COPY client client
# Only the headless binaries: nothing here draws, so nothing needs a window system.
RUN cargo build --release --locked \
        -p tessera-server -p tessera-proxy -p tessera-cluster -p tessera-bots -p tessera-service --bins \
    && mkdir /out \
    && cp target/release/tessera-server target/release/tessera-proxy target/release/tessera-cluster \
          target/release/tessera-bots target/release/tessera-health /out/ \
    # Line tables make most of their size; symbols stay, so a panic still names functions.
    && strip --strip-debug /out/*

FROM ${RUNTIME_IMAGE}
# A user of its own, and the data directory (a SQLite store, for one machine) it owns,
# so that a volume mounted there starts out writable by it.
# The same for where a secret volume is mounted (/etc/tessera/secret), for the same
# reason; the cluster map is mounted read-only at /etc/tessera/cluster.toml.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tessera --create-home --shell /usr/sbin/nologin tessera \
    && install -d -o tessera -g tessera -m 0700 /etc/tessera/secret
COPY --from=build /out/ /usr/local/bin/
USER tessera
WORKDIR /var/lib/tessera
ENV TESSERA_DATA=/var/lib/tessera \
    TESSERA_METRICS=0.0.0.0:9100
# Players (proxies: TCP, and UDP for their updates by datagram), proxies and peers
# (servers): the ports the maps in hosting/ use; metrics and probes on 9100.
EXPOSE 7000/tcp 7000/udp 7100 7200 9100
# Ready: a server reachable by a proxy, a proxy reaching a server (service/src/health.rs).
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=3 CMD ["tessera-health"]
# docker stop sends SIGTERM: a server saves its players, then exits.
STOPSIGNAL SIGTERM
CMD ["tessera-cluster"]
