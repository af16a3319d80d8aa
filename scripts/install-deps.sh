#!/usr/bin/env bash
# Installs what qbackup's demo and tests need on a fresh Debian machine:
# qbittorrent-nox (the real server the integration tests run against).
set -euo pipefail
if command -v qbittorrent-nox >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing qbittorrent-nox (Debian package)..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qbittorrent-nox >/dev/null
qbittorrent-nox --version >&2
