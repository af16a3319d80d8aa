#!/usr/bin/env bash
# The test command: lint, then every unit and integration test (the
# integration tests start real qbittorrent-nox instances on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
# Every qBittorrent line: the host's 4.5.2, and 5.1.0 (trixie) and 5.3.0 (sid)
# in debootstrap chroots built on first use and cached in target/qbt-chroots/
# (or $QBACKUP_CHROOT_CACHE). QBT_VERSIONS=4.5 makes a quicker local run.
export QBT_VERSIONS="${QBT_VERSIONS:-4.5,5.1,5.3}"
scripts/install-deps.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
