#!/usr/bin/env bash
# Builds docker/Dockerfile into an OCI image with buildah (no Docker engine needed), runs the
# image's own entrypoint, and checks it as a user would: completions with the openai client,
# /health, /ready, /metrics (promtool), Debian's Prometheus scraping the container, no
# compiler in the runtime image, the non-root user, and SIGTERM.
#   docker/test-image.sh                     # build when the sources changed, then test
#   docker/test-image.sh --rebuild           # build even when an image of these sources exists
#   docker/test-image.sh --record FILE       # append a result row to FILE (bench/results/deploy.md)
#   docker/test-image.sh --image NAME        # test an image already in the storage, no build
# Environment: TESSERA_IMAGE_CACHE (default /var/cache/tessera-image: base images, buildah
# storage), TESSERA_IMAGE_JOBS (compile jobs in the build, default 2), DEBIAN_MIRROR.
#
# No registry is reachable here, so the debian:bookworm and debian:bookworm-slim bases are
# made once by debootstrap (minbase, as Docker's debian images are) and imported with podman
# into the storage buildah reads. pip inside the build reaches PyPI through a proxy that the
# host's CA bundle trusts: the build lends it that bundle at /run/host-ca.crt with an
# /etc/pip.conf naming it (bind mounts of this test; the Dockerfile stays as users build it).
set -euo pipefail
cd "$(dirname "$0")/.."

rebuild=0
record=""
given_image=""
while [ $# -gt 0 ]; do
  case $1 in
    --rebuild) rebuild=1 ;;
    --record) record=$2; shift ;;
    --image) given_image=$2; shift ;;
    *) echo "usage: $0 [--rebuild] [--record FILE] [--image NAME]" >&2; exit 2 ;;
  esac
  shift
done

