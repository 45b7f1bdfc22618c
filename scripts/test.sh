#!/usr/bin/env bash
# The one test command (README "Testing"): installs what the tests need, builds, checks and tests.
# Runs on a fresh Debian 12 machine as root; on a prepared machine the install steps are no-ops.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use. util-linux gives setpriv (parent-death signal for workloads).
# Storage: NBD clients and peers (libnbd-bin: nbdinfo, nbdcopy and nbdfuse; Debian 12's "nbdfuse"
# is only a name libnbd-bin provides, which dpkg never reports installed, so listing it made every
# run apt-get update), qemu-utils (qemu-img, qemu-io, qemu-nbd), nbdkit, fio (nbd engine),
# e2fsprogs (mkfs.ext4, e2fsck), fuse3 and fuse2fs for unprivileged mounts.
# Store: etcd-server (etcd 3.4), the real etcd that the etcd backend's contract tests start.
# Hosts: nftables (nft), the packet filter inside the network namespaces of test/hosts (partitions).
# VIPs: iputils-arping (arping -D probes for another holder, arping -U sends gratuitous ARP; the
# agent's VIP endpoints and test/vip.test.ts).
# Console: chromium, the real browser that playwright-core drives in test/console (no browser is
# downloaded at run time).
apt_packages=(util-linux procps iproute2 libnbd-bin qemu-utils nbdkit fio e2fsprogs fuse3 fuse2fs etcd-server nftables iputils-arping chromium)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "test: missing Debian packages (run as root to install): ${missing[*]}" >&2
    exit 1
  fi
fi

# Metrics: promtool, the Prometheus project's own parser and linter of the text format, which the
# metrics tests run every /metrics through (promtool check metrics). Debian ships it only in the
# prometheus package (about 96 MB installed), which also installs the Prometheus server and enables
# its service: installed without recommends (no node exporter), and the server stopped and disabled
# where systemd runs, so nothing listens on :9090 or writes to /var/lib/prometheus.
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing Debian package prometheus (for promtool)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
  else
    echo "test: missing promtool (run as root to install Debian package prometheus)" >&2
    exit 1
  fi
fi

# npm packages, exactly as pinned in package-lock.json; skipped when the lock file has not changed.
stamp=node_modules/.continuum-lock-stamp
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  echo "test: npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_hash" > "$stamp"
fi

echo "test: build, typecheck, lint, format"
npm run --silent build
npm run --silent typecheck
npm run --silent lint
npm run --silent format:check

echo "test: unit, property, contract and simulation tests"
npm run --silent test:unit
echo "test: integration tests (real processes on loopback)"
npm run --silent test:integration
