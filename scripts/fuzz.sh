#!/usr/bin/env bash
# Searches for inputs that break hr-device, with libFuzzer under AddressSanitizer
# and UndefinedBehaviorSanitizer, starting from the committed corpora
# (tests/fuzz/corpus/<target>/, not modified):
#   request_fuzz  what apps send: validation, classification, decision, redaction
#   policy_fuzz   what operators write: the policy and backends files
#
#   scripts/fuzz.sh                              (after scripts/setup.sh; 60 s each)
#   FUZZ_SECONDS=600 FUZZ_TARGETS=request_fuzz scripts/fuzz.sh
#
# Builds with clang into build-fuzz/ (installs Debian's clang if missing). New
# interesting inputs go to build-fuzz/corpus/<target>/; a failing input is written
# to build-fuzz/<target>-crash-* and its check message printed. Copy an input
# worth keeping into tests/fuzz/corpus/<target>/: the test suite
# (<target>_replay) runs them all.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${FUZZ_SECONDS:-60}
TARGETS=(${FUZZ_TARGETS:-request_fuzz policy_fuzz})

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
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DHR_FUZZ=ON -DHR_JEMALLOC=OFF \
    -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" >/dev/null
fi
echo "==> building ${TARGETS[*]}"
cmake --build build-fuzz --target "${TARGETS[@]}"
for t in "${TARGETS[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  echo "==> fuzzing $t for ${SECONDS_TO_RUN} s"
  "build-fuzz/bin/$t" -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/$t-" \
    "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t"
done
