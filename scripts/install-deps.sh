#!/usr/bin/env bash
# Installs what qbackup's demo and tests need on a fresh Debian machine:
# qbittorrent-nox (the real server the integration tests run against) and
# openssl (the HTTPS test makes a throwaway CA), curl (the demo sets a
# torrent's state through the WebAPI); debootstrap when QBT_VERSIONS
# selects a qBittorrent 5.x (the tests run it in a Debian chroot).
set -euo pipefail
missing=()
command -v qbittorrent-nox >/dev/null 2>&1 || missing+=(qbittorrent-nox)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
case ",${QBT_VERSIONS:-}," in
*,5.*|*,all,*)
    [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap) ;;
esac
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing ${missing[*]} (Debian packages)..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
qbittorrent-nox --version >&2
