#!/usr/bin/env bash
# Where a request's time goes inside hr-device, timed on its serving thread with
# perf's system-call tracepoints (and, as root, a probe on where hr-device's own
# code takes the request over) while hr-load sends bench/workloads/cloud_us.textproto
# through it, in an open loop, to one synthetic hr-cloud backend:
#   request  from the read of the app's bytes to the write of the request to the
#            backend, split at GenerateCall::OnRequest into gRPC's server side
#            (frames parsed, call matched, message decoded) and the rest (ours:
#            validation, classification, decision, redaction; then the backend write)
#   answer   from the read of a backend message to its write to the app, once for
#            each message the backend sent (their count per request is printed)
# Prints the median, 10th and 90th percentile of each in microseconds. The time
# spent waiting to be woken, on the backend, and in the app is outside these legs.
#
#   bench/device_legs.sh                     (after scripts/setup.sh; installs perf)
#   RPS=500 REQUESTS=3000 bench/device_legs.sh
#   SHARED_STREAM=0 bench/device_legs.sh     (a gRPC call to the backend per request)
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."

BIN=${HR_BIN:-build/bin}
OUT=build/bench/device_legs
RPS=${RPS:-500}
REQUESTS=${REQUESTS:-3000}
WORKLOAD=bench/workloads/cloud_us.textproto
POLICY=deploy/local/policy.textproto
rm -rf "$OUT"; mkdir -p "$OUT"
source bench/common.sh
need_binaries hr-cloud hr-device hr-load
command -v perf >/dev/null || need_commands linux-perf
command -v ss >/dev/null || need_commands iproute2
need_commands jq

start_proxy_pair
load() { hr_load --target "$DEVICE_TARGET" --api router "$@"; }
echo "==> warming up"
load --mode closed --concurrency 4 --duration 2s >/dev/null
# The device's socket to the backend: the one connected to the backend's port.
BACKEND_FD=$(ss -tnpH "dst 127.0.0.1:$BACKEND_PORT" |
  sed -n "s/.*pid=$DEVICE_PID,fd=\([0-9]*\).*/\1/p" | head -1)
[[ -n $BACKEND_FD ]] || { echo "error: no connection from hr-device to the backend" >&2; exit 1; }

EVENTS=syscalls:sys_exit_recvmsg,syscalls:sys_enter_sendmsg,syscalls:sys_exit_epoll_wait
PROBE=""
if [[ $(id -u) -eq 0 ]]; then
  addr=$(nm "$BIN/hr-device" | awk '/GenerateCall9OnRequestEb$/ {a = $1} END {print a}')
  if [[ -n $addr ]] && perf probe -q -x "$BIN/hr-device" -a "hr_legs_onrequest=0x$addr" 2>/dev/null; then
    PROBE=probe_hr:hr_legs_onrequest
    EVENTS+=,$PROBE
    trap 'perf probe -q -d "probe_hr:hr_legs_*" 2>/dev/null || true; cleanup' EXIT
  fi
fi

echo "==> $REQUESTS requests at $RPS/s under perf record"
perf record -q -p "$DEVICE_PID" -o "$OUT/perf.data" -e "$EVENTS" 2>"$OUT/perf.log" &
PERF_PID=$!
sleep 1  # perf attaches
load --mode open --rps "$RPS" --requests "$REQUESTS" --json "$OUT/load.json" >/dev/null
kill -INT "$PERF_PID"; wait "$PERF_PID" || true
perf script -i "$OUT/perf.data" -F tid,time,event,trace >"$OUT/events.txt" 2>/dev/null

# One line per event of the thread that wrote most (the serving thread):
# time in microseconds, event, and the socket (sendmsg) or bytes read (recvmsg).
awk '
  function hex(s,   i, c, v) {  # "0x1a" -> 26 (mawk has no strtonum)
    s = tolower(s); sub(/^0x/, "", s); v = 0
    for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)); if (!c) break; v = v * 16 + c - 1 }
    return v
  }
  { sub(/:$/, "", $2); t = sprintf("%.1f", $2 * 1e6); ev = $3; sub(/:$/, "", ev); sub(/^syscalls:/, "", ev) }
  ev == "sys_enter_sendmsg" { fd = $5; sub(/,$/, "", fd); n[$1]++; print $1, t, "send", hex(fd); next }
  ev == "sys_exit_recvmsg" { print $1, t, "recv", hex($4); next }
  ev == "sys_exit_epoll_wait" { print $1, t, "wake", 0; next }
  { print $1, t, "ours", 0 }
  END { for (tid in n) if (n[tid] > best) { best = n[tid]; main = tid }; print main > "/dev/stderr" }
' "$OUT/events.txt" 2>"$OUT/main_tid" >"$OUT/lines.txt"
MAIN=$(cat "$OUT/main_tid")

# Each read of more than 30 bytes (a message; a WINDOW_UPDATE frame is 13 bytes and
# gRPC sends them in pairs, 26) up to the first write after it, before the thread
# sleeps again; by which socket that write went to. A backend answers a request in
# more than one message (the first text, then the rest with done), so there is more
# than one answer leg per request.
awk -v main="$MAIN" -v backend="$BACKEND_FD" -v out="$OUT" '
  $1 != main { next }
  $3 == "recv" { open_ = ($4 > 30); start = $2; ours = 0; next }
  $3 == "wake" { open_ = 0; next }
  $3 == "ours" && open_ { ours = $2; next }
  $3 == "send" && open_ {
    if ($4 == backend) {
      print $2 - start > (out "/request.txt")
      if (ours > 0) { print ours - start > (out "/grpc.txt"); print $2 - ours > (out "/ours.txt") }
    } else {
      print $2 - start > (out "/answer.txt")
    }
    open_ = 0
  }
' "$OUT/lines.txt"

stats() {  # file: median p10 p90 count
  sort -g "$1" | awk '{v[NR] = $1} END {
    printf "%6.0f %6.0f %6.0f %8d\n", v[int((NR + 1) / 2)], v[int(NR * 0.1) + 1], v[int(NR * 0.9)], NR }'
}
[[ -s $OUT/request.txt && -s $OUT/answer.txt ]] || { echo "error: no requests seen; see $OUT/events.txt" >&2; exit 1; }
p50=$(jq -r '.latency.p50_us' "$OUT/load.json")
echo
echo "hr-device at $RPS requests/s, $REQUESTS requests (hr-load p50 $p50 us), microseconds:"
printf "  %-58s %6s %6s %6s %8s\n" "" median p10 p90 count
printf "  %-58s %s\n" "request: app's bytes read -> request written to the backend" "$(stats "$OUT/request.txt")"
if [[ -s $OUT/ours.txt ]]; then
  printf "  %-58s %s\n" "  of it gRPC's server side, up to GenerateCall::OnRequest" "$(stats "$OUT/grpc.txt")"
  printf "  %-58s %s\n" "  of it from OnRequest to the backend write" "$(stats "$OUT/ours.txt")"
fi
printf "  %-58s %s\n" "answer: a backend message read -> its write to the app" "$(stats "$OUT/answer.txt")"
awk -v n="$(wc -l <"$OUT/answer.txt")" -v r="$(wc -l <"$OUT/request.txt")" \
  'BEGIN { printf "  answer legs per request: %.2f\n", n / r }'
