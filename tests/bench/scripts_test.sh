#!/usr/bin/env bash
# The benchmark scripts run to their end at their smallest settings: each exits 0,
# prints its summary, and no request in it failed or left its regions. Their
# numbers are not looked at (benchmarks measure; tests do not time).
#
#   tests/bench/scripts_test.sh      (after scripts/setup.sh; ctest runs it as
#                                     bench_scripts)
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/../.."
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT
status=0

# run NAME CMD...: runs a script with its output in $LOG/NAME; says whether it
# exited 0.
run() {
  local name=$1; shift
  echo "==> $name: $*"
  if ! env "$@" >"$LOG/$name" 2>&1; then
    echo "FAILED: $name exited non-zero; its output:"; cat "$LOG/$name"; status=1; return 1
  fi
}
# expect NAME PATTERN: the output of NAME has a line matching PATTERN (grep -E).
expect() {
  grep -Eq -- "$2" "$LOG/$1" && return 0
  echo "FAILED: $1 printed no line matching '$2'; its output:"; cat "$LOG/$1"; status=1
}

if run proxy_bench ROUNDS=1 DURATION=1s bench/proxy_bench.sh; then
  expect proxy_bench '^throughput  device/direct [0-9.]+   device/nginx [0-9.]+$'
  expect proxy_bench '^side by side \([0-9.]+/s each, at once\): p50 direct [0-9]+ us, device [0-9]+ us, nginx [0-9]+ us; device-direct [-+][0-9]+ us   device-nginx [-+][0-9]+ us$'
  # The table's last column counts the failed requests of each target.
  for target in direct device device-call nginx; do expect proxy_bench "^$target +.* 0$"; done
fi
# The same build on both sides; it exits non-zero itself on a failure or violation.
BIN=${HR_BIN:-build/bin}
if run device_ab ROUNDS=1 DURATION=1s bench/device_ab.sh "$BIN" "$BIN"; then
  expect device_ab '^medians of 1 rounds, open loop'
  expect device_ab '^failed or served outside their regions: 0$'
fi
if run soak WARMUP=1s SOAK=3s RPS=50 bench/soak.sh; then
  expect soak '^hr-device RSS: start [0-9]+ kB, end [0-9]+ kB'
  expect soak ' [0-9]+ ok, 0 failed'
  expect soak '^residency violations: 0 '
fi
if run local_bench DURATION=2s bench/local_bench.sh; then
  expect local_bench '^through hr-device: +[0-9.]+ tokens/s'
  # Twice what the one slot serves: some wait their turn, the rest are refused.
  expect local_bench '^overload: RESOURCE_EXHAUSTED [0-9]+ requests'
  if grep -E '^overload: ' "$LOG/local_bench" | grep -Evq '^overload: (OK|RESOURCE_EXHAUSTED) '; then
    echo "FAILED: an overloaded request ended otherwise than OK or RESOURCE_EXHAUSTED:"
    cat "$LOG/local_bench"; status=1
  fi
fi
# The perf-based ones only where perf is installed and may trace system calls (it
# is not part of scripts/setup.sh).
if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_sendmsg -o /dev/null true 2>/dev/null; then
  if run device_cost REQUESTS=500 bench/device_cost.sh; then
    expect device_cost '^  system calls   epoll_wait [0-9.]+  recvmsg [0-9.]+  sendmsg [0-9.]+$'
  fi
  if run device_legs RPS=100 REQUESTS=200 bench/device_legs.sh; then
    expect device_legs '^  answer: a backend message read -> its write to the app +[0-9]+'
    expect device_legs '^  answer legs per request: [0-9.]+$'
  fi
else
  echo "==> device_cost, device_legs: skipped (no perf that may trace system calls here)"
fi
exit $status
