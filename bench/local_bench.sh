#!/usr/bin/env bash
# The local model under load, through the router and without it:
#   1. llama.cpp's own speed (bench/llama_speed: the same model, threads, prompt
#      and answer length, no router);
#   2. the same requests through hr-device, one at a time (closed loop, 1 stream):
#      tokens per second as the app sees them;
#   3. more requests than the pool can take (open loop at OVER_RPS/s, about twice
#      what one slot serves; 1 slot, a queue of QUEUE): requests beyond the queue
#      must end at once with RESOURCE_EXHAUSTED, queued ones wait their turn, none
#      hangs.
#
#   bench/local_bench.sh       (after scripts/setup.sh; installs jq if missing)
#   MODEL=path.gguf THREADS=2 TOKENS=32 bench/local_bench.sh
#
# Client and router share this machine's cores. Output in build/bench/local/.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."

BIN=${HR_BIN:-build/bin}
OUT=build/bench/local
MODEL=${MODEL:-build/models/tiny-qwen2.gguf}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-32}
DURATION=${DURATION:-10s}
OVER_RPS=${OVER_RPS:-15}
QUEUE=${QUEUE:-2}
WORKLOAD=bench/workloads/local.textproto
rm -rf "$OUT"; mkdir -p "$OUT"
source bench/common.sh
need_commands jq

echo "==> 1. llama.cpp directly"
"$BIN/llama_speed" --model "$MODEL" --threads "$THREADS" --tokens "$TOKENS" --runs 20 \
  | tee "$OUT/llama_speed.txt"

: >"$OUT/backends.textproto"  # no cloud: everything here stays local
"$BIN/hr-device" --listen 127.0.0.1:0 --port_file "$OUT/device.port" \
  --backends "$OUT/backends.textproto" --model "$MODEL" --local_threads "$THREADS" \
  --local_slots 1 --local_max_queue "$QUEUE" --log_level warn >"$OUT/device.log" 2>&1 &
DEVICE=$!
PIDS+=($DEVICE); wait_port_file "$OUT/device.port" $DEVICE device
TARGET=127.0.0.1:$(cat "$OUT/device.port")

echo "==> 2. through hr-device, one stream, $DURATION"
"$BIN/hr-load" --target "$TARGET" --workload "$WORKLOAD" --concurrency 1 --duration "$DURATION" \
  --progress=false --json "$OUT/one.json" | tee "$OUT/one.txt"

echo "==> 3. $OVER_RPS requests/s against 1 slot and a queue of $QUEUE, $DURATION"
"$BIN/hr-load" --target "$TARGET" --workload "$WORKLOAD" --mode open --rps "$OVER_RPS" \
  --duration "$DURATION" --progress=false --json "$OUT/overload.json" | tee "$OUT/overload.txt"

echo
echo "==> summary"
direct=$(awk '/^request:/ {print $2}' "$OUT/llama_speed.txt")
routed=$(jq -r '.tokens_per_second' "$OUT/one.json")
awk -v d="$direct" -v r="$routed" 'BEGIN {
  printf "llama.cpp directly:   %8.1f tokens/s (whole request, prompt included)\n", d
  printf "through hr-device:    %8.1f tokens/s (one stream)   ratio %.2f\n", r, r / d }'
jq -r '.statuses[] | "overload: \(.code) \(.count) requests, p50 \(.latency.p50_us|tonumber/1000) ms, max \(.latency.max_us|tonumber/1000) ms"' "$OUT/overload.json"
