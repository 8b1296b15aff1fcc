#!/usr/bin/env bash
# Two builds of hr-device side by side: A and B (directories holding an hr-device
# binary each) in front of the same synthetic hr-cloud backend (shared_stream),
# driven in turn by the same hr-load open loop (bench/workloads/cloud_us.textproto
# at RPS requests/s), with the backend straight (direct) as the yardstick. Rounds
# interleave A and B and swap which goes first, so the drift of a shared virtual
# machine falls on both; it prints each round's p50 and the medians. With
# CLOSED=1 each round also runs a closed loop (CONCURRENCY streams) for throughput.
# This is how to tell whether a change to hr-device moves its latency, when
# single runs of proxy_bench.sh differ by more than the change.
#
#   bench/device_ab.sh OLD_BIN_DIR NEW_BIN_DIR     (after scripts/setup.sh)
#   ROUNDS=7 DURATION=5s RPS=500 CLOSED=1 bench/device_ab.sh /tmp/old build/bin
#   DEVICE_FLAGS=--io_threads=2 bench/device_ab.sh build/bin build/bin   (flags for both)
#
# The backend and hr-load come from $HR_BIN (default build/bin). Logs and reports
# go to build/bench/device_ab/.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/.."

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -ne 2 ]]; then usage >&2; exit 2; fi
for d in "$1" "$2"; do
  [[ -x $d/hr-device ]] || { echo "error: no hr-device in $d" >&2; exit 2; }
done
DIR_A=$(cd "$1" && pwd) DIR_B=$(cd "$2" && pwd)

BIN=${HR_BIN:-build/bin}
OUT=build/bench/device_ab
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
RPS=${RPS:-500}
CONCURRENCY=${CONCURRENCY:-16}
WORKLOAD=bench/workloads/cloud_us.textproto
POLICY=deploy/local/policy.textproto

rm -rf "$OUT"; mkdir -p "$OUT"
source bench/common.sh
need_binaries hr-cloud hr-load
need_commands jq

SHARED_STREAM=1 BIN=$DIR_A start_proxy_pair
declare -A TARGET=([direct]="127.0.0.1:$BACKEND_PORT --api cloud" [A]="$DEVICE_TARGET --api router")
BIN=$DIR_B start_device device-b 127.0.0.1:0 true
TARGET[B]="$STARTED_TARGET --api router"

load() {  # name json-out flags...
  local name=$1 out=$2; shift 2
  # shellcheck disable=SC2086
  hr_load --target ${TARGET[$name]} --json "$out" "$@" >/dev/null
}

echo "==> A: $DIR_A/hr-device"
echo "==> B: $DIR_B/hr-device"
echo "==> warming up"
for n in direct A B; do load "$n" "$OUT/warmup-$n.json" --mode closed --concurrency "$CONCURRENCY" --duration 2s; done

p50() { jq -r '.latency.p50_us|tonumber' "$1"; }
rps() { jq -r '.throughput_rps|floor' "$1"; }
for r in $(seq 1 "$ROUNDS"); do
  order=(A B); ((r % 2)) || order=(B A)
  for n in direct "${order[@]}"; do
    load "$n" "$OUT/open-$r-$n.json" --mode open --rps "$RPS" --duration "$DURATION"
    if [[ ${CLOSED:-0} == 1 ]]; then
      load "$n" "$OUT/closed-$r-$n.json" --mode closed --concurrency "$CONCURRENCY" --duration "$DURATION"
    fi
  done
  line="round $r/$ROUNDS (${order[*]}): p50 us direct $(p50 "$OUT/open-$r-direct.json") A $(p50 "$OUT/open-$r-A.json") B $(p50 "$OUT/open-$r-B.json")"
  if [[ ${CLOSED:-0} == 1 ]]; then
    line+="   closed ok/s direct $(rps "$OUT/closed-$r-direct.json") A $(rps "$OUT/closed-$r-A.json") B $(rps "$OUT/closed-$r-B.json")"
  fi
  echo "$line"
done

failed=$(for f in "$OUT"/open-*.json "$OUT"/closed-*.json; do
  [[ -e $f ]] || continue  # no closed-loop files without CLOSED=1
  jq -r '(.failed|tonumber) + (.residency_violations|tonumber)' "$f"
done | awk '{s+=$1} END {print s+0}')
declare -A P50 TPUT
for n in direct A B; do
  P50[$n]=$(for f in "$OUT"/open-*-"$n".json; do p50 "$f"; done | mid)
  if [[ ${CLOSED:-0} == 1 ]]; then
    TPUT[$n]=$(for f in "$OUT"/closed-*-"$n".json; do rps "$f"; done | mid)
  fi
done
echo
echo "medians of $ROUNDS rounds, open loop at $RPS/s: p50 direct ${P50[direct]} us, A ${P50[A]} us ($((P50[A] - P50[direct])) over direct), B ${P50[B]} us ($((P50[B] - P50[direct])) over direct); B - A: $((P50[B] - P50[A])) us"
if [[ ${CLOSED:-0} == 1 ]]; then
  awk -v a="${TPUT[A]}" -v b="${TPUT[B]}" -v d="${TPUT[direct]}" \
    'BEGIN { printf "closed loop ok/s: direct %d, A %d, B %d; B/A %.2f\n", d, a, b, b / a }'
fi
echo "failed or served outside their regions: $failed"
[[ $failed == 0 ]]
