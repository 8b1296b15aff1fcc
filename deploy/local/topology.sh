#!/usr/bin/env bash
# The local multi-region topology on loopback: six region-pinned cloud backends
# (cn-north-1 twice, cn-east-1, eu-central-1, eu-west-1, us-east-1) and a device
# router, all running the tiny test model through llama.cpp.
#
#   deploy/local/topology.sh up     start everything and wait (Ctrl-C stops it)
#   deploy/local/topology.sh demo   start, run the demo, stop
#
# Ports: hr-device on 127.0.0.1:50051, backends on 127.0.0.1:50061-50066 (as in
# deploy/local/backends.textproto). Logs: build/run/*.log. Everything started is
# stopped on exit, Ctrl-C or SIGTERM.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/../.."

MODE=${1:-demo}
BIN=${HR_BIN:-build/bin}
RUN=build/run
MODEL=${HR_MODEL:-build/models/tiny-qwen2.gguf}
DEVICE_ADDR=127.0.0.1:50051
# name, port, region and model family, as in deploy/local/backends.textproto.
BACKENDS=(
  "cn-north-1-a 50061 cn-north-1 qwen"
  "cn-north-1-b 50062 cn-north-1 qwen"
  "cn-east-1-a 50063 cn-east-1 qwen"
  "eu-central-1-a 50064 eu-central-1 qwen"
  "eu-west-1-a 50065 eu-west-1 qwen"
  "us-east-1-a 50066 us-east-1 llama"
)

declare -A PIDS=()
cleanup() {
  trap - EXIT INT TERM
  for name in "${!PIDS[@]}"; do kill -TERM "${PIDS[$name]}" 2>/dev/null || true; done
  for name in "${!PIDS[@]}"; do wait "${PIDS[$name]}" 2>/dev/null || true; done
  echo "stopped ${#PIDS[@]} processes"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port_file() {  # name file
  for _ in $(seq 1 300); do
    [[ -s $2 ]] && return 0
    kill -0 "${PIDS[$1]}" 2>/dev/null || { echo "error: $1 exited; see $RUN/$1.log" >&2; tail -5 "$RUN/$1.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "error: $1 did not start within 30 s; see $RUN/$1.log" >&2
  exit 1
}

mkdir -p "$RUN"
for port in 50051 50061 50062 50063 50064 50065 50066; do
  if port_busy "$port"; then
    echo "error: port $port is in use (another topology running?)" >&2
    exit 1
  fi
done

for b in "${BACKENDS[@]}"; do
  read -r name port region family <<<"$b"
  rm -f "$RUN/$name.port"
  "$BIN/hr-cloud" --region "$region" --listen "127.0.0.1:$port" --model "$MODEL" \
    --policy deploy/local/policy.textproto --model_family "$family" \
    --threads 1 --context_tokens 1024 --port_file "$RUN/$name.port" >"$RUN/$name.log" 2>&1 &
  PIDS[$name]=$!
done
for b in "${BACKENDS[@]}"; do
  read -r name _ _ _ <<<"$b"
  wait_for_port_file "$name" "$RUN/$name.port"
done
rm -f "$RUN/hr-device.port"
"$BIN/hr-device" --listen "$DEVICE_ADDR" --policy deploy/local/policy.textproto \
  --backends deploy/local/backends.textproto --model "$MODEL" \
  --port_file "$RUN/hr-device.port" >"$RUN/hr-device.log" 2>&1 &
PIDS[hr-device]=$!
wait_for_port_file hr-device "$RUN/hr-device.port"
echo "topology up: hr-device on $DEVICE_ADDR, ${#BACKENDS[@]} cloud backends (logs in $RUN/)"

if [[ $MODE == up ]]; then
  echo "try: $BIN/hrctl generate --locale zh-CN --hint cloud '你好'   (Ctrl-C stops everything)"
  wait -n "${PIDS[@]}" || true
  exit 0
fi

echo
echo "== 1. Decisions across locales (the tiny model's text is gibberish by design) =="
"$BIN/hrctl" demo --target "$DEVICE_ADDR" --cases deploy/local/demo_cases.textproto

echo
echo "== 2. Failover: stopping every cn and eu backend =="
for name in cn-north-1-a cn-north-1-b cn-east-1-a eu-central-1-a eu-west-1-a; do
  kill -TERM "${PIDS[$name]}"; wait "${PIDS[$name]}" 2>/dev/null || true; unset "PIDS[$name]"
done
"$BIN/hrctl" demo --target "$DEVICE_ADDR" --cases deploy/local/failover_cases.textproto || true
echo
echo "Residency: the backends that stayed up served only their own regions:"
grep -h "served request_id" "$RUN"/us-east-1-a.log | sed 's/.*served /  us-east-1-a served /' | head -5
