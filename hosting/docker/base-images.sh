#!/usr/bin/env bash
# Makes the two base images the root Dockerfile names, from Debian's packages, for a
# Docker engine that cannot pull them (no registry reachable, as on Tessera's CI
# machines). On a host that can pull, skip this: `docker build .` fetches the same tags.
#
#   debian:bookworm-slim   the runtime stage: debootstrap's minimal Debian 12
#   rust:1.95-bookworm     the build stage: Debian 12 with gcc, and this machine's own
#                          Rust 1.95 toolchain laid out as the official image has it
#                          (CARGO_HOME=/usr/local/cargo, RUSTUP_HOME=/usr/local/rustup)
#
# Each tag is made only if the engine does not have it yet (--force remakes both).
# Needs: root, debootstrap, docker, and Rust 1.95 as this machine's `rustc`.
# DEBIAN_MIRROR overrides the mirror (http://deb.debian.org/debian).
set -euo pipefail

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
force=false
[[ ${1:-} == --force ]] && force=true

work=$(mktemp -d /tmp/tessera-base.XXXXXX)
trap 'rm -rf "$work"' EXIT

wanted() { $force || ! docker image inspect "$1" >/dev/null 2>&1; }

# A bookworm root file system in $1 with the packages in $2 (comma-separated) added to
# debootstrap's minimal set, with what a container never needs removed.
bootstrap() {
    local root=$1 include=$2
    debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$root" "$mirror" >"$root.log" 2>&1 \
        || { tail -20 "$root.log"; exit 1; }
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
        "$root"/usr/share/locale/* "$root"/var/cache/debconf/*-old "$root"/var/log/*
}

# Imports the root file system in $1 as the tag $2, with the image settings in "$@".
import() {
    local root=$1 tag=$2
    shift 2
    local changes=(--change 'CMD ["bash"]')
    for env in "$@"; do changes+=(--change "ENV $env"); done
    tar --numeric-owner -C "$root" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
    echo "made $tag ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec))"
}

path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if wanted debian:bookworm-slim; then
    bootstrap "$work/slim" ""
    import "$work/slim" debian:bookworm-slim "PATH=$path"
fi

if wanted rust:1.95-bookworm; then
    sysroot=$(readlink -f "$(rustc --print sysroot)")
    rustc --version | grep -q '^rustc 1\.95\.' || { echo "rustc is not 1.95: $(rustc --version)"; exit 1; }
    bootstrap "$work/rust" "ca-certificates,gcc,libc6-dev,make,pkg-config,git"
    toolchain=$work/rust/usr/local/rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu
    mkdir -p "$toolchain" "$work/rust/usr/local/cargo/bin"
    cp -a "$sysroot/." "$toolchain/"
    rm -rf "$toolchain/share/doc"
    # The build stage fetches crates: trust what this machine trusts (a network whose
    # egress re-signs TLS has its authority there), as a pulled image would trust the
    # public authorities only.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$work/rust/usr/local/share/ca-certificates/"
        chroot "$work/rust" update-ca-certificates >/dev/null
    fi
    for tool in cargo rustc rustdoc; do
        ln -s "../../rustup/toolchains/$(basename "$toolchain")/bin/$tool" "$work/rust/usr/local/cargo/bin/$tool"
    done
    import "$work/rust" rust:1.95-bookworm \
        RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo RUST_VERSION=1.95.0 "PATH=/usr/local/cargo/bin:$path"
fi
