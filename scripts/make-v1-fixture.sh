#!/usr/bin/env bash
# Regenerate tests/fixtures/store-v1.tar.gz and tests/fixtures/store-v1.expect.json:
# a real store in format 1 (manifest schema_version 1), written by a released
# qbackup 0.1.0 against a real, throwaway qbittorrent-nox on 127.0.0.1, for the
# test that upgrades a format-1 store. See tests/fixtures/README.md.
#
#   scripts/make-v1-fixture.sh [QBACKUP_V1 [TESTBED_V1]]
#
# QBACKUP_V1 (default /work/qbackup-v1): the format-1 qbackup binary.
# TESTBED_V1 (default /work/testbed-v1): `cargo build --example testbed` of the
# same commit. Neither is built here: this script never runs cargo.
#
# Environment:
#   WORK  scratch directory (default /tmp/qbackup-v1-fixture). Its path ends up
#         inside the fixture (the torrents' and categories' save paths), so the
#         fixed default keeps regenerations comparable. It is created by this
#         script and removed at the end (KEEP_WORK=1 keeps it); an existing one
#         is only replaced if an earlier run of this script made it.
#   OUT   where to write the fixture (default tests/fixtures of this repo).
#
# What it does: `testbed up` (the 5 fixtures/*.torrent, the magnet without
# metadata, 24 generated torrents: 30), then more categories (a nested
# "tv/hd"), tags, save paths and one resumed torrent through the WebAPI; run 1
# (--kind manual); run 2 (--kind scheduled: nothing new); two torrents change
# category and one is removed; run 3 (--kind pre-upgrade). Then it records
# `show RUN --torrents --json` of each run and `runs --json`, stops
# qBittorrent, tars the store, and checks the archive: extracted elsewhere, it
# must `check` clean and `show` the same JSON.
set -euo pipefail

QBACKUP=$(realpath "${1:-/work/qbackup-v1}")
TESTBED=$(realpath "${2:-/work/testbed-v1}")
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$REPO/tests/fixtures}
WORK=${WORK:-/tmp/qbackup-v1-fixture}
MARK=.made-by-make-v1-fixture

say() { echo "==> $*" >&2; }
die() { echo "make-v1-fixture: error: $*" >&2; exit 1; }

[ -x "$QBACKUP" ] || die "no qbackup binary at $QBACKUP"
[ -x "$TESTBED" ] || die "no testbed binary at $TESTBED"
for tool in jq curl tar gzip; do
    command -v "$tool" >/dev/null || die "needs $tool"
done
version=$("$QBACKUP" --version)
[ "$version" = "qbackup 0.1.0" ] || die "$QBACKUP is '$version', expected 'qbackup 0.1.0' (store format 1)"

# --- scratch directory -------------------------------------------------------

if [ -e "$WORK" ]; then
    [ -e "$WORK/$MARK" ] || die "$WORK exists and was not made by this script: set WORK or remove it"
    "$TESTBED" down --dir "$WORK/qbt" >/dev/null 2>&1 || true
    rm -rf "$WORK"
fi
mkdir -p "$WORK" "$OUT"
WORK=$(realpath "$WORK")
OUT=$(realpath "$OUT")
touch "$WORK/$MARK"
Q=$WORK/qbt            # qBittorrent's profile
STORE=$WORK/store      # the store being made
VERIFY=$WORK/verify    # the archive, extracted again
CJ=$WORK/cookies

