#!/usr/bin/env bash
# Installs the system programs the test suite needs (Redis, OpenSSL, Chromium) when missing.
# Idempotent: does nothing, not even `apt-get update`, when everything is already there.
set -euo pipefail

# binary -> Debian package that provides it
declare -A pkg_of=(
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [openssl]=openssl
  [chromium]=chromium
)

missing_bins=()
missing_pkgs=()
for bin in redis-server redis-cli openssl chromium; do
  if ! command -v "$bin" >/dev/null 2>&1; then
    missing_bins+=("$bin")
    pkg="${pkg_of[$bin]}"
    # redis-server and redis-cli may both be missing; name each package once
    if [[ " ${missing_pkgs[*]-} " != *" $pkg "* ]]; then
      missing_pkgs+=("$pkg")
    fi
  fi
done

if [[ ${#missing_bins[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install_deps.sh: missing ${missing_bins[*]}; as root run:" \
    "apt-get update && apt-get install -y ${missing_pkgs[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null

# The Debian package starts a redis-server service on 6379; tests start their own servers.
if [[ " ${missing_pkgs[*]} " == *" redis-server "* ]]; then
  service redis-server stop >/dev/null 2>&1 || true
fi

status=0
for bin in "${missing_bins[@]}"; do
  if command -v "$bin" >/dev/null 2>&1; then
    echo "installed $bin (Debian package ${pkg_of[$bin]})"
  else
    echo "install_deps.sh: $bin still missing after installing ${pkg_of[$bin]}" >&2
    status=1
  fi
done
exit $status
