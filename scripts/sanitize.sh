#!/usr/bin/env bash
# The whole test suite under AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer: every binary, llama.cpp included, built into
# build-asan/ (gcc, -O1, no jemalloc: the sanitizers bring their own allocator).
# The integration tests start the sanitized hr-device, hr-cloud, hr-load and hrctl:
# a memory error ends such a process at once, and a leak makes it exit non-zero, so
# the tests that check how it answers and exits fail (its log, in the test's
# directory, has the report).
#
#   scripts/sanitize.sh                  (after scripts/setup.sh; the first build
#                                         takes about half an hour on two cores)
#   scripts/sanitize.sh -R Topology      (extra arguments go to ctest)
#
# deploy_check is left out: it checks that the container image installs every
# library the binaries load, and sanitized binaries also load libasan and libubsan,
# which the image rightly does not have.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."
[[ -d third_party/llama.cpp ]] || scripts/fetch_llama.sh
[[ -f build/models/tiny-qwen2.gguf ]] || { echo "error: run scripts/setup.sh first" >&2; exit 1; }
if [[ ! -f build-asan/build.ninja ]]; then
  echo "==> configuring build-asan/ (AddressSanitizer, UndefinedBehaviorSanitizer)"
  SAN="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHR_JEMALLOC=OFF \
    -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
fi
echo "==> building build-asan/"
cmake --build build-asan -j "$(nproc)"
mkdir -p build-asan/models
cp -u build/models/tiny-qwen2.gguf build-asan/models/
echo "==> running the tests under the sanitizers"
cd build-asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest -j "$(nproc)" --timeout 600 --output-on-failure -E '^deploy_check$' "$@"
