#!/usr/bin/env bash
# Install every Debian package ppf needs to build, test, benchmark and run.
# Idempotent: packages already present are skipped; safe to run again.
# Uses --no-install-recommends (libvirt-daemon-system is never pulled: it needs systemd).
set -euo pipefail

PACKAGES=(
    # build
    build-essential autoconf automake libtool pkg-config
    # libraries
    libvirt-dev libxml2-dev libxml2-utils libzstd-dev zstd libgnutls28-dev gnutls-bin
    libyaml-dev libcurl4-gnutls-dev libcmocka-dev
    # libvirt + QEMU/KVM (no systemd)
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils
    # tests and benchmarks
    clang libclang-rt-14-dev python3 python3-jsonschema python3-yaml procps
    util-linux xz-utils e2fsprogs xfsprogs bc time iproute2 hyperfine
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    echo "install-deps: run again as root (sudo $0)" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
