#!/usr/bin/env bash
# The demo: start a throwaway local qBittorrent with sample torrents, back it
# up twice (the second run reuses everything), look at the history, then
# restore the backup into a second, empty qBittorrent and compare it with
# `qbackup diff`; last, an offline restore (with resume data: ratio, totals,
# dates) into a third, stopped qBittorrent's profile. Off the box: an
# encrypted, incremental copy to a remote (a directory here; S3 and SFTP work
# the same), a portable archive, and a restore from the remote alone.
# Everything runs on 127.0.0.1; the temp dir is removed at the end unless
# QBACKUP_DEMO_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "==> building qbackup"
cargo build --quiet --bin qbackup --example testbed
BIN=target/debug
DEMO=$(mktemp -d /tmp/qbackup-demo.XXXXXX)
cleanup() {
    $BIN/examples/testbed down --dir "$DEMO/source" >/dev/null 2>&1 || true
    $BIN/examples/testbed down --dir "$DEMO/target" >/dev/null 2>&1 || true
    $BIN/examples/testbed down --dir "$DEMO/offline" >/dev/null 2>&1 || true
    if [ "${QBACKUP_DEMO_KEEP:-0}" = 1 ]; then echo "kept $DEMO"; else rm -rf "$DEMO"; fi
}
trap cleanup EXIT

echo "==> starting a throwaway qBittorrent with sample torrents (fixtures + 200 generated)"
SOURCE_URL=$($BIN/examples/testbed up --dir "$DEMO/source" --torrents 200 --fixtures fixtures)
echo "==> starting a second, empty qBittorrent to restore into"
TARGET_URL=$($BIN/examples/testbed up --dir "$DEMO/target" --torrents 0 --fixtures "$DEMO/no-fixtures")
echo "==> starting a third one and stopping it again: its profile is the offline restore's target"
$BIN/examples/testbed up --dir "$DEMO/offline" --torrents 0 --fixtures "$DEMO/no-fixtures" >/dev/null
$BIN/examples/testbed down --dir "$DEMO/offline" >/dev/null

echo "==> the user's own settings on one torrent: renamed, an upload limit, sequential download, an extra tracker"
JAR="$DEMO/cookies"
curl -sf -c "$JAR" --data-urlencode username=admin --data-urlencode "password@$DEMO/source/password" \
    "${SOURCE_URL}api/v2/auth/login" >/dev/null
HASH=$(curl -sf -b "$JAR" "${SOURCE_URL}api/v2/torrents/info?tag=demo&limit=1" | grep -o '"hash":"[0-9a-f]*"' | head -1 | cut -d'"' -f4)
curl -sf -b "$JAR" --data "hash=$HASH&name=my renamed torrent" "${SOURCE_URL}api/v2/torrents/rename" >/dev/null
curl -sf -b "$JAR" --data "hashes=$HASH&limit=524288" "${SOURCE_URL}api/v2/torrents/setUploadLimit" >/dev/null
curl -sf -b "$JAR" --data "hashes=$HASH" "${SOURCE_URL}api/v2/torrents/toggleSequentialDownload" >/dev/null
curl -sf -b "$JAR" --data-urlencode "hash=$HASH" --data-urlencode "urls=http://127.0.0.1:9/extra/announce" \
    "${SOURCE_URL}api/v2/torrents/addTrackers" >/dev/null
echo "torrent ${HASH:0:8}: now 'my renamed torrent', 512 KiB/s up, sequential, two trackers"

DAEMON_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$DEMO/config.toml" <<TOML
[store]
path = "store"

[[instance]]
name = "source"
url = "$SOURCE_URL"
username = "admin"
password_file = "source/password"
exports_per_second = 200
# Resume data (ratio, totals, dates) is read from the profile, read-only.
profile = "source"
# For `qbackup daemon`: back this instance up every night at 03:17.
schedule = "17 3 * * *"

[[instance]]
name = "target"
url = "$TARGET_URL"
username = "admin"
password_file = "target/password"

# An encrypted copy off the box: a directory here (a NAS mount); S3 and SFTP
# are configured the same way (docs/offsite.md).
[daemon]
listen = "127.0.0.1:$DAEMON_PORT"

[[remote]]
name = "offsite"
type = "dir"
path = "offsite"
passphrase_file = "offsite.pass"
TOML
printf 'demo passphrase: keep yours in a password manager\n' > "$DEMO/offsite.pass"
chmod 600 "$DEMO/offsite.pass"
Q() { echo "\$ qbackup $*"; $BIN/qbackup --config "$DEMO/config.toml" "$@"; }

