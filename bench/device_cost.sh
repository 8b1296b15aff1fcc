#!/usr/bin/env bash
# What one request costs hr-device, counted rather than timed: the CPU
# instructions (user and kernel), cycles, socket system calls and context
# switches (waiting, or preempted while it could run) its threads spend per
# request while hr-load drives a fixed number of requests of
# bench/workloads/cloud_us.textproto through it to one synthetic hr-cloud backend
# (16 closed-loop streams, or an open loop at RPS requests/s).
# Instruction counts hardly move with the load of the machine, so they show a
# change of a few per cent that throughput on a shared 2-core machine hides.
# PROXY=nginx counts nginx's workers (grpc_pass, as in proxy_bench.sh) instead.
# The backend is a shared_stream one; SHARED_STREAM=0 counts a backend call per request.
#
#   bench/device_cost.sh                      (after scripts/setup.sh; installs perf)
#   REQUESTS=50000 DEVICE_FLAGS=--io_threads=2 bench/device_cost.sh
#   DEVICE_LISTEN=unix:/tmp/router.sock bench/device_cost.sh   (apps over a Unix socket)
#   RPS=500 REQUESTS=5000 bench/device_cost.sh   (requests one at a time, as at moderate load)
#   PROXY=nginx bench/device_cost.sh             (the same counts for nginx; installs it)
#   SHARED_STREAM=0 bench/device_cost.sh         (a gRPC call to the backend per request)
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."

BIN=${HR_BIN:-build/bin}
OUT=build/bench/device_cost
REQUESTS=${REQUESTS:-20000}
PROXY=${PROXY:-device}
RPS=${RPS:-}
WORKLOAD=bench/workloads/cloud_us.textproto
POLICY=deploy/local/policy.textproto
rm -rf "$OUT"; mkdir -p "$OUT"
source bench/common.sh
need_binaries hr-cloud hr-device hr-load
if ! command -v perf >/dev/null; then
  need_commands linux-perf
fi

case $PROXY in
  device | nginx) ;;
  *) echo "error: PROXY must be device or nginx, not '$PROXY'" >&2; exit 2 ;;
esac
[[ $PROXY == nginx ]] && need_commands nginx

start_proxy_pair
if [[ $PROXY == nginx ]]; then
  start_nginx
  TARGET=(--target "$NGINX_TARGET" --api cloud)
  COUNTED=$(nginx_workers | paste -sd,) NAME="nginx (workers)"
else
  TARGET=(--target "$DEVICE_TARGET" --api router)
  COUNTED=$DEVICE_PID NAME=hr-device
fi
MODE=(--mode closed --concurrency 16)
[[ -n $RPS ]] && MODE=(--mode open --rps "$RPS")

load() { hr_load "${TARGET[@]}" "$@"; }
echo "==> warming up"
load --mode closed --concurrency 16 --duration 2s >/dev/null
echo "==> $REQUESTS requests (${MODE[*]}) under perf stat"
EVENTS=instructions:u,instructions:k,cycles
# System calls too, where the kernel lets perf trace them.
# (grep -c reads all of perf's output: -q would stop early and fail the pipe.)
if perf list 2>/dev/null | grep -c syscalls:sys_enter_sendmsg >/dev/null; then
  EVENTS+=,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_epoll_wait
  # nginx writes with writev and reads with recv.
  [[ $PROXY == nginx ]] && EVENTS+=,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom
fi
# switches KIND: thread_switches of the counted processes.
# shellcheck disable=SC2086
switches() { thread_switches "$1" ${COUNTED//,/ }; }
perf stat -x, -e "$EVENTS" -p "$COUNTED" -o "$OUT/perf.txt" &
PERF_PID=$!
sleep 0.5  # perf attaches
vol0=$(switches voluntary) invol0=$(switches nonvoluntary)
load "${MODE[@]}" --requests "$REQUESTS" --json "$OUT/load.json" >/dev/null
vol1=$(switches voluntary) invol1=$(switches nonvoluntary)
kill -INT "$PERF_PID"; wait "$PERF_PID" || true
ok=$(sed -n 's/.*"ok": *"\{0,1\}\([0-9]*\).*/\1/p' "$OUT/load.json" | head -1)
[[ $ok == "$REQUESTS" ]] || { echo "error: only $ok of $REQUESTS requests succeeded" >&2; exit 1; }
awk -F, -v n="$REQUESTS" -v proxy="$NAME" '
  $3 == "instructions:u" { u = $1 } $3 == "instructions:k" { k = $1 } $3 == "cycles" { c = $1 }
  $3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ { sub(/^syscalls:sys_enter_/, "", $3); sys[$3] = $1 }
  END {
    counted = u != "" && u != "<not supported>"
    if (!counted && length(sys) == 0) { print "error: perf counted nothing (perf_event_paranoid?)" > "/dev/stderr"; exit 1 }
    printf "%s per request, %d requests:\n", proxy, n
    if (counted) {
      printf "  instructions  %8.0f user  %8.0f kernel  %8.0f total\n", u / n, k / n, (u + k) / n
      printf "  cycles        %8.0f\n", c / n
    } else {
      # A virtual machine without a virtual PMU: the system-call tracepoints still count.
      print "  instructions and cycles: not counted (this CPU gives perf no hardware counters)"
    }
    if (length(sys) > 0) {
      printf "  system calls "
      for (name in sys) printf "  %s %.2f", name, sys[name] / n
      printf "\n"
    }
  }' "$OUT/perf.txt"
awk -v n="$REQUESTS" -v v=$((vol1 - vol0)) -v i=$((invol1 - invol0)) \
  'BEGIN { printf "  context switches  %.2f waiting  %.2f preempted\n", v / n, i / n }'
