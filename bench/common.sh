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
