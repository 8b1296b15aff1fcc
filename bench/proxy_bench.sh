#!/usr/bin/env bash
# The router against a plain proxy, in one run: the same hr-load workload
# (bench/workloads/cloud_us.textproto: small prompts, 8-token answers, US locales
# that go to the cloud) against one synthetic hr-cloud backend
#   (a) direct   straight at the backend (CloudInference, claim from the policy),
#   (b) device   through hr-device (Router: validate, classify, decide, forward),
#                the backend marked shared_stream (one GenerateStream for all calls),
#   (c) nginx    through nginx (Debian's package) with grpc_pass to the backend,
#   and device-call: a second hr-device whose backend is not shared_stream (a
#                gRPC call to the backend per request), for comparison.
# Each round runs a closed loop (throughput at CONCURRENCY streams, and the CPU
# time the proxy and the backend spent per request) and an open loop at RPS
# requests/s (latency at moderate load) against a, b and c in turn; then the open
# loop side by side: a, b and c at once, at RPS/3 each, so that the three see the
# same moment of a noisy machine. The table shows the median over ROUNDS rounds
# and the ratios b/a and b/c (and device-call's).
#
#   bench/proxy_bench.sh            (after scripts/setup.sh; installs nginx and jq if missing)
#   ROUNDS=3 DURATION=10s CONCURRENCY=16 RPS=500 bench/proxy_bench.sh
#   DEVICE_FLAGS=--io_threads=2 bench/proxy_bench.sh     (extra hr-device flags)
#   UNIX_SOCKETS=1 bench/proxy_bench.sh   (the hr-devices and nginx serve the client on
#                                          Unix sockets; the backend stays on TCP)
#
# Everything runs on this machine: client, router, proxy and backend share its
# cores. Results and logs go to build/bench/proxy/.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."

BIN=${HR_BIN:-build/bin}
OUT=build/bench/proxy
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
RPS=${RPS:-500}
WORKLOAD=bench/workloads/cloud_us.textproto
POLICY=deploy/local/policy.textproto

rm -rf "$OUT"; mkdir -p "$OUT"
source bench/common.sh
need_binaries hr-cloud hr-device hr-load
need_commands nginx jq
if [[ ${UNIX_SOCKETS:-0} == 1 ]]; then
  # The proxies serve on Unix sockets, as apps on a phone reach hr-device; the
  # backend stays on loopback TCP, as a remote one is reached over the network.
  SOCKETS=$(cd "$OUT" && pwd)
  DEVICE_LISTEN=unix:$SOCKETS/device.sock SHARED_STREAM=1 start_proxy_pair
  start_device device-call "unix:$SOCKETS/device-call.sock" false
  NGINX_LISTEN=unix:$SOCKETS/nginx.sock start_nginx
else
  SHARED_STREAM=1 start_proxy_pair
  start_device device-call 127.0.0.1:0 false
  NGINX_LISTEN='' start_nginx
fi
CALL_DEVICE_PID=$STARTED_PID
CALL_DEVICE_TARGET=$STARTED_TARGET

# CPU time (user + system, in clock ticks) of a process and its children threads;
# for nginx, the master and its workers.
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s+=$1} END {print s+0}'; }
proxy_pids() {  # name
  case $1 in
    direct) ;;
    device) echo "$DEVICE_PID" ;;
    device-call) echo "$CALL_DEVICE_PID" ;;
    nginx) echo "$NGINX_PID" $(nginx_workers) ;;
  esac
}
HZ=$(getconf CLK_TCK)

declare -A TARGET=([direct]="127.0.0.1:$BACKEND_PORT --api cloud"
                   [device]="$DEVICE_TARGET --api router"
                   [device-call]="$CALL_DEVICE_TARGET --api router"
                   [nginx]="$NGINX_TARGET --api cloud")
NAMES=(direct device device-call nginx)
PAIRED=(direct device nginx)
SIDE_RPS=$(awk -v r="$RPS" -v n="${#PAIRED[@]}" 'BEGIN { printf "%g", r / n }')

load() {  # name json-out extra-flags...
  local name=$1 out=$2; shift 2
  # shellcheck disable=SC2086
  hr_load --target ${TARGET[$name]} --json "$out" "$@" >/dev/null
}

echo "==> warming up"
for n in "${NAMES[@]}"; do load "$n" "$OUT/warmup-$n.json" --duration 2s --concurrency "$CONCURRENCY"; done

