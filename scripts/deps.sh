#!/usr/bin/env bash
# deps.sh - install the Debian packages that building and testing Ekiden need.
#
# Usage: scripts/deps.sh [extra-package ...]
#
# Installs only what is missing (so a machine that has everything makes no network
# call), with one `apt-get update` first. Works as root, or through sudo when it is
# available. Extra package names on the command line are added to the base list, so
# that other make targets (bench, bindings) can ask for theirs through this one script.
set -euo pipefail

packages=(
  make cmake ninja-build gcc g++ clang-format pkg-config
  libcmocka-dev libffi-dev libuv1-dev liburing-dev
  socat netcat-openbsd python3 python3-venv python3-dev lua5.4 liblua5.4-dev luajit libluajit-5.1-dev
  luarocks
  spin curl wrk
  clang libclang-rt-dev
  libhiredis-dev redis-server redis-tools
  "$@"
)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps.sh: not a Debian-like system (no dpkg-query); install by hand: ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "deps.sh: missing packages and neither root nor sudo: ${missing[*]}" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}"
