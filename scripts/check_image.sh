#!/usr/bin/env bash
# Build the container image and use it: a check by hand, not part of `make test` (it needs
# root, podman and buildah: `apt-get install podman buildah`).
#
#   scripts/check_image.sh             # the base image (Dockerfile's PYTHON_IMAGE) is pulled
#   scripts/check_image.sh --stand-in  # no registry: the base is made from Debian bookworm
#
# It builds the core image and the one with EXTRAS=simulator, then, inside the images:
#   - the image's entry point is `stemsweep` and its user is 10001 (as configs/k8s/ runs it);
#   - core: `stemsweep models` lists the twelve models; `simulate` stops with exit 2 and names
#     its extra; `stemsweep run` sweeps against a simulator served from the other image, as
#     the nightly Job does against the API;
#   - simulator: a manifest with `api.simulator: {profile: bench}` runs in-process.
# Commands run with `buildah run --isolation chroot` (the image's files, user, environment and
# working folder, the host's network), which works where an OCI runtime cannot start
# containers; the entry point is checked in the image's configuration.
#
# --stand-in: Docker Hub is out of reach, so the base is built with debootstrap from Debian
# bookworm (its Python is 3.11, as in python:3.11-slim-bookworm) and tagged with the base's
# name. It carries the host's CA bundle, for hosts whose HTTPS goes through a proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=docker.io/library/python:3.11-slim-bookworm
IMAGE=localhost/stemsweep-check
WORK=$(mktemp -d /tmp/stemsweep-image.XXXXXX)
containers=()
server=""

stop_server() {
  [ -n "$server" ] || return 0
  kill -INT "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
}

cleanup() {
  stop_server
  for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "image check FAILED: $*" >&2; exit 1; }

stand_in() {
  echo "building a stand-in for $BASE from Debian bookworm"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
  cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -c . | podman import --change 'CMD ["python3"]' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' - "$BASE" >/dev/null
  rm -rf "$WORK/rootfs"
}

[ "${1:-}" = "--stand-in" ] && stand_in

podman build --quiet --isolation chroot -t "$IMAGE:core" . >/dev/null
podman build --quiet --isolation chroot --build-arg EXTRAS=simulator -t "$IMAGE:simulator" . >/dev/null
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "stemsweep-check|python"

config=$(podman image inspect --format '{{json .Config.Entrypoint}} {{.Config.User}}' "$IMAGE:core")
[ "$config" = '["stemsweep"] 10001:10001' ] || fail "entry point and user: $config"

core=$(buildah from "$IMAGE:core"); containers+=("$core")
sim=$(buildah from "$IMAGE:simulator"); containers+=("$sim")
in_core() { buildah run --isolation chroot "$core" -- "$@"; }
in_sim() { buildah run --isolation chroot "$sim" -- "$@"; }

[ "$(in_core id -u)" = 10001 ] || fail "the image does not run as 10001"
[ "$(in_core stemsweep models | wc -l)" = 12 ] || fail "stemsweep models"
if in_core stemsweep simulate 2>"$WORK/err"; then fail "simulate ran without its extra"; fi
grep -q "pip install 'stemsweep\[simulator\]'" "$WORK/err" || fail "simulate said: $(cat "$WORK/err")"

# The core image against a simulator served by the other image (loopback, the host's network).
buildah run --isolation chroot "$sim" -- \
  stemsweep simulate --profile bench --port 0 --storage-port 0 --time-scale 600 \
  >"$WORK/sim.out" 2>"$WORK/sim.err" &
server=$!
for _ in $(seq 100); do grep -qs '^base URL:' "$WORK/sim.out" && break; sleep 0.3; done
url=$(sed -n 's/^base URL: *//p' "$WORK/sim.out")
[ -n "$url" ] || fail "the simulator printed no base URL"
in_core sh -c "cat > core.yaml" <<'EOF'
version: 1
name: core
limits: {max_in_flight: 4, per_project: 2, requests_per_second: 100}
poll: {initial: 0.05s, max: 0.2s, timeout: 2m}
sweeps:
  - projects: [prj_0001, prj_0002]
    models: [mdx23c, demucs]
EOF
in_core env YOUKA_API_KEY=yk_check \
  stemsweep run core.yaml --api-url "$url" --no-progress --log-format json \
  >"$WORK/run.out" 2>"$WORK/run.log" \
  || fail "the core image's run: $(tail -3 "$WORK/run.log")"
in_core python3 -c "import json; c = json.load(open('out/core/summary.json'))['counts']; \
assert c == {'done': 4}, c" || fail "the core image's run did not finish 4 jobs"
stop_server

# The simulator image runs a manifest's in-process simulator by profile name.
in_sim sh -c "cat > sim.yaml" <<'EOF'
version: 1
name: sim
api: {simulator: {profile: bench, time_scale: 600}}
sweeps:
  - projects: [prj_0001]
    models: [mdx23c, bs_roformer, demucs]
EOF
in_sim stemsweep run sim.yaml --no-progress --log-format json >"$WORK/sim.run" 2>"$WORK/sim.log" \
  || fail "the simulator image's run: $(tail -3 "$WORK/sim.log")"
in_sim python3 -c "import json; c = json.load(open('out/sim/summary.json'))['counts']; \
assert c == {'done': 3}, c" || fail "the simulator image's run did not finish 3 jobs"
echo "image check passed"
