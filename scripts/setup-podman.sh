#!/usr/bin/env bash
# Make a container engine available to echo-rl's ContainerSandbox on this machine (run as root).
# Idempotent; used by CI and by the session-scoped pytest fixture of tests/sandbox.
#
#   1. podman, runc and debootstrap from Debian (what scripts/install.sh installs);
#   2. explicit default ulimits in /etc/containers/containers.conf (rlimits cannot be raised here, and
#      podman's defaults ask for more than the host grants, so containers made through the API fail);
#   3. base images made by debootstrap and imported (images cannot be pulled here):
#      - localhost/echo-rl/bookworm-slim: `debootstrap --variant=minbase`, the same 88 packages as the real
#        debian:bookworm-slim (no python3, git, make, procps): the stand-in that proves exported tasks
#        install what they run;
#      - localhost/echo-rl/bookworm-base: minbase plus python3, git, make and friends, for sandboxes that
#        want tools without a build (tests/sandbox names it explicitly; nothing else uses it);
#      - debian:bookworm-slim: pulled when the registry answers, else the stand-in tagged with that name.
#        A debian:bookworm-slim that has python3 (what earlier versions of this script tagged) is not
#        the real one and is replaced by the stand-in;
#   4. `podman system service` on unix:///run/podman/podman.sock.
#
# Prints the DOCKER_HOST to use on its last line.
set -euo pipefail

SOCK=/run/podman/podman.sock
BASE=localhost/echo-rl/bookworm-base
SLIM=localhost/echo-rl/bookworm-slim
REAL=debian:bookworm-slim
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

# bootstrap IMAGE [PACKAGES]: debootstrap minbase (plus PACKAGES) and import it as IMAGE, unless it exists.
bootstrap() {
    local image=$1 include=${2:+--include=$2} root
    podman image exists "$image" && return 0
    root=$(mktemp -d /var/tmp/echo-rl-debootstrap.XXXXXX)
    log "debootstrap bookworm minbase ${2:-} into $root for $image (about 30-60 s)"
    debootstrap --variant=minbase $include bookworm "$root" "$MIRROR" >/dev/null || { rm -rf "$root"; return 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' \
        --change "LABEL org.echo-rl.image=$image" - "$image" >/dev/null
    rm -rf "$root"
}
# has_python IMAGE: whether IMAGE exists and has python3 (the real debian:bookworm-slim has none).
has_python() { podman image exists "$1" && podman run --rm --network none "$1" test -e /usr/bin/python3; }
if has_python "$REAL"; then
    log "$REAL has python3: not the real image (an earlier setup tagged its own); it becomes $BASE"
    podman image exists "$BASE" || podman tag "$REAL" "$BASE"
    podman untag "$REAL" "$REAL"  # this one name only
fi
bootstrap "$SLIM"
bootstrap "$BASE" "$INCLUDE"
if ! podman image exists "$REAL"; then
    timeout 60 podman pull -q "docker.io/library/$REAL" >/dev/null 2>&1 || podman tag "$SLIM" "$REAL"
fi

answers() { curl -sf --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
# A service whose working directory was deleted (started from a checkout since removed) still answers pings
# but fails every container start ("write child: broken pipe"): replace it.
for pid in $(pgrep -f "podman system service --time=0 unix://$SOCK" || true); do
    if [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == *" (deleted)" ]]; then
        log "replacing the podman service $pid (its working directory was deleted)"
        kill "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
done
if ! answers; then
    log "starting podman system service on $SOCK"
    mkdir -p "$(dirname "$SOCK")"
    # from /, so that it outlives the checkout that started it
    (cd / && exec nohup podman system service --time=0 "unix://$SOCK" >/var/log/podman-service.log 2>&1 </dev/null) &
    for _ in $(seq 100); do answers && break; sleep 0.1; done
    answers || { log "podman service did not answer; see /var/log/podman-service.log"; exit 1; }
fi
echo "DOCKER_HOST=unix://$SOCK"
