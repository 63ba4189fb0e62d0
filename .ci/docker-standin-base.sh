#!/usr/bin/env bash
# Make the Dockerfile's base image available to the local engine.
#   .ci/docker-standin-base.sh [TAG]      TAG defaults to the Dockerfile's first FROM
# Uses the image if the engine has it, else pulls it, else (no registry reachable, as in
# CI here) builds a local stand-in with exactly that tag: Debian bookworm minbase with
# Debian's Python 3.11, pip and venv, laid out like the official slim image where the
# Dockerfile relies on it (`python` on PATH, pip allowed to install system-wide).
# The Dockerfile itself stays what any user builds against the real image.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-$(awk 'toupper($1) == "FROM" {print $2; exit}' Dockerfile)}
SUITE=${STANDIN_SUITE:-bookworm}
MIRROR=${STANDIN_MIRROR:-http://deb.debian.org/debian}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG: present"
  exit 0
fi
if timeout 60 docker pull -q "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG: pulled"
  exit 0
fi

echo "base image $TAG: not present and not pullable; building a local stand-in from Debian $SUITE"
ROOTFS=$(mktemp -d /var/tmp/standin-rootfs.XXXXXX)
trap '$SUDO rm -rf "$ROOTFS"' EXIT

$SUDO debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  "$SUITE" "$ROOTFS" "$MIRROR" >/tmp/sentiment-nb-debootstrap.log 2>&1 \
  || { tail -n 30 /tmp/sentiment-nb-debootstrap.log >&2; exit 1; }

$SUDO ln -sf /usr/bin/python3 "$ROOTFS/usr/local/bin/python"
# The official image's Python is not Debian-managed: pip may install into it.
$SUDO rm -f "$ROOTFS"/usr/lib/python3.*/EXTERNALLY-MANAGED
# pip inside the build trusts the same certificates as this host.
$SUDO cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
# Like the official image: no apt lists or downloaded packages shipped.
$SUDO rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb

$SUDO tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  --message "local stand-in for $TAG (debootstrap $SUITE minbase + Debian python3)" \
  - "$TAG" >/dev/null
echo "base image $TAG: stand-in built ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
