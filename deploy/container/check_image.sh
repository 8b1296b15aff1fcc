#!/usr/bin/env bash
# Builds the image from deploy/container/Containerfile with buildah (no container
# daemon needed) and runs what it holds, as the image's own user: hr-cloud from its
# flag file, hr-device, hrctl. Run from anywhere, after scripts/setup.sh (the check
# gives the image the tiny test model, build/models/tiny-qwen2.gguf, in place of a
# real one):
#
#   deploy/container/check_image.sh
#
# What it checks, inside one container of the built image:
#   - every binary finds all its shared libraries;
#   - hr-cloud starts from /etc/hybrid-router/hr-cloud.flags (region cn-north-1,
#     llama.cpp), hr-device from hr-device.flags with a backends file naming it,
#     and hrctl validate accepts the image's policy with that backends file;
#   - a Chinese word problem from zh-CN is answered in cn-north-1, "Hello!" from
#     en-US on the device;
#   - both servers exit 0 on SIGTERM.
#
# Environment:
#   IMAGE=hybrid-router      the tag built and checked
#   BUILD=0                  check an image already built, without building it
#   BOOTSTRAP_BASE=1         when debian:bookworm or debian:bookworm-slim is not in
#                            buildah's storage, make it with debootstrap from
#                            Debian's mirror (for machines that reach Debian's
#                            mirror but not an image registry; one minimal system
#                            serves as both); the image is then built without
#                            pulling
#   EXTRA_CA=FILE.crt        a certificate authority added to those bootstrapped
#                            images (a proxy that intercepts TLS, which npm must
#                            trust to fetch llama.cpp in the build stage)
#   STORAGE_DRIVER=vfs       buildah's storage driver
#   HR_MODEL=FILE.gguf       the model given to the container as both the cloud and
#                            the local model (default build/models/tiny-qwen2.gguf)
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

IMAGE=${IMAGE:-hybrid-router}
MODEL=${HR_MODEL:-build/models/tiny-qwen2.gguf}
B=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}")

step() { printf '==> %s\n' "$*"; }
fail() { echo "error: $*" >&2; exit 1; }