QBT_UP=0
stop_qbt() {
    if [ "$QBT_UP" = 1 ]; then
        "$TESTBED" down --dir "$Q" >&2 || true
        QBT_UP=0
    fi
}
cleanup() {
    local rc=$?
    stop_qbt
    if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" != 0 ]; then
        echo "make-v1-fixture: scratch directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- qBittorrent -------------------------------------------------------------

say "starting a throwaway qbittorrent-nox (testbed: 5 fixture torrents, 1 magnet, 24 generated)"
QBT_UP=1
URL=$("$TESTBED" up --dir "$Q" --torrents 24 --fixtures "$REPO/fixtures")
URL=${URL%/}
case "$URL" in http://127.0.0.1:*) ;; *) die "unexpected WebUI URL '$URL'" ;; esac
QBT_PID=$(jq -r .pid "$Q/testbed.json")
say "qbittorrent-nox pid $QBT_PID at $URL"

# api PATH [curl args]: the body on stdout; dies unless HTTP 200.
api() {
    local code
    code=$(curl -sS -b "$CJ" -o "$WORK/api.body" -w '%{http_code}' "$URL/api/v2/$1" "${@:2}") ||
        die "WebAPI $1: curl failed"
    [ "$code" = 200 ] || die "WebAPI $1: HTTP $code $(cat "$WORK/api.body")"
    cat "$WORK/api.body"
}
[ "$(curl -sS -c "$CJ" --data-urlencode username=admin \
    --data-urlencode "password=$(head -n1 "$Q/password")" "$URL/api/v2/auth/login")" = "Ok." ] ||
    die "login refused"

list() { api torrents/info; }
# hashes NAME...: their ids, '|'-joined (the WebAPI's list syntax); fails
# unless every name is listed exactly once. Use as `h=$(hashes ...)`.
hashes() {
    list | jq -er --args '[.[] | select(.name as $n | $ARGS.positional | any(. == $n)) | .hash]
        | if length == ($ARGS.positional | length) then join("|") else error("not listed once each: \($ARGS.positional)") end' "$@"
}
# wait_until WHAT JQ-PREDICATE: until the predicate holds for the torrent list (30 s).
wait_until() {
    local i
    for i in $(seq 150); do
        if list | jq -e "$2" >/dev/null; then return 0; fi
        sleep 0.2
    done
    die "timed out waiting until $1"
}
settled='all(.[]; .state | test("^(checking|moving|allocating)") | not)'
# save_path_is NAME PATH: a jq predicate.
save_path_is() { printf 'any(.[]; .name == "%s" and .save_path == "%s")' "$1" "$2"; }

say "categories, tags, save paths and states"
api torrents/createCategory --data-urlencode category=tv --data-urlencode savePath= >/dev/null
api torrents/createCategory --data-urlencode category=tv/hd --data-urlencode "savePath=$Q/data/tv-hd" >/dev/null
api torrents/createCategory --data-urlencode category=archive --data-urlencode "savePath=$Q/data/archive" >/dev/null
api torrents/createTags --data-urlencode 'tags=hd,seed-forever,to check' >/dev/null

# testbed-00000..00011: category movies, tag keep, automatic management.
# testbed-00012..00023: tag demo, no category, manual management, default save path.
h=$(hashes testbed-00012 testbed-00013 testbed-00014)
api torrents/setCategory --data-urlencode "hashes=$h" \
    --data-urlencode category=tv/hd >/dev/null
h=$(hashes testbed-00015 testbed-00016)
api torrents/setCategory --data-urlencode "hashes=$h" \
    --data-urlencode category=tv >/dev/null
h=$(hashes testbed-00017 testbed-00018)
api torrents/setCategory --data-urlencode "hashes=$h" \
    --data-urlencode category=archive >/dev/null
# 00012, 00013, 00015, 00016 follow their category's save path; 00014 (tv/hd)
# and 00017, 00018 (archive) keep their own.
h=$(hashes testbed-00012 testbed-00013 testbed-00015 testbed-00016)
api torrents/setAutoManagement --data-urlencode "hashes=$h" \
    --data-urlencode enable=true >/dev/null
mkdir -p "$Q/data/elsewhere" "$Q/data/other"
h=$(hashes testbed-00017 testbed-00018)
api torrents/setLocation --data-urlencode "hashes=$h" \
    --data-urlencode "location=$Q/data/elsewhere" >/dev/null
h=$(hashes testbed-00019)
api torrents/setLocation --data-urlencode "hashes=$h" \
    --data-urlencode "location=$Q/data/other" >/dev/null
h=$(hashes testbed-00012 testbed-00013 testbed-00014)
api torrents/addTags --data-urlencode "hashes=$h" \
    --data-urlencode tags=hd >/dev/null
h=$(hashes testbed-00000 testbed-00001 testbed-00015)
api torrents/addTags --data-urlencode "hashes=$h" \
    --data-urlencode tags=seed-forever >/dev/null
h=$(hashes testbed-00019 testbed-00020)
api torrents/addTags --data-urlencode "hashes=$h" \
    --data-urlencode 'tags=to check' >/dev/null
# One torrent not paused (no peers anywhere: 127.0.0.1:9 tracker, no DHT/PeX/LSD).
h=$(hashes testbed-00021)
api torrents/resume --data-urlencode "hashes=$h" >/dev/null

wait_until "the save paths are applied" "$(save_path_is testbed-00012 "$Q/data/tv-hd") and \
    $(save_path_is testbed-00015 "$Q/downloads/tv") and $(save_path_is testbed-00017 "$Q/data/elsewhere") and \
    $(save_path_is testbed-00019 "$Q/data/other")"
wait_until "testbed-00021 is resumed" 'any(.[]; .name == "testbed-00021" and (.state | test("^paused") | not))'
wait_until "no torrent is checking or moving" "$settled"
sleep 1
wait_until "no torrent is checking or moving" "$settled"
[ "$(list | jq length)" = 30 ] || die "expected 30 torrents, have $(list | jq length)"

# --- qbackup -----------------------------------------------------------------

cat >"$WORK/config.toml" <<TOML
[store]
path = "store"

[[instance]]
name = "main"
url = "$URL/"
username = "admin"
password_file = "qbt/password"
TOML
QB() { "$QBACKUP" --config "$WORK/config.toml" "$@"; }

RUN_IDS=()
# backup KIND: one run; dies unless it exits 0 (success) or 3 (partial: the
# magnet without metadata). Its `run --json` line goes to $WORK/run-N.json.
backup() {
    local n=$((${#RUN_IDS[@]} + 1)) rc=0
    sleep 1.1 # run ids are by the second: keep them in order
    QB run --instance main --kind "$1" --json >"$WORK/run-$n.json" 2>"$WORK/run-$n.err" || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || die "run $n exited $rc: $(cat "$WORK/run-$n.json" "$WORK/run-$n.err")"
    RUN_IDS+=("$(jq -r .run_id "$WORK/run-$n.json")")
    say "run $n: $(jq -c '{run_id, kind, status, listed, exported, reused, metadata_unavailable, warnings}' "$WORK/run-$n.json")"
}
# expect N JQ-PREDICATE: run N's `run --json` line satisfies it.
expect() {
    jq -e "$2" "$WORK/run-$1.json" >/dev/null || die "run $1: not ($2): $(cat "$WORK/run-$1.json")"
}

say "run 1 (manual): exports everything"
backup manual
expect 1 '.listed == 30 and .exported == 29 and .reused == 0 and .metadata_unavailable == 1 and .status == "partial"'

say "run 2 (scheduled): nothing new"
backup scheduled
expect 2 '.listed == 30 and .exported == 0 and .reused == 29 and .metadata_unavailable == 1'

say "two torrents change category, one is removed"
h=$(hashes testbed-00005)
api torrents/setCategory --data-urlencode "hashes=$h" --data-urlencode category=tv/hd >/dev/null
h=$(hashes testbed-00020)
api torrents/setCategory --data-urlencode "hashes=$h" --data-urlencode category=archive >/dev/null
h=$(hashes testbed-00022)
api torrents/delete --data-urlencode "hashes=$h" --data-urlencode deleteFiles=false >/dev/null
wait_until "the changes are applied" "length == 29 and $(save_path_is testbed-00005 "$Q/data/tv-hd") and \
    any(.[]; .name == \"testbed-00020\" and .category == \"archive\")"
wait_until "no torrent is checking or moving" "$settled"

say "run 3 (pre-upgrade)"
backup pre-upgrade
expect 3 '.listed == 29 and .exported == 0 and .reused == 28 and .metadata_unavailable == 1'

stop_qbt
if kill -0 "$QBT_PID" 2>/dev/null && grep -q qbittorrent "/proc/$QBT_PID/cmdline" 2>/dev/null; then
    die "qbittorrent-nox pid $QBT_PID still running"
fi

# --- what the release prints about it ----------------------------------------

# The one field that names where the store is: show's `manifest_path`
# (absolute). Every string starting with STORE/ gets the placeholder instead.
placeholder() { jq --arg s "$1/" 'walk(if type == "string" and startswith($s) then "$STORE/" + .[($s | length):] else . end)'; }

# expect_json CONFIG STORE: the expect file's content for the store at STORE.
expect_json() {
    local cfg=$1 store=$2 id runs_json shows='[]'
    for id in "${RUN_IDS[@]}"; do
        show=$("$QBACKUP" --config "$cfg" show "$id" --torrents --json | placeholder "$store")
        shows=$(jq -n --argjson a "$shows" --arg id "$id" --argjson s "$show" '$a + [{run_id: $id, show: $s}]')
    done
    runs_json=$("$QBACKUP" --config "$cfg" runs --json | placeholder "$store")
    jq -n --argjson r "$shows" --argjson j "$runs_json" '{runs: $r, runs_json: $j}'
}
say "recording show --torrents --json and runs --json"
expect_json "$WORK/config.toml" "$STORE" >"$WORK/expect.json"
if grep -qF "$STORE" "$WORK/expect.json"; then
    die "the store's path is still in the expected JSON"
fi

# --- the archive -------------------------------------------------------------

say "archiving the store"
DB=$STORE/history.sqlite3
if [ -s "$DB-wal" ]; then
    # Every qbackup process has ended, so this is the only connection.
    command -v sqlite3 >/dev/null && sqlite3 "$DB" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
fi
members=(./blobs ./manifests ./history.sqlite3)
if [ -s "$DB-wal" ]; then
    say "history.sqlite3-wal still holds data: archived with it"
    members+=(./history.sqlite3-wal)
fi
# Nothing but qbackup's store: no lock files, no -shm, no temporary files.
if find "$STORE/blobs" "$STORE/manifests" -name '.tmp-*' | grep -q .; then
    die "temporary files in the store"
fi
# Trackers: only 127.0.0.1 ones, anywhere in the store (in .torrent files, and
# percent-encoded in the magnet links of the run files and the database).
if grep -raohiE 'https?(://|%3a%2f%2f)[^/:"?&%]+' "$STORE/blobs" "$STORE/manifests" "$DB" |
    sed -E 's,%3a%2f%2f,://,I' | tr 'A-Z' 'a-z' | sort -u | grep -v '^http://127\.0\.0\.1$'; then
    die "a tracker or URL that is not on 127.0.0.1 is in the store (above)"
fi
tar -C "$STORE" --sort=name --owner=0 --group=0 --numeric-owner -cf - "${members[@]}" |
    gzip -n -9 >"$WORK/store-v1.tar.gz"

# --- check the archive -------------------------------------------------------

say "checking the archive: extracted elsewhere, it must check clean and show the same"
mkdir -m 0700 "$VERIFY" "$VERIFY/store"
tar -C "$VERIFY/store" -xzf "$WORK/store-v1.tar.gz"
printf 'unused\n' >"$VERIFY/password"
chmod 0600 "$VERIFY/password"
cat >"$VERIFY/config.toml" <<TOML
[store]
path = "store"

[[instance]]
name = "main"
url = "http://127.0.0.1:9/"
username = "admin"
password_file = "password"
TOML
"$QBACKUP" --config "$VERIFY/config.toml" runs >&2
rc=0
"$QBACKUP" --config "$VERIFY/config.toml" check >&2 || rc=$?
[ "$rc" = 0 ] || die "check of the extracted store exited $rc"
"$QBACKUP" --config "$VERIFY/config.toml" check --json >"$WORK/check.json"
expect_json "$VERIFY/config.toml" "$VERIFY/store" >"$WORK/expect-verify.json"
cmp -s "$WORK/expect.json" "$WORK/expect-verify.json" ||
    die "the extracted store shows differently: diff $WORK/expect.json $WORK/expect-verify.json"

size=$(stat -c %s "$WORK/store-v1.tar.gz")
[ "$size" -lt 1000000 ] || die "the archive is $size bytes"
cp "$WORK/store-v1.tar.gz" "$OUT/store-v1.tar.gz"
jq . "$WORK/expect.json" >"$OUT/store-v1.expect.json"
say "wrote $OUT/store-v1.tar.gz ($size bytes) and $OUT/store-v1.expect.json; runs: ${RUN_IDS[*]}"
