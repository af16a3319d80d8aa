#!/usr/bin/env bash
# The test command: lint, then every unit and integration test (the
# integration tests start real qbittorrent-nox instances on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
# Every qBittorrent line: the host's 4.5.2, and 5.1.0 (trixie) and 5.3.0 (sid)
# in debootstrap chroots built on first use and cached in target/qbt-chroots/
# (or $QBACKUP_CHROOT_CACHE). QBT_VERSIONS=4.5 makes a quicker local run.
export QBT_VERSIONS="${QBT_VERSIONS:-4.5,5.1,5.3}"
# The remote tests' S3 server (s3s-fs from crates.io) is built once, about
# 5 minutes on 2 cores, and cached in target/tools/ (or $QBACKUP_TOOL_CACHE);
# the SFTP tests run the Debian openssh-server's sshd.
QBACKUP_S3_SERVER="$(scripts/install-deps.sh --s3-server)"
export QBACKUP_S3_SERVER
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# Unit and integration tests (examples and the binary have none; clippy
# above already compiled them). The last line sums every test binary's result.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --lib --tests 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
