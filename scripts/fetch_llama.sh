#!/usr/bin/env bash
# Fetches llama.cpp's source from the npm package node-llama-cpp, which ships it as
# a git bundle (llama/gitRelease.bundle), into third_party/llama.cpp. Both the npm
# tarball and the bundle are checked against pinned SHA-256 sums.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."

NLC_VERSION=3.22.1
NLC_TGZ_SHA256=a0d9dd80eacd2ab1cfe71aee57ac8a806487fd70b3d2a38fbec637752d9e5c5f
BUNDLE_SHA256=5f5d1105d5df040738d87b8290e5d17e7362131cdcfdb0831618e0ea528b4a51
DEST=third_party/llama.cpp
CACHE=third_party/.cache
STAMP="$DEST/.hybrid-router-source"
WANT="node-llama-cpp@$NLC_VERSION bundle:$BUNDLE_SHA256"

if [[ -f $STAMP && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "==> llama.cpp: present ($WANT)"
  exit 0
fi
echo "==> fetching llama.cpp from npm: node-llama-cpp@$NLC_VERSION"
mkdir -p "$CACHE"
tgz="$CACHE/node-llama-cpp-$NLC_VERSION.tgz"
if [[ ! -f $tgz ]] || ! echo "$NLC_TGZ_SHA256  $tgz" | sha256sum -c --quiet 2>/dev/null; then
  (cd "$CACHE" && npm pack "node-llama-cpp@$NLC_VERSION" --loglevel=error >/dev/null) || {
    echo "error: npm could not fetch node-llama-cpp@$NLC_VERSION (is the npm registry" \
      "reachable from here, and its TLS certificate trusted?)" >&2
    exit 1
  }
fi
echo "$NLC_TGZ_SHA256  $tgz" | sha256sum -c --quiet || {
  echo "error: $tgz does not match the pinned checksum" >&2; exit 1; }
tar -xzf "$tgz" -C "$CACHE" package/llama/gitRelease.bundle
bundle="$CACHE/package/llama/gitRelease.bundle"
echo "$BUNDLE_SHA256  $bundle" | sha256sum -c --quiet || {
  echo "error: $bundle does not match the pinned checksum" >&2; exit 1; }
rm -rf "$DEST"
git -c advice.detachedHead=false clone --quiet "$bundle" "$DEST"
echo "$WANT" > "$STAMP"
echo "==> llama.cpp at $DEST ($(git -C "$DEST" rev-parse --short HEAD))"