[[ -f $MODEL ]] || fail "$MODEL missing: run scripts/setup.sh first"
need=(buildah)
[[ ${BOOTSTRAP_BASE:-0} == 1 ]] && need+=(debootstrap)
missing=()
for c in "${need[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
if ((${#missing[@]})); then
  step "installing ${missing[*]} (Debian packages)"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

WORK=$(mktemp -d /tmp/hr-image-check.XXXXXX)
CONTAINER=""
cleanup() {
  [[ -n $CONTAINER ]] && "${B[@]}" rm "$CONTAINER" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# bootstrap_base NAME: debian:NAME made from a minimal debootstrap of bookworm.
bootstrap_base() {
  local ref=docker.io/library/debian:$1
  if "${B[@]}" inspect --type image "$ref" >/dev/null 2>&1; then return 0; fi
  step "making $ref with debootstrap (Debian's mirror)"
  local rootfs=$WORK/rootfs-$1
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
  if [[ -n ${EXTRA_CA:-} ]]; then
    install -D -m 644 "$EXTRA_CA" "$rootfs/usr/local/share/ca-certificates/extra-ca.crt"
  fi
  local c
  c=$("${B[@]}" from scratch)
  "${B[@]}" copy "$c" "$rootfs/" / >/dev/null
  "${B[@]}" config --cmd /bin/bash "$c"
  "${B[@]}" commit -q "$c" "$ref" >/dev/null
  "${B[@]}" rm "$c" >/dev/null
  rm -rf "$rootfs"
}

if [[ ${BUILD:-1} == 1 ]]; then
  pull=()
  if [[ ${BOOTSTRAP_BASE:-0} == 1 ]]; then
    bootstrap_base bookworm
    # The minimal system serves as the slim image too; no second debootstrap.
    "${B[@]}" inspect --type image docker.io/library/debian:bookworm-slim >/dev/null 2>&1 ||
      "${B[@]}" tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
    pull=(--pull=never)
  fi
  # The committed tree only, as a fresh clone would have it.
  step "building $IMAGE from $(git rev-parse --short HEAD) (log: $WORK/build.log while it runs)"
  mkdir "$WORK/src"
  git archive HEAD | tar -x -C "$WORK/src"
  start=$SECONDS
  (cd "$WORK/src" && "${B[@]}" bud "${pull[@]}" --isolation chroot \
    -f deploy/container/Containerfile -t "$IMAGE" .) >"$WORK/build.log" 2>&1 ||
    { tail -n 30 "$WORK/build.log" >&2; fail "the image did not build"; }
  step "built $IMAGE in $((SECONDS - start)) s"
fi

CONTAINER=$("${B[@]}" from --pull=never "$IMAGE")
# What an operator mounts: the models (here the tiny test model), and a backends
# file naming the one backend this check starts.
"${B[@]}" copy --chmod 644 "$CONTAINER" "$MODEL" /var/lib/hybrid-router/models/cloud.gguf >/dev/null
"${B[@]}" copy --chmod 644 "$CONTAINER" "$MODEL" /var/lib/hybrid-router/models/local.gguf >/dev/null

# Runs inside the container as the image's user; prints what it saw, one line a
# check, for the host to read.
cat >"$WORK/inside.sh" <<'EOF'
set -u
cd /tmp
for b in /usr/local/bin/hr-cloud /usr/local/bin/hr-device /usr/local/bin/hrctl; do
  if ldd "$b" | grep -q "not found"; then echo "libs-missing $b"; else echo "libs-ok $b"; fi
done
echo "user $(id -u):$(id -g)"
# The image's ENTRYPOINT and CMD, with a port of its own and fewer threads.
/usr/local/bin/hr-cloud --flagfile=/etc/hybrid-router/hr-cloud.flags --listen=127.0.0.1:0 \
  --port_file=/tmp/cloud.port --threads=1 --slots=1 --context_tokens=1024 >/tmp/cloud.log 2>&1 &
cloud=$!
i=0; while [ ! -s /tmp/cloud.port ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -s /tmp/cloud.port ] || { echo "cloud-not-started"; tail -n 5 /tmp/cloud.log; exit 0; }
printf 'backends { name: "cn-north-1-a" address: "127.0.0.1:%s" region: "cn-north-1" model_family: "qwen" }\n' \
  "$(cat /tmp/cloud.port)" >/tmp/backends.textproto
if /usr/local/bin/hrctl validate --policy /etc/hybrid-router/policy.textproto \
     --backends /tmp/backends.textproto >/tmp/validate.log 2>&1; then echo "validate-ok"; else
  echo "validate-failed"; cat /tmp/validate.log; fi
/usr/local/bin/hr-device --flagfile=/etc/hybrid-router/hr-device.flags --listen=127.0.0.1:0 \
  --port_file=/tmp/device.port --backends=/tmp/backends.textproto >/tmp/device.log 2>&1 &
device=$!
i=0; while [ ! -s /tmp/device.port ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -s /tmp/device.port ] || { echo "device-not-started"; tail -n 5 /tmp/device.log; exit 0; }
target=127.0.0.1:$(cat /tmp/device.port)
/usr/local/bin/hrctl generate --target "$target" --locale zh-CN --max_tokens 8 \
  '一个农场有鸡和兔共35只，脚共有94只。鸡和兔各有多少只？请一步一步计算。' 2>&1 | grep '^route:\|^done:\|rror' | sed 's/^/zh-CN /'
/usr/local/bin/hrctl generate --target "$target" --locale en-US --max_tokens 8 'Hello!' 2>&1 |
  grep '^route:\|^done:\|rror' | sed 's/^/en-US /'
kill -TERM "$device"; wait "$device"; echo "device-exit $?"
kill -TERM "$cloud"; wait "$cloud"; echo "cloud-exit $?"
EOF
"${B[@]}" copy --chmod 644 "$CONTAINER" "$WORK/inside.sh" /tmp/inside.sh >/dev/null

step "running hr-cloud, hr-device and hrctl inside $IMAGE"
"${B[@]}" run --isolation chroot "$CONTAINER" -- /bin/sh /tmp/inside.sh >"$WORK/inside.out" 2>&1 || true
sed 's/^/    /' "$WORK/inside.out"

problems=()
expect() {  # PATTERN WHAT
  grep -Eq "$1" "$WORK/inside.out" || problems+=("$2")
}
expect '^libs-ok /usr/local/bin/hr-cloud$' "hr-cloud's shared libraries"
expect '^libs-ok /usr/local/bin/hr-device$' "hr-device's shared libraries"
expect '^libs-ok /usr/local/bin/hrctl$' "hrctl's shared libraries"
expect '^user 65532:65532$' "runs as user 65532"
expect '^validate-ok$' "hrctl validate"
expect '^zh-CN route: CLOUD where=cn-north-1/' "zh-CN word problem answered in cn-north-1"
expect '^zh-CN done: ' "zh-CN answer completed"
expect '^en-US route: LOCAL where=device' "en-US greeting answered on the device"
expect '^en-US done: ' "en-US answer completed"
expect '^device-exit 0$' "hr-device exits 0 on SIGTERM"
expect '^cloud-exit 0$' "hr-cloud exits 0 on SIGTERM"
if ((${#problems[@]})); then
  printf 'FAILED: %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "image $IMAGE: all checks passed"
