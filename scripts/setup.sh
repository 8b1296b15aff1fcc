#!/usr/bin/env bash
# Sets up everything hybrid-router needs on Debian bookworm and builds it:
#   1. Debian packages (only those missing),
#   2. llama.cpp from the npm package node-llama-cpp (checksum-pinned),
#   3. the CMake build into build/ (binaries in build/bin/), which also makes the
#      tiny test model build/models/tiny-qwen2.gguf.
# Safe to run again: each step reuses what is already there.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

PACKAGES=(build-essential cmake ninja-build pkg-config git ca-certificates
  nodejs npm
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libgtest-dev libgmock-dev libre2-dev libbenchmark-dev
  libjemalloc-dev libssl-dev nlohmann-json3-dev
  python3 python3-yaml
  nginx jq)  # the benchmark scripts: the proxy they compare with, their reports

missing=()
for p in "${PACKAGES[@]}"; do
  # npm may come from elsewhere (e.g. a newer Node.js): only require it when absent.
  if [[ $p == npm || $p == nodejs ]] && command -v npm >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [[ " ${missing[*]} " == *" nginx "* ]]; then
    # Installing nginx may start Debian's default site on port 80 and enable it at
    # boot; the benchmarks run nginx with a configuration and ports of their own.
    log "nginx: stopping and disabling the service Debian sets up (the benchmarks run their own)"
    if [[ -d /run/systemd/system ]]; then
      $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
    else
      $SUDO service nginx stop >/dev/null 2>&1 || true
      $SUDO update-rc.d nginx disable >/dev/null 2>&1 || true
    fi
  fi
else
  log "Debian packages: all present"
fi

scripts/fetch_llama.sh

JOBS=${JOBS:-$(nproc)}
if [[ ! -f build/build.ninja ]]; then
  log "configuring build/"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
fi
log "building (first time: llama.cpp included, a few minutes on 2 cores)"
cmake --build build -j "$JOBS"
log "build ready: $(ls build/bin | tr '\n' ' ')"
