#!/usr/bin/env bash
# Soak: hr-device under moderate, steady load for a while (default 5 minutes),
# with its memory (RSS) sampled every 10 s. The mix spans every jurisdiction of
# deploy/local/policy.textproto (bench/workloads/mixed_regions.textproto), with
# synthetic backends in cn-north-1, eu-central-1 and us-east-1 and the synthetic
# local engine, all at a fixed token rate. The backends are `shared_stream` ones;
# SHARED_STREAM=0 gives hr-device a call to them per request instead.
#
#   bench/soak.sh                    (after scripts/setup.sh)
#   SOAK=5m RPS=200 bench/soak.sh   (WARMUP=20s before the start's RSS)
#   SHARED_STREAM=0 SOAK=5m RPS=200 bench/soak.sh
#
# Prints the RSS at the start (after a warm-up), at the end and its maximum, and
# hr-load's report (failures and residency violations must be 0). Samples and
# logs in build/bench/soak/.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."

BIN=${HR_BIN:-build/bin}
OUT=build/bench/soak
SOAK=${SOAK:-5m}
WARMUP=${WARMUP:-20s}
RPS=${RPS:-200}
TOKENS_PER_SECOND=${TOKENS_PER_SECOND:-1000}
rm -rf "$OUT"; mkdir -p "$OUT"

source bench/common.sh

: >"$OUT/backends.textproto"
STREAM=true
[[ ${SHARED_STREAM:-1} == 1 ]] || STREAM=false
for region in cn-north-1 eu-central-1 us-east-1; do
  "$BIN/hr-cloud" --region "$region" --engine synthetic \
    --synthetic_tokens_per_second "$TOKENS_PER_SECOND" --slots 64 --max_queue 256 \
    --listen 127.0.0.1:0 --port_file "$OUT/$region.port" --log_level warn \
    >"$OUT/$region.log" 2>&1 &
  PIDS+=($!); wait_port_file "$OUT/$region.port" $! "$region"
  echo "backends { name: \"$region-a\" address: \"127.0.0.1:$(cat "$OUT/$region.port")\" region: \"$region\" model_family: \"qwen\" shared_stream: $STREAM }" \
    >>"$OUT/backends.textproto"
done
"$BIN/hr-device" --listen 127.0.0.1:0 --port_file "$OUT/device.port" \
  --backends "$OUT/backends.textproto" --local_engine synthetic \
  --local_synthetic_tokens_per_second "$TOKENS_PER_SECOND" --local_slots 8 \
  --local_max_queue 64 --log_level warn >"$OUT/device.log" 2>&1 &
DEVICE=$!
PIDS+=($DEVICE); wait_port_file "$OUT/device.port" $DEVICE device
TARGET=127.0.0.1:$(cat "$OUT/device.port")

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$DEVICE/status"; }

echo "==> warm-up ($WARMUP at $RPS/s)"
"$BIN/hr-load" --target "$TARGET" --workload bench/workloads/mixed_regions.textproto \
  --mode open --rps "$RPS" --duration "$WARMUP" --progress=false >"$OUT/warmup.txt"
START_RSS=$(rss_kb)
echo "==> soak: $SOAK at $RPS/s; hr-device RSS at start ${START_RSS} kB"
echo "seconds,rss_kb" >"$OUT/rss.csv"
(
  t=0
  while kill -0 "$DEVICE" 2>/dev/null; do
    echo "$t,$(rss_kb)" >>"$OUT/rss.csv"
    sleep 10; t=$((t + 10))
  done
) &
SAMPLER=$!
"$BIN/hr-load" --target "$TARGET" --workload bench/workloads/mixed_regions.textproto \
  --mode open --rps "$RPS" --duration "$SOAK" --progress=false --json "$OUT/soak.json" \
  | tee "$OUT/soak.txt"
END_RSS=$(rss_kb)
kill "$SAMPLER" 2>/dev/null || true
MAX_RSS=$(tail -n +2 "$OUT/rss.csv" | cut -d, -f2 | sort -n | tail -1)
echo
echo "hr-device RSS: start ${START_RSS} kB, end ${END_RSS} kB, max ${MAX_RSS} kB" \
  "(change $(( END_RSS - START_RSS )) kB); samples in $OUT/rss.csv"
