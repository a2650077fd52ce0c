#!/bin/sh
# Make sure a Docker engine answers on this machine (idempotent).
#
# If `docker info` already answers, do nothing. Otherwise install docker.io
# (and debootstrap, for the offline sandbox image) from Debian when missing,
# start dockerd in the background with its log in $DOCKERD_LOG, and wait
# until it answers. Exit 1 with a clear message when it does not.
#
# Environment: DOCKERD_LOG (default /var/log/toolcrib-dockerd.log),
#              DOCKERD_WAIT seconds (default 60).
set -u

log=${DOCKERD_LOG:-/var/log/toolcrib-dockerd.log}
wait_s=${DOCKERD_WAIT:-60}

say() { echo "docker-engine: $*" >&2; }

answers() { docker info >/dev/null 2>&1; }

install_missing() {
    missing=""
    command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
    command -v docker >/dev/null 2>&1 || case "$missing" in *docker.io*) ;; *) missing="$missing docker.io" ;; esac
    command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
    if [ -n "$missing" ]; then
        if [ "$(id -u)" != 0 ]; then
            say "need root to install:$missing"
            exit 1
        fi
        say "installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2 || { say "apt-get update failed"; exit 1; }
        # shellcheck disable=SC2086 # word splitting is the point
        apt-get install -y -q --no-install-recommends $missing >&2 || { say "apt-get install$missing failed"; exit 1; }
    fi
}

# dockerd needs the cgroup controllers mounted: cgroup v2 (unified) or the
# v1 per-controller hierarchies. Machines without an init that mounts them
# (e.g. a bare VM init) get them from cgroupfs-mount.
ensure_cgroups() {
    if [ -e /sys/fs/cgroup/cgroup.controllers ] || mountpoint -q /sys/fs/cgroup/memory 2>/dev/null; then
        return 0
    fi
    if ! command -v cgroupfs-mount >/dev/null 2>&1; then
        say "installing: cgroupfs-mount"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends cgroupfs-mount >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends cgroupfs-mount >&2; } \
            || { say "cannot install cgroupfs-mount"; return 0; }
    fi
    say "mounting cgroup hierarchies"
    cgroupfs-mount >&2 || say "cgroupfs-mount failed; dockerd may not start"
}

if answers; then
    install_missing
    say "engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
fi

install_missing
ensure_cgroups

if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "starting dockerd (log: $log)"
    mkdir -p "$(dirname "$log")"
    # containerd is started by dockerd itself when not running.
    nohup dockerd >"$log" 2>&1 </dev/null &
else
    say "dockerd is running but not answering yet; waiting"
fi

i=0
while [ "$i" -lt "$wait_s" ]; do
    if answers; then
        say "engine answers after ${i}s ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        exit 0
    fi
    sleep 1
    i=$((i + 1))
done

say "the Docker engine did not answer within ${wait_s}s; last lines of $log:"
tail -n 20 "$log" >&2 2>/dev/null || true
exit 1