for r in $(seq 1 "$ROUNDS"); do
  echo "==> round $r/$ROUNDS: closed loop ($CONCURRENCY streams), open loop ($RPS/s), $DURATION each"
  for n in "${NAMES[@]}"; do
    # shellcheck disable=SC2046
    b0=$(ticks "$BACKEND_PID"); p0=$(ticks $(proxy_pids "$n")); s0=$(thread_switches all $(proxy_pids "$n"))
    load "$n" "$OUT/closed-$r-$n.json" --mode closed --concurrency "$CONCURRENCY" --duration "$DURATION"
    # shellcheck disable=SC2046
    b1=$(ticks "$BACKEND_PID"); p1=$(ticks $(proxy_pids "$n")); s1=$(thread_switches all $(proxy_pids "$n"))
    ok=$(jq -r '.ok|tonumber' "$OUT/closed-$r-$n.json")
    awk -v b=$((b1 - b0)) -v p=$((p1 - p0)) -v s=$((s1 - s0)) -v ok="$ok" -v hz="$HZ" \
      'BEGIN { printf "%.1f %.1f %.2f\n", p * 1e6 / hz / ok, b * 1e6 / hz / ok, s / ok }' \
      >"$OUT/cpu-$r-$n.txt"
    load "$n" "$OUT/open-$r-$n.json" --mode open --rps "$RPS" --duration "$DURATION"
  done
  # Side by side: the same total rate, split over the three targets at once.
  side=()
  for n in "${PAIRED[@]}"; do
    load "$n" "$OUT/side-$r-$n.json" --mode open --rps "$SIDE_RPS" --duration "$DURATION" &
    side+=($!)
  done
  for p in "${side[@]}"; do wait "$p"; done
done

# median FIELD-EXPRESSION FILES...: the median over rounds of a jq expression.
median() {
  local expr=$1; shift
  for f in "$@"; do jq -r "$expr" "$f"; done | mid
}
failures() { for f in "$@"; do jq -r '(.failed|tonumber) + (.residency_violations|tonumber)' "$f"; done | awk '{s+=$1} END {print s+0}'; }

declare -A TPUT P50 P99 OPEN_TPUT FAILED PROXY_CPU BACKEND_CPU PROXY_SW
for n in "${NAMES[@]}"; do
  TPUT[$n]=$(median '.throughput_rps' "$OUT"/closed-*-"$n".json)
  P50[$n]=$(median '(.latency.p50_us|tonumber)' "$OUT"/open-*-"$n".json)
  P99[$n]=$(median '(.latency.p99_us|tonumber)' "$OUT"/open-*-"$n".json)
  OPEN_TPUT[$n]=$(median '.throughput_rps' "$OUT"/open-*-"$n".json)
  FAILED[$n]=$(failures "$OUT"/closed-*-"$n".json "$OUT"/open-*-"$n".json)
  PROXY_CPU[$n]=$(cat "$OUT"/cpu-*-"$n".txt | cut -d' ' -f1 | mid)
  BACKEND_CPU[$n]=$(cat "$OUT"/cpu-*-"$n".txt | cut -d' ' -f2 | mid)
  PROXY_SW[$n]=$(cat "$OUT"/cpu-*-"$n".txt | cut -d' ' -f3 | mid)
done
declare -A SIDE_P50
for n in "${PAIRED[@]}"; do
  SIDE_P50[$n]=$(median '(.latency.p50_us|tonumber)' "$OUT"/side-*-"$n".json)
  FAILED[$n]=$((FAILED[$n] + $(failures "$OUT"/side-*-"$n".json)))
done

{
  echo
  echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r)"
  echo "client, backend, the hr-devices and nginx share these cores; medians of $ROUNDS rounds"
  echo
  printf '%-11s %13s %17s %18s %19s %13s %13s %7s\n' "" "closed: ok/s" "proxy CPU us/req" \
    "proxy switches/req" "backend CPU us/req" "open: p50 us" "open: p99 us" "failed"
  for n in "${NAMES[@]}"; do
    printf '%-11s %13.0f %17.1f %18.2f %19.1f %13d %13d %7d\n' "$n" "${TPUT[$n]}" \
      "${PROXY_CPU[$n]}" "${PROXY_SW[$n]}" "${BACKEND_CPU[$n]}" "${P50[$n]}" "${P99[$n]}" \
      "${FAILED[$n]}"
  done
  echo
  awk -v b="${TPUT[device]}" -v a="${TPUT[direct]}" -v c="${TPUT[nginx]}" \
    'BEGIN { printf "throughput  device/direct %.2f   device/nginx %.2f\n", b/a, b/c }'
  awk -v b="${P50[device]}" -v a="${P50[direct]}" -v c="${P50[nginx]}" \
    'BEGIN { printf "p50 latency device-direct %+d us   device-nginx %+d us\n", b-a, b-c }'
  awk -v b="${SIDE_P50[device]}" -v a="${SIDE_P50[direct]}" -v c="${SIDE_P50[nginx]}" -v r="$SIDE_RPS" \
    'BEGIN { printf "side by side (%s/s each, at once): p50 direct %d us, device %d us, nginx %d us; device-direct %+d us   device-nginx %+d us\n", r, a, b, c, b-a, b-c }'
  awk -v b="${TPUT[device-call]}" -v a="${TPUT[direct]}" -v c="${TPUT[nginx]}" \
    -v p="${P50[device-call]}" -v pa="${P50[direct]}" \
    'BEGIN { printf "device-call: throughput /direct %.2f /nginx %.2f, p50 %+d us over direct\n", b/a, b/c, p-pa }'
} | tee "$OUT/summary.txt"
