#!/bin/sh
# Offline base for the toolcrib sandbox image: a minimal Debian bookworm root
# file system with Python 3.11, built with debootstrap from the machine's own
# apt mirror (no container registry needed), then trimmed.
#
# usage: build-base.sh ROOTDIR MIRROR
# toolcrib (sandbox/image.py) calls this, then imports ROOTDIR through the
# Docker API. Needs root and debootstrap.
set -eu

root=${1:?usage: build-base.sh ROOTDIR MIRROR}
mirror=${2:?usage: build-base.sh ROOTDIR MIRROR}

command -v debootstrap >/dev/null 2>&1 || {
    echo "build-base.sh: debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 1
}

debootstrap --variant=minbase --include=python3 bookworm "$root" "$mirror"

# Trim what a sandbox never needs: docs, manuals, locales, apt caches and
# lists, logs, debootstrap's own leftovers.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/usr/share/locale/* "$root"/usr/share/lintian \
       "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
       "$root"/var/log/* "$root"/debootstrap "$root"/tmp/* "$root"/root/.cache
# Drop every setuid/setgid bit: nothing in the sandbox may change identity.
find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