echo
echo "==> first backup (the magnet without metadata makes it partial: exit 3)"
code=0; Q run --instance source --kind manual || code=$?
echo "exit code $code"
echo
echo "==> second backup: nothing new to export, no metadata rewritten (store format 2)"
before=$(du -sb "$DEMO/store" | cut -f1)
code=0; Q run --instance source --kind manual || code=$?
echo "exit code $code; the store grew by $(($(du -sb "$DEMO/store" | cut -f1) - before)) bytes (a run file and a history row):"
ls -l "$DEMO"/store/runs/source/
echo "metadata chunks shared by both runs: $(find "$DEMO/store/chunks" -name '*.json.zst' | wc -l)"
echo
Q runs
echo
Q show latest --instance source
echo
echo "==> read the whole store back: every blob, every run file, the database"
Q check
echo
echo "==> off the box: an encrypted copy (every object age-encrypted, names are keyed hashes)"
Q copy --to offsite
echo "==> a second copy uploads nothing"
Q copy --to offsite
echo "torrent names readable on the remote: $(grep -rl 'testbed' "$DEMO/offsite" | wc -l) files; object names: $(ls "$DEMO/offsite/runs" | head -1)…"
Q check --remote offsite
echo
echo "==> a portable archive of the latest run (readable with tar alone)"
Q archive export --instance source --format tar.gz -o "$DEMO/source-backup.tar.gz"
tar -tzf "$DEMO/source-backup.tar.gz" > "$DEMO/archive.list"
echo "$(wc -l < "$DEMO/archive.list") entries, e.g.:"; grep -m3 '^torrents/' "$DEMO/archive.list"; grep -m1 '^resume/' "$DEMO/archive.list"; grep -v '^torrents/\|^resume/' "$DEMO/archive.list"
if $BIN/qbackup restore --help >/dev/null 2>&1; then
    echo
    echo "==> restore plan for the empty instance (its data would live under target/, not source/)"
    Q restore --from source --to target --save-path-map "$DEMO/source=$DEMO/target" --dry-run | head -20
    echo
    echo "==> restore"
    code=0; Q restore --from source --to target --save-path-map "$DEMO/source=$DEMO/target" || code=$?
    echo "exit code $code"
    echo
    echo "==> restoring again adds nothing"
    code=0; Q restore --from source --to target --save-path-map "$DEMO/source=$DEMO/target" || code=$?
    echo
    echo "==> everything came back: the plan for the target now has nothing to add"
    Q restore --from source --to target --save-path-map "$DEMO/source=$DEMO/target" --dry-run | tail -1
    echo
    echo "==> diff: the restored instance against the backup, field by field (settings, files, trackers)"
    Q diff --from source --to target --save-path-map "$DEMO/source=$DEMO/target" --hash "$HASH"
    echo
    echo "==> offline restore into the stopped third profile: .torrent + resume data, paths mapped"
    echo "(the magnet without metadata has no .torrent to write: exit 3, restore it through the WebAPI)"
    code=0; Q restore --offline --profile "$DEMO/offline" --from source --save-path-map "$DEMO/source=$DEMO/offline" >"$DEMO/offline.out" || code=$?
    tail -3 "$DEMO/offline.out"
    echo "exit code $code; resume data files in the stopped profile: $(find "$DEMO/offline" -name '*.fastresume' | wc -l)"
    echo
    echo "==> disaster drill: the local store is gone; restore from the remote alone"
    mv "$DEMO/store" "$DEMO/store.lost"
    Q restore --from-remote offsite --from source --to target --save-path-map "$DEMO/source=$DEMO/target" --dry-run | tail -1
    mv "$DEMO/store.lost" "$DEMO/store"
    echo
    Q runs --limit 5
    echo
    echo "==> the daemon: its schedules, a status page, /metrics and /healthz on 127.0.0.1"
    Q daemon --check
    $BIN/qbackup --config "$DEMO/config.toml" daemon 2>"$DEMO/daemon.log" &
    DAEMON=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$DAEMON_PORT/healthz" >/dev/null && break; sleep 0.2; done
    echo "\$ curl http://127.0.0.1:$DAEMON_PORT/metrics (the source instance's lines)"
    curl -sf "http://127.0.0.1:$DAEMON_PORT/metrics" | grep 'instance="source"' | grep -E 'torrents_stored|run_warnings|last_run_status.*} 1' || true
    echo "status page: $(curl -sf "http://127.0.0.1:$DAEMON_PORT/" | grep -o '<svg' | wc -l) inline charts, open http://127.0.0.1:$DAEMON_PORT/ in a browser"
    kill -TERM "$DAEMON"; wait "$DAEMON" || true
fi
echo
echo "demo done"
