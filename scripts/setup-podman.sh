#!/usr/bin/env bash
# Make a container engine available to echo-rl's ContainerSandbox on this machine (run as root).
# Idempotent; used by CI and by the session-scoped pytest fixture of tests/sandbox.
#
#   1. podman, runc and debootstrap from Debian (what scripts/install.sh installs);
#   2. explicit default ulimits in /etc/containers/containers.conf (rlimits cannot be raised here, and
#      podman's defaults ask for more than the host grants, so containers made through the API fail);
#   3. a base image debian:bookworm-slim made by debootstrap and imported (images cannot be pulled);
#   4. `podman system service` on unix:///run/podman/podman.sock.
#
# Prints the DOCKER_HOST to use on its last line.
set -euo pipefail

SOCK=/run/podman/podman.sock
IMAGE=${ECHO_RL_BASE_IMAGE:-debian:bookworm-slim}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
INCLUDE=python3,git,make,procps,tar,gzip,findutils,grep,sed,gawk,ca-certificates,less,cron
log() { echo "[setup-podman] $*" >&2; }

if [ "$(id -u)" != 0 ]; then log "must run as root"; exit 1; fi

need_apt=()
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "apt packages: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

CONF=/etc/containers/containers.conf
if ! grep -qs '^default_ulimits' "$CONF"; then
    log "writing default_ulimits to $CONF"
    mkdir -p /etc/containers
    if grep -qs '^\[containers\]' "$CONF"; then
        sed -i '/^\[containers\]/a default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]' "$CONF"
    else
        printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n' >>"$CONF"
    fi
fi

if ! podman image exists "$IMAGE"; then
    root=$(mktemp -d /var/tmp/echo-rl-debootstrap.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    log "debootstrap bookworm ($INCLUDE) into $root (about 30-60 s)"
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$root" "$MIRROR" >/dev/null
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    log "importing $IMAGE"
    tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
    rm -rf "$root"
    trap - EXIT
fi

answers() { curl -sf --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if ! answers; then
    log "starting podman system service on $SOCK"
    mkdir -p "$(dirname "$SOCK")"
    nohup podman system service --time=0 "unix://$SOCK" >/var/log/podman-service.log 2>&1 &
    for _ in $(seq 100); do answers && break; sleep 0.1; done
    answers || { log "podman service did not answer; see /var/log/podman-service.log"; exit 1; }
fi
echo "DOCKER_HOST=unix://$SOCK"
