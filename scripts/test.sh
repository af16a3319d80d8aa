#!/usr/bin/env bash
# The test command: lint, then every unit and integration test (the
# integration tests start real qbittorrent-nox instances on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
