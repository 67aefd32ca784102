#!/usr/bin/env bash
# deps.sh - install the Debian packages diffaug needs, or print the exact apt-get line.
#   deps.sh core   build + tests: C toolchain, libpng, libjpeg-turbo, zlib, Check, pkg-config
#   deps.sh bench  benchmark peer: OpenBLAS
#   deps.sh fuzz   clang (libFuzzer)
set -eu
case "${1:-core}" in
  core)  pkgs="build-essential pkg-config libpng-dev libjpeg62-turbo-dev zlib1g-dev check libsubunit-dev" ;;
  bench) pkgs="libopenblas-dev" ;;
  fuzz)  pkgs="clang" ;;
  *) echo "deps.sh: unknown set '$1' (core, bench, fuzz)" >&2; exit 2 ;;
esac
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps.sh: not a Debian system; make sure these are installed: $pkgs" >&2
  exit 0
fi
missing=""
for p in $pkgs; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || true
  apt-get install -y -q --no-install-recommends $missing
else
  echo "deps: missing Debian packages:$missing"
  echo "deps: install them with:"
  echo "  sudo apt-get install -y$missing"
  exit 1
fi