cache=${TESSERA_IMAGE_CACHE:-/var/cache/tessera-image}
jobs=${TESSERA_IMAGE_JOBS:-2}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
host_ca=${TESSERA_HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
store=(--storage-driver vfs --root "$cache/storage" --runroot "$cache/runroot")
bah() { buildah "${store[@]}" "$@"; }
log() { printf '== %s  %s\n' "$(date -u +%H:%M:%S)" "$*"; }
now() { date +%s; }
have_image() { bah inspect --type image "$1" >/dev/null 2>&1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
missing=()
for cmd_pkg in buildah:buildah podman:podman debootstrap:debootstrap prometheus:prometheus \
               promtool:prometheus ss:iproute2 curl:curl; do
  command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || missing+=("${cmd_pkg#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
python3 -c 'import openai, requests' 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check openai requests
mkdir -p "$cache"
t_start=$(now)

# ---- base images ---------------------------------------------------------------------------
make_rootfs_tars() {
  local rootfs=$cache/rootfs
  if [ ! -f "$cache/bookworm.tar" ]; then
    log "debootstrap --variant=minbase bookworm (once; cached in $cache)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
      { tail -20 "$cache/debootstrap.log"; exit 1; }
    # The apt sources of Docker's debian:bookworm image.
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb ${mirror} bookworm main
deb ${mirror} bookworm-updates main
deb ${mirror}-security bookworm-security main
EOF
    # The apt settings of Docker's debian images (debuerreotype): no package caches or
    # translations kept in layers.
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' \
      >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/var/log/* "$rootfs"/tmp/*
    : >"$rootfs/etc/resolv.conf"
    tar --numeric-owner -C "$rootfs" -cf "$cache/bookworm.tar.tmp" .
    mv "$cache/bookworm.tar.tmp" "$cache/bookworm.tar"
  fi
  if [ ! -f "$cache/bookworm-slim.tar" ]; then
    # What debian:*-slim does (debuerreotype-slimify): no docs, man pages or locales, now
    # or for packages installed later.
    local slim=$cache/rootfs-slim
    rm -rf "$slim" && mkdir -p "$slim"
    tar --numeric-owner -C "$slim" -xf "$cache/bookworm.tar"
    cat >"$slim/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$slim/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$slim/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$slim"/usr/share/{man,groff,info,lintian,linda}/*
    find "$slim/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    tar --numeric-owner -C "$slim" -cf "$cache/bookworm-slim.tar.tmp" .
    mv "$cache/bookworm-slim.tar.tmp" "$cache/bookworm-slim.tar"
    rm -rf "$slim"
  fi
}
for tag in bookworm bookworm-slim; do
  if ! have_image "docker.io/library/debian:$tag"; then
    make_rootfs_tars
    log "podman import debian:$tag"
    podman "${store[@]}" import --change 'CMD ["bash"]' "$cache/$tag.tar" \
      "docker.io/library/debian:$tag" >/dev/null
  fi
done
t_bases=$(now)

# ---- build (skipped when an image of exactly these sources exists) -------------------------
# The context as docker/Dockerfile.dockerignore leaves it (every file git tracks or would
# track, less build folders, models/ and .git), less what cannot change the image: docs,
# deploy/, tests/deploy/ and this script.
ctx_hash=$(
  git ls-files -z -co --exclude-standard |
    while IFS= read -r -d '' f; do
      case $f in
        build*|models|models/*|.ci/*|*.md|docs/*|deploy/*|tests/deploy/*) continue ;;
        docker/*) [ "$f" = docker/Dockerfile ] || [ "$f" = docker/Dockerfile.dockerignore ] || continue ;;
      esac
      [ -f "$f" ] && [ ! -L "$f" ] && printf '%s\0' "$f"
    done | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
)
image=localhost/tessera:ctx-$ctx_hash
built=0
# Working containers an interrupted build left behind (this storage is the test's own).
bah rm --all >/dev/null 2>&1 || true
if [ -n "$given_image" ]; then
  image=$given_image
  have_image "$image" || { log "FAIL: no image $image"; exit 1; }
  log "testing the given image $image (no build)"
elif [ "$rebuild" = 1 ] || ! have_image "$image"; then
  log "building $image (docker/Dockerfile, $jobs compile jobs)"
  printf '[global]\ncert = /run/host-ca.crt\n' >"$cache/pip.conf"
  bah bud --isolation chroot --network host --format docker --layers \
    --ignorefile docker/Dockerfile.dockerignore \
    --volume "$host_ca:/run/host-ca.crt:ro" --volume "$cache/pip.conf:/etc/pip.conf:ro" \
    --build-arg "CMAKE_BUILD_PARALLEL_LEVEL=$jobs" \
    -f docker/Dockerfile -t "$image" -t localhost/tessera:latest . >"$cache/build.log" 2>&1 ||
    { tail -40 "$cache/build.log"; log "FAIL: image build (log: $cache/build.log)"; exit 1; }
  built=1
else
  log "image of these sources exists: $image (--rebuild to build anyway)"
fi
t_built=$(now)
# Size: the image's unpacked file system (what `docker images` shows), and gzipped (about
# what a registry stores and a node pulls).
measure() {
  local c mnt
  c=$(bah from "$1")
  mnt=$(bah mount "$c")
  du -sb "$mnt" | cut -f1
  tar -C "$mnt" -cf - . | gzip -1 | wc -c
  bah umount "$c" >/dev/null
  bah rm "$c" >/dev/null
}
mapfile -t sizes < <(measure "$image")
mapfile -t slim_sizes < <(measure docker.io/library/debian:bookworm-slim)
mib() { python3 -c "print(f'{$1/2**20:.0f} MiB')"; }
size_text="$(mib "${sizes[0]}") unpacked, $(mib "${sizes[1]}") gzipped"
log "image size: $size_text (debian:bookworm-slim base: $(mib "${slim_sizes[0]}") / $(mib "${slim_sizes[1]}"))"

# ---- run the image's entrypoint ------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
gport=$(free_port)
pport=$(free_port)
work=$(mktemp -d)
ctr=""
server_bah=""
prom=""
cleanup() {
  [ -n "$prom" ] && kill "$prom" 2>/dev/null
  if [ -n "$server_bah" ] && kill -0 "$server_bah" 2>/dev/null; then
    local pid
    pid=$(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    kill "$server_bah" 2>/dev/null
  fi
  [ -n "$ctr" ] && bah rm "$ctr" >/dev/null 2>&1
  rm -rf "$work"
  return 0
}
trap cleanup EXIT

ctr=$(bah from --name "tessera-test-$$" "$image")
config=$(bah inspect --type image "$image" |
  python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["Docker"]["config"]))')
cfg() { python3 -c "import json,sys; v=json.loads(sys.argv[1]).get('$1'); print('\n'.join(v) if isinstance(v, list) else (v or ''))" "$config"; }
mapfile -t entrypoint < <(cfg Entrypoint)
workdir=$(cfg WorkingDir)
user=$(cfg User)
[ ${#entrypoint[@]} -gt 0 ] && [ -n "$workdir" ] && [ -n "$user" ] ||
  { log "FAIL: cannot read the image's entrypoint, working dir or user"; exit 1; }
log "runtime image: no compiler or Python; curl for its HEALTHCHECK"
if bah run --isolation chroot "$ctr" -- sh -c \
    'for c in cc gcc g++ c++ cmake ld as make python3 pip3; do command -v $c && exit 0; done; exit 1' 2>/dev/null; then
  log "FAIL: the runtime image has a compiler or Python"; exit 1
fi
bah run --isolation chroot "$ctr" -- sh -c 'command -v curl' >/dev/null ||
  { log "FAIL: no curl for the HEALTHCHECK"; exit 1; }
healthcheck=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("Healthcheck"))' "$config")
case $healthcheck in *"/health"*) ;; *) log "FAIL: no HEALTHCHECK on /health: $healthcheck"; exit 1 ;; esac
# As `docker run IMAGE --host ... --port ...`: the image's entrypoint with our arguments in
# place of its CMD, as its user, in its working dir, on the host's network (loopback only).
log "server: ${entrypoint[*]} --host 127.0.0.1 --port $port --grpc-port $gport (user $user)"
bah run --isolation chroot --network host --user "$user" --workingdir "$workdir" "$ctr" -- \
  "${entrypoint[@]}" --host 127.0.0.1 --port "$port" --grpc-port "$gport" >"$work/server.log" 2>&1 &
server_bah=$!

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: tessera
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
prom=$!

log "checks (tests/deploy/check_server.py)"
if ! python3 tests/deploy/check_server.py --url "http://127.0.0.1:$port" \
      --prometheus "http://127.0.0.1:$pport" --expect-user "$user" --pid-port "$port"; then
  echo "--- server log"; tail -30 "$work/server.log"
  log "FAIL: checks"; exit 1
fi
t_checked=$(now)

# SIGTERM, as `docker stop` sends it: the server should exit by itself (it drains first
# where the server has --drain-timeout).
pid=$(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
t_term=$(date +%s.%N)
kill -TERM "$pid"
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
  log "FAIL: the server did not exit within 30 s of SIGTERM"; exit 1
fi
wait "$server_bah" && rc=0 || rc=$?
stop_s=$(python3 -c "import time; print(f'{time.time()-$t_term:.1f}')")
log "SIGTERM: exited in ${stop_s} s with status $rc"
server_bah=""
t_end=$(now)

summary="image $size_text, bases $((t_bases - t_start)) s, build $((t_built - t_bases)) s$([ $built = 0 ] && echo ' (cached)' || true), checks $((t_checked - t_built)) s, total $((t_end - t_start)) s"
log "PASS: $summary"
if [ -n "$record" ]; then
  commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/results' || echo '+dirty')
  printf '| %s | %s | %s | %s | %s s | %s s%s | %s s | %s s | PASS |\n' \
    "$(date -u +'%Y-%m-%d %H:%M')" "$commit" "${given_image:-$ctx_hash}" "$size_text" \
    "$((t_bases - t_start))" "$((t_built - t_bases))" "$([ $built = 0 ] && echo ' (cached)' || true)" \
    "$((t_checked - t_built))" "$stop_s" >>"$record"
fi
