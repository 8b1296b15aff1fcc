#!/usr/bin/env bash
# Searches for inputs that break hr-device's request path, with libFuzzer:
# tests/fuzz/request_fuzz.cc under AddressSanitizer and UndefinedBehaviorSanitizer,
# starting from the committed corpus (tests/fuzz/corpus/request, not modified).
#
#   scripts/fuzz.sh            (after scripts/setup.sh; 60 s)
#   FUZZ_SECONDS=600 scripts/fuzz.sh
#
# Builds with clang into build-fuzz/ (installs Debian's clang if missing). New
# interesting inputs go to build-fuzz/corpus/; a failing input is written to
# build-fuzz/crash-* and its check message printed. Copy an input worth keeping
# into tests/fuzz/corpus/request/: the test suite (fuzz_replay) runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${FUZZ_SECONDS:-60}

if ! command -v clang++ >/dev/null; then
  echo "==> installing clang"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang
fi
[[ -d third_party/llama.cpp ]] || scripts/fetch_llama.sh
if [[ ! -f build-fuzz/build.ninja ]]; then
  echo "==> configuring build-fuzz/ (clang, sanitizers)"
  SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DHR_FUZZ=ON \
    -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" >/dev/null
fi
echo "==> building request_fuzz"
cmake --build build-fuzz --target request_fuzz
mkdir -p build-fuzz/corpus
echo "==> fuzzing for ${SECONDS_TO_RUN} s"
build-fuzz/bin/request_fuzz -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 \
  -print_final_stats=1 -artifact_prefix=build-fuzz/ build-fuzz/corpus tests/fuzz/corpus/request
