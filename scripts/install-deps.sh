#!/usr/bin/env bash
# Installs what qbackup's demo and tests need on a fresh Debian machine:
# qbittorrent-nox (the real server the integration tests run against) and
# openssl (the HTTPS test makes a throwaway CA), curl (the demo sets a
# torrent's state through the WebAPI), chromium (the status page test loads
# the page headless); openssh-server and openssh-client
# (the SFTP remote tests start a real sshd on 127.0.0.1, and the SFTP
# backend runs the `ssh` client); debootstrap when QBT_VERSIONS selects a
# qBittorrent 5.x (the tests run it in a Debian chroot).
#
# `install-deps.sh --s3-server` also builds the S3-compatible server the
# remote tests run (s3s-fs, from crates.io, with `cargo install --locked`)
# once into ${QBACKUP_TOOL_CACHE:-target/tools}/s3s-fs-VERSION/ and prints
# the binary's path on stdout (scripts/test.sh exports it as
# QBACKUP_S3_SERVER). The build takes about 5 minutes on 2 cores; later
# calls find it cached. A clean checkout (CI) builds it once per run, like
# the qBittorrent chroots.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
want_s3=0
for arg in "$@"; do
    case "$arg" in
    --s3-server) want_s3=1 ;;
    *) echo "usage: $0 [--s3-server]" >&2; exit 2 ;;
    esac
done

missing=()
command -v qbittorrent-nox >/dev/null 2>&1 || missing+=(qbittorrent-nox)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The remote tests decrypt objects with the age CLI, as docs/offsite.md says a user can.
{ command -v age && command -v age-keygen; } >/dev/null 2>&1 || missing+=(age)
# The archive tests read exports with these alone.
{ command -v unzip && command -v zstd; } >/dev/null 2>&1 || missing+=(unzip zstd)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
{ command -v ssh && command -v ssh-keygen && command -v sftp; } >/dev/null 2>&1 ||
    missing+=(openssh-client)
case ",${QBT_VERSIONS:-}," in
*,5.*|*,all,*)
    [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap) ;;
esac
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "installing ${missing[*]} (Debian packages)..." >&2
    $SUDO apt-get update -qq
    # (The tests start their own sshd; the package's service is not used.)
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    qbittorrent-nox --version >&2
fi

[ "$want_s3" -eq 1 ] || exit 0

# The S3 server: s3s-fs (crates.io), an S3 API over a directory, which the
# tests read back to see what a remote holds. Pinned: bump S3S_VERSION to
# rebuild (the cache directory names the version).
S3S_VERSION=0.14.1
cache="${QBACKUP_TOOL_CACHE:-$repo/target/tools}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
dest="$cache/s3s-fs-$S3S_VERSION"
bin="$dest/bin/s3s-fs"
if [ ! -x "$bin" ]; then
    # One build at a time (parallel test binaries may ask at once).
    exec 9>"$cache/s3s-fs.lock"
    flock 9
    if [ ! -x "$bin" ]; then
        echo "building s3s-fs $S3S_VERSION (the remote tests' S3 server; about 5 minutes on 2 cores, once) into $dest ..." >&2
        start=$(date +%s)
        rm -rf "$dest.partial"
        if ! cargo install --locked --quiet --root "$dest.partial" \
            s3s-fs --version "$S3S_VERSION" --features binary >&2; then
            rm -rf "$dest.partial"
            echo "could not build s3s-fs $S3S_VERSION with cargo install (see above)" >&2
            exit 1
        fi
        rm -rf "$dest"
        mv "$dest.partial" "$dest"
        echo "built s3s-fs $S3S_VERSION in $(( $(date +%s) - start )) s" >&2
    fi
    exec 9>&-
fi
"$bin" --version >/dev/null
echo "$bin"
