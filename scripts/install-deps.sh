#!/usr/bin/env bash
# Install the Debian/Ubuntu packages that building and testing ssimd need, and only those that
# are missing: a machine that has them all is left alone (no apt-get update, no sudo prompt).
# Supported: Debian 12, Ubuntu 24.04. Uses sudo when not run as root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libvips-dev libmicrohttpd-dev libjansson-dev libuv1-dev libcmocka-dev libglib2.0-dev
  libcurl4-openssl-dev python3 python3-dev
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing ${missing[*]}, and there is no apt-get here; install them by hand" >&2
  exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2
    exit 1
  fi
  as_root=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
