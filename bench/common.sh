# Shared by the bench scripts (sourced, after OUT is set): every process whose pid
# is added to PIDS is stopped on exit, Ctrl-C or SIGTERM.

# need_commands CMD...: installs the Debian packages of the same names for the
# commands that are missing (nginx, jq: what the scripts use beyond the build).
need_commands() {
  local missing=()
  for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
  ((${#missing[@]})) || return 0
  echo "==> installing ${missing[*]} (Debian packages)"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# mid: the median of the numbers on stdin, one per line.
mid() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# thread_switches KIND PID...: the context switches of every thread of the
# processes so far, from /proc: voluntary (a thread waited for something),
# nonvoluntary (preempted while it could still run) or all (both).
thread_switches() {
  local kind=$1; shift
  for p in "$@"; do cat /proc/"$p"/task/*/status; done |
    awk -v kind="$kind" '$1 ~ /ctxt_switches:$/ && (kind == "all" || $1 == kind "_ctxt_switches:") { s += $2 }
      END { print s + 0 }'
}

PIDS=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port_file FILE PID NAME: waits until a server started with --port_file FILE
# has written its port; fails naming its log ($OUT/NAME.log) if it exits first.
wait_port_file() {
  for _ in $(seq 1 300); do
    [[ -s $1 ]] && return 0
    kill -0 "$2" 2>/dev/null || { echo "error: $3 exited; see $OUT/$3.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "error: $3 did not start; see $OUT/$3.log" >&2
  exit 1
}

# need_binaries NAME...: fails unless each program is built in $BIN.
need_binaries() {
  for b in "$@"; do
    [[ -x $BIN/$b ]] || { echo "error: $BIN/$b missing: run scripts/setup.sh first" >&2; exit 1; }
  done
}

# start_proxy_pair: what the proxy benchmarks put under load, logs in $OUT: one
# synthetic us-east-1 hr-cloud (unthrottled tokens, enough slots that it never
# queues) and an hr-device ($DEVICE_FLAGS added) whose only backend it is, with
# --policy $POLICY, serving on a free loopback port or, with DEVICE_LISTEN=unix:PATH,
# on that Unix socket. The backend is a `shared_stream` one (hr-device sends it
# every request over one GenerateStream); SHARED_STREAM=0 makes it one that gets a
# call per request. Sets BACKEND_PID, BACKEND_PORT, DEVICE_PID and DEVICE_TARGET.
start_proxy_pair() {
  "$BIN/hr-cloud" --region us-east-1 --engine synthetic --synthetic_tokens_per_second 0 \
    --slots 256 --max_queue 4096 --listen 127.0.0.1:0 --port_file "$OUT/backend.port" \
    --log_level warn >"$OUT/backend.log" 2>&1 &
  BACKEND_PID=$!
  PIDS+=("$BACKEND_PID"); wait_port_file "$OUT/backend.port" "$BACKEND_PID" backend
  BACKEND_PORT=$(cat "$OUT/backend.port")
  local stream=true
  [[ ${SHARED_STREAM:-1} == 1 ]] || stream=false
  start_device device "${DEVICE_LISTEN:-127.0.0.1:0}" "$stream"
  DEVICE_PID=$STARTED_PID
  DEVICE_TARGET=$STARTED_TARGET
}

# start_device NAME LISTEN SHARED_STREAM(true|false) (after start_proxy_pair
# started the backend): one more hr-device ($DEVICE_FLAGS added) in front of the
# same backend, files $OUT/NAME.*. Sets STARTED_PID and STARTED_TARGET.
start_device() {
  local name=$1 listen=$2 stream=$3
  echo "backends { name: \"us-east-1-bench\" address: \"127.0.0.1:$BACKEND_PORT\"" \
    "region: \"us-east-1\" model_family: \"llama\" shared_stream: $stream }" \
    >"$OUT/$name-backends.textproto"
  # shellcheck disable=SC2086
  "$BIN/hr-device" --listen "$listen" --port_file "$OUT/$name.port" \
    --policy "$POLICY" --backends "$OUT/$name-backends.textproto" --local_engine synthetic \
    --log_level warn \
    ${DEVICE_FLAGS:-} >"$OUT/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID"); wait_port_file "$OUT/$name.port" "$STARTED_PID" "$name"
  if [[ $listen == unix:* ]]; then
    STARTED_TARGET=$listen
  else
    STARTED_TARGET=127.0.0.1:$(cat "$OUT/$name.port")
  fi
}

# hr_load ARGS...: hr-load with the workload and policy of the proxy benchmarks
# ($WORKLOAD, $POLICY) and no progress lines; ARGS give the target and the run.
hr_load() { "$BIN/hr-load" --workload "$WORKLOAD" --policy "$POLICY" --progress=false "$@"; }

# free_port: a loopback TCP port nobody listens on now.
free_port() {
  for _ in $(seq 1 100); do
    local p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "error: no free port" >&2; exit 1
}

# start_nginx (after start_proxy_pair): nginx (Debian's package; one worker per
# core, upstream keepalive) relaying gRPC with grpc_pass to the same backend, on a
# free loopback port or, with NGINX_LISTEN=unix:PATH, on that Unix socket; config
# and logs in $OUT/nginx. Sets NGINX_PID (the master) and NGINX_TARGET (what hr-load
# calls); nginx_workers lists the workers' pids.
start_nginx() {
  mkdir -p "$OUT/nginx"
  local dir; dir=$(cd "$OUT/nginx" && pwd)
  local listen socket=
  if [[ ${NGINX_LISTEN:-} == unix:* ]]; then
    listen=$NGINX_LISTEN socket=${NGINX_LISTEN#unix:} NGINX_TARGET=$NGINX_LISTEN
  else
    local port; port=$(free_port)
    listen=127.0.0.1:$port NGINX_TARGET=127.0.0.1:$port
  fi
  cat >"$dir/nginx.conf" <<EOC
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; }
  server {
    listen $listen http2;
    location / { grpc_pass grpc://backend; }
  }
}
EOC
  nginx -c "$dir/nginx.conf" -p "$dir" >"$OUT/nginx.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  for _ in $(seq 1 100); do
    if [[ -n $socket ]]; then
      [[ -S $socket ]] && return 0
    else
      (exec 3<>"/dev/tcp/${NGINX_TARGET/://}") 2>/dev/null && return 0
    fi
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "error: nginx did not start; see $OUT/nginx.log and $OUT/nginx/error.log" >&2
  exit 1
}
nginx_workers() { pgrep -P "$NGINX_PID"; }
