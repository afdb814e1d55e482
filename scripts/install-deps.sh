#!/usr/bin/env bash
# Installs every Debian package vtpmca needs to build, test and run.
# Usage: scripts/install-deps.sh   (as root, or with sudo available)
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format
  libssl-dev openssl
  libmicrohttpd-dev
  libsqlite3-dev sqlite3
  libcbor-dev
  libtpms-dev
  libcmocka-dev
  libjansson-dev
  libcurl4-openssl-dev
  libpq-dev
  curl ca-certificates
  # used by the tests: shell tests parse JSON with python3, a unit test reads bytes with xxd
  python3 xxd git
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
