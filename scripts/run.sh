#!/usr/bin/env bash
# One entry point for people and CI:
#   scripts/run.sh demo   set up (packages, llama.cpp, build, tiny model), run the demo
#   scripts/run.sh test   the same set-up, then the whole test suite (ctest)
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."
cmd=${1:-}
case "$cmd" in
  demo)
    scripts/setup.sh
    exec deploy/local/topology.sh demo
    ;;
  test)
    scripts/setup.sh
    echo "==> running the test suite"
    exec ctest --test-dir build --output-on-failure -j "${CTEST_JOBS:-2}" --timeout 300
    ;;
  *)
    echo "usage: scripts/run.sh demo|test" >&2
    exit 2
    ;;
esac
