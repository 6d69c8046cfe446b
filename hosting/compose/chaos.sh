#!/usr/bin/env bash
# The compose cluster under fire: builds the image (and, with no registry, its base
# images), brings hosting/compose/compose.yaml up as its own project, and has
# `tessera-bench chaos --compose` play bots from this host against it while a proxy's
# container is killed, the busiest server's container is stopped and started again,
# the busiest server is cut off the network for 10 s and joined again, and every
# container is restarted in turn. Prints each scene's players hit and time to play
# again, bots still playing, inputs lost and applied twice; the JSON report and every
# container's log go to the output directory. Exits non-zero if a bot was dropped, an
# input lost or applied twice, or a player never came back. Takes the project down at
# the end, its volumes with it.
#
#   hosting/compose/chaos.sh                   # 200 bots
#   hosting/compose/chaos.sh --bots 100 --no-build
#
# Needs: docker with docker-compose, cargo; root or the docker group.
set -euo pipefail
cd "$(dirname "$0")/../.."

bots=200
build=true
out=/tmp/tessera-compose-chaos-$(date +%Y%m%d-%H%M%S)
project=tessera-chaos
while [[ $# -gt 0 ]]; do
    case $1 in
        --bots) bots=$2; shift 2 ;;
        --no-build) build=false; shift ;;
        --out) out=$2; shift 2 ;;
        *) echo "usage: $0 [--bots N] [--no-build] [--out DIR]" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
compose=(docker-compose -f hosting/compose/compose.yaml -p "$project")
target=${CARGO_TARGET_DIR:-target}

if $build; then
    if ! docker image inspect rust:1.95-bookworm debian:bookworm-slim >/dev/null 2>&1 \
        && ! docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
        echo "== no registry: making the base images from Debian's packages"
        hosting/docker/base-images.sh
    fi
    echo "== building the image and the bench"
    docker build -q -t tessera . >/dev/null
    cargo build -q --release -p tessera-bench
fi

# Every bot comes from this host through Docker's port publishing, so from one address.
export TESSERA_MAX_CONNECTIONS_PER_ADDRESS=$((bots + 64))
export TESSERA_JOIN_BURST_PER_ADDRESS=$((bots + 64))
export TESSERA_JOINS_PER_SEC_PER_ADDRESS=$((bots + 64))

finish() {
    "${compose[@]}" logs --no-color >"$out/containers.log" 2>&1 || true
    "${compose[@]}" down --volumes --timeout 30 >/dev/null 2>&1 || true
}
trap finish EXIT
echo "== bringing the cluster up (project $project)"
"${compose[@]}" up -d
echo "== chaos under $bots bots"
status=0
"$target/release/tessera-bench" chaos --compose hosting/compose/compose.yaml --project "$project" \
    --bots "$bots" --out "$out" || status=$?
echo "report and logs: $out"
exit $status
