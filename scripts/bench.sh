#!/usr/bin/env bash
# Benchmark (issue 10, store format 2): qbackup against plain baselines on real
# local qbittorrent-nox instances. One run per size; every row of a size is
# measured in one go against the same instances, qbackup alternating with its
# baseline so that load drift hits both: only ratios matter. Writes
# docs/benchmark.md (one table per size).
#
# Usage: scripts/bench.sh [TORRENTS ...]        (default: 10000 100000)
#
# Per size: a source instance with TORRENTS generated torrents (examples/testbed),
# then the plain export loop, qbackup's first run (pace unlimited), the loop
# again; a listing, qbackup's second run (nothing new), a listing; 1% of the
# torrents change category (torrents/setCategory); qbackup's third run, a
# listing; then, up to BENCH_RESTORE_MAX torrents, the plain add loop, qbackup
# restore and the plain add loop again, each into a fresh empty instance.
# Peak RSS (/usr/bin/time) and store growth (du -sb, database included) for
# every qbackup row.
#
# Copy to S3 (issue 12), up to BENCH_COPY_MAX torrents: once the source is
# down, a real local S3 server (s3s-fs, built by install-deps.sh --s3-server;
# QBACKUP_S3_SERVER if set) on 127.0.0.1, and BENCH_COPY_REPS repetitions,
# each into fresh buckets, of: `qbackup copy --to s3bench` of the store and
# `rclone copy` (Debian package, its default transfers/checkers) of the same
# store files (blobs, chunks, runs, resume), then each again with nothing new.
# Wall time, peak RSS and CPU of each, the server's CPU and requests by S3
# operation, bytes uploaded.
#
# Environment:
#   BENCH_RESTORE_MAX=N  restore rows only for sizes up to N (default 10000)
#   BENCH_ADD_BATCH=N    torrents per torrents/add while loading the testbed (1000)
#   BENCH_COPY_MAX=N     copy rows only for sizes up to N (default 10000; 0: none)
#   BENCH_COPY_REPS=N    repetitions of the copy rows (default 3; the median is used)
#   BENCH_PROFILE=debug  unoptimized build: only to check the script itself
#   BENCH_KEEP=1         keep the work directory (/tmp/qbackup-bench.*)
#   BENCH_OUT=FILE       write the table there instead of docs/benchmark.md
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
for n in "${SIZES[@]}"; do
    if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 2 ]; then
        echo "usage: scripts/bench.sh [TORRENTS ...]   (each at least 2; default 10000 100000)" >&2
        exit 2
    fi
done
RESTORE_MAX=${BENCH_RESTORE_MAX:-10000}
COPY_MAX=${BENCH_COPY_MAX:-10000}
COPY_REPS=${BENCH_COPY_REPS:-3}
[[ $COPY_MAX =~ ^[0-9]+$ && $COPY_REPS =~ ^[1-9][0-9]*$ ]] || {
    echo "bench: BENCH_COPY_MAX must be a number and BENCH_COPY_REPS at least 1" >&2
    exit 2
}
WANT_COPY=0
for n in "${SIZES[@]}"; do [ "$n" -gt "$COPY_MAX" ] || WANT_COPY=1; done
ADD_BATCH=${BENCH_ADD_BATCH:-1000}
PROFILE=${BENCH_PROFILE:-release}
OUT=${BENCH_OUT:-docs/benchmark.md}

scripts/install-deps.sh
# What this script needs beyond that: GNU time (peak RSS), curl, python3;
# for the copy rows, rclone (the baseline), age-keygen and the S3 server.
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "$WANT_COPY" -eq 1 ]; then
    command -v rclone >/dev/null 2>&1 || missing+=(rclone)
    command -v age-keygen >/dev/null 2>&1 || missing+=(age)
fi
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing ${missing[*]} (Debian packages)..." >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

S3_SERVER=""
if [ "$WANT_COPY" -eq 1 ]; then
    S3_SERVER=${QBACKUP_S3_SERVER:-}
    [ -n "$S3_SERVER" ] || S3_SERVER=$(scripts/install-deps.sh --s3-server)
    [ -x "$S3_SERVER" ] || { echo "bench: no S3 server at $S3_SERVER" >&2; exit 1; }
fi

EXAMPLES=(--example testbed --example plain_export --example plain_list --example plain_add)
if [ "$PROFILE" = release ]; then
    cargo build --quiet --release --bin qbackup "${EXAMPLES[@]}"
    BIN=target/release
else
    cargo build --quiet --bin qbackup "${EXAMPLES[@]}"
    BIN=target/debug
fi

W=$(mktemp -d /tmp/qbackup-bench.XXXXXX)
S3_PID=""
s3_down() {
    if [ -n "$S3_PID" ]; then
        kill "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=""
    fi
}
cleanup() {
    s3_down
    for d in "$W"/*/*/; do
        [ -f "$d/testbed.json" ] && $BIN/examples/testbed down --dir "$d" >/dev/null 2>&1
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT

log() { echo "bench: $(date +%H:%M:%S) $*" >&2; }
now_ms() { date +%s%3N; }
# jget FILE KEY: a top-level value of the JSON document in FILE (its last line).
jget() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]])' "$1" "$2"; }
store_bytes() { if [ -d "$STORE" ]; then du -sb "$STORE" | cut -f1; else echo 0; fi; }
# put KEY VALUE: one result of this size.
put() { echo "$1=$2" >>"$D/results"; }

# up NAME TORRENTS: a testbed instance in $D/NAME; prints its URL.
up() {
    if ! $BIN/examples/testbed up --dir "$D/$1" --torrents "$2" --batch "$ADD_BATCH" \
        --fixtures "$W/no-fixtures" 2>"$D/$1.log"; then
        cat "$D/$1.log" >&2
        return 1
    fi
}
down() { $BIN/examples/testbed down --dir "$D/$1" >>"$D/$1.log" 2>&1 || true; }

# timed NAME CMD...: runs CMD (stdout to $D/NAME.out, stderr to $D/NAME.err);
# sets T to its wall time in ms and RC to its exit code.
timed() {
    local name=$1 t0
    shift
    t0=$(now_ms)
    RC=0
    "$@" >"$D/$name.out" 2>"$D/$name.err" || RC=$?
    T=$(($(now_ms) - t0))
}

# plain NAME CMD...: a baseline row; it must succeed.
plain() {
    local name=$1
    timed "$@"
    if [ "$RC" -ne 0 ]; then
        echo "bench: $name failed (exit $RC):" >&2
        cat "$D/$name.err" "$D/$name.out" >&2
        exit 1
    fi
    put "${name}_ms" "$T"
    log "$name: $T ms $(tail -1 "$D/$name.out")"
}

# qb NAME ARGS...: a qbackup row, with peak RSS and store growth.
qb() {
    local name=$1 before after
    shift
    before=$(store_bytes)
    timed "$name" /usr/bin/time -f %M -o "$D/$name.rss" \
        "$BIN/qbackup" --config "$D/config.toml" "$@" --json
    after=$(store_bytes)
    put "${name}_ms" "$T"
    put "${name}_rc" "$RC"
    put "${name}_rss_kb" "$(tail -1 "$D/$name.rss")"
    put "${name}_growth" $((after - before))
    put "${name}_status" "$(jget "$D/$name.out" status 2>/dev/null || echo "no report")"
    log "$name: $T ms, exit $RC, RSS $(tail -1 "$D/$name.rss") KiB, store +$((after - before)) B"
    if [ "$RC" -ne 0 ]; then
        echo "bench: warning: $name exited $RC (its row says so):" >&2
        tail -5 "$D/$name.err" >&2
        tail -c 2000 "$D/$name.out" >&2
    fi
}

# config [TARGET_URL]: the qbackup config of this size.
config() {
    cat >"$D/config.toml" <<TOML
[store]
path = "store"
[[instance]]
name = "bench"
url = "$SRC_URL"
username = "admin"
password_file = "src/password"
exports_per_second = 10000
# A listing of 100,000 torrents takes seconds, more under load: never let the
# default 30 s turn a slow answer into a failed run.
timeout_secs = 300
TOML
    if [ $# -gt 0 ]; then
        cat >>"$D/config.toml" <<TOML
[[instance]]
name = "empty"
url = "$1"
username = "admin"
password_file = "restore/password"
exports_per_second = 10000
timeout_secs = 300
TOML
    fi
}

# recategorize N: moves 1% of the torrents (at least one; uncategorized ones,
# spread over the hash space) to category "linux" with torrents/setCategory,
# 500 per request. Checks that exactly that many are in "linux" afterwards.
# The bytes version 1 manifests held beyond format 2's: every torrent's
# magnet link and live state, as JSON strings (a listing of the source).
v1_extra_bytes() {
    local jar="$D/cookies"
    curl -sf -c "$jar" --data-urlencode username=admin --data-urlencode "password@$D/src/password" \
        "${SRC_URL}api/v2/auth/login" >/dev/null
    curl -sf -b "$jar" --compressed "${SRC_URL}api/v2/torrents/info" |
        python3 -c 'import json,sys; print(sum(len(json.dumps(t["magnet_uri"], ensure_ascii=False)) - 2 + len(t["state"]) for t in json.load(sys.stdin)))'
}

recategorize() {
    local n=$1 k jar="$D/cookies" t0 hashes
    k=$((n / 100))
    [ "$k" -ge 1 ] || k=1
    t0=$(now_ms)
    curl -sf -c "$jar" --data-urlencode username=admin --data-urlencode "password@$D/src/password" \
        "${SRC_URL}api/v2/auth/login" >/dev/null
    curl -sf -b "$jar" --compressed "${SRC_URL}api/v2/torrents/info?category=" >"$D/uncategorized.json"
    python3 - "$D/uncategorized.json" "$k" >"$D/recategorize.batches" <<'PY'
import json, sys
hashes = sorted(t["hash"] for t in json.load(open(sys.argv[1])))
k = int(sys.argv[2])
if len(hashes) < k:
    sys.exit(f"only {len(hashes)} uncategorized torrents, {k} needed")
step = len(hashes) / k
pick = [hashes[int(i * step)] for i in range(k)]
for i in range(0, k, 500):
    print("|".join(pick[i:i + 500]))
PY
    while read -r hashes; do
        curl -sf -b "$jar" --data-urlencode "hashes=$hashes" --data-urlencode category=linux \
            "${SRC_URL}api/v2/torrents/setCategory" >/dev/null
    done <"$D/recategorize.batches"
    local got
    got=$(curl -sf -b "$jar" --compressed "${SRC_URL}api/v2/torrents/info?category=linux" |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    if [ "$got" -ne "$k" ]; then
        echo "bench: $got torrents in category linux after setting $k" >&2
        exit 1
    fi
    put recategorized "$k"
    put recategorize_ms $(($(now_ms) - t0))
    curl -sf -b "$jar" "${SRC_URL}api/v2/app/version" >"$D/qbt-version" || echo "?" >"$D/qbt-version"
}

# --- Copy to S3 (issue 12) -------------------------------------------------

S3_AK=qbackup-bench-access-key
S3_SK=qbackup-bench-secret-key-5b0e2d

# s3_up: the S3 server on a free port of 127.0.0.1 over $D/s3/data, one
# "resolved route, op: X" log line per request (s3_ops counts them).
s3_up() {
    local port i
    mkdir -p "$D/s3/data"
    printf '%s\n' "$S3_SK" >"$D/s3/secret"
    printf '%s\n' "qbackup bench passphrase, not a secret" >"$D/s3/pass"
    chmod 600 "$D/s3/secret" "$D/s3/pass"
    age-keygen -o "$D/s3/age.key" 2>/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    RUST_LOG=s3s::ops=debug NO_COLOR=1 "$S3_SERVER" --host 127.0.0.1 --port "$port" \
        --access-key "$S3_AK" --secret-key "$S3_SK" "$D/s3/data" >"$D/s3/log" 2>&1 &
    S3_PID=$!
    for i in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            S3_URL="http://127.0.0.1:$port"
            return 0
        fi
        kill -0 "$S3_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: the S3 server did not start:" >&2
    tail -20 "$D/s3/log" >&2
    exit 1
}

# s3_cpu_ms: CPU time (user + system) the server has used so far.
s3_cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$S3_PID/stat"
}

# s3_ops OFFSET: requests logged after byte OFFSET of the log, by operation
# ("PutObject:10004 ListObjectsV2:12").
s3_ops() {
    tail -c +$(($1 + 1)) "$D/s3/log" | grep -ao 'resolved route, op: [A-Za-z0-9]*' |
        awk '{ n[$4]++ } END { for (k in n) printf "%s:%d ", k, n[k] }' | sed 's/ $//'
}

# bucket_stats BUCKET: "FILES BYTES" of the objects the server holds in it.
bucket_stats() {
    find "$D/s3/data/$1" -type f -printf '%s\n' | awk '{ n++; b += $1 } END { printf "%d %d\n", n, b }'
}

# copy_config N: the size's config with remotes s3bench (passphrase) in
# bucket bench-qb-N and s3benchid (age identity file) in bench-qi-N.
copy_config() {
    config
    local name bucket key
    for name in s3bench s3benchid; do
        if [ $name = s3bench ]; then
            bucket=bench-qb-$1 key="passphrase_file = \"$D/s3/pass\""
        else
            bucket=bench-qi-$1 key="identity_file = \"$D/s3/age.key\""
        fi
        cat >>"$D/config.toml" <<TOML

[[remote]]
name = "$name"
type = "s3"
bucket = "$bucket"
endpoint = "$S3_URL"
region = "us-east-1"
access_key_id = "$S3_AK"
secret_access_key_file = "$D/s3/secret"
$key
TOML
    done
}

# rclone_stats NAME: rclone's final statistics (the last JSON log line with
# them, in $D/NAME.err) as results of NAME.
rclone_stats() {
    python3 - "$D/$1.err" "$1" >>"$D/results" <<'PY'
import json, sys
stats = None
for line in open(sys.argv[1]):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if isinstance(d, dict) and "stats" in d:
        stats = d["stats"]
if stats is None:
    sys.exit("bench: no statistics from rclone")
n = sys.argv[2]
print(f"{n}_uploaded={stats['transfers']}")
print(f"{n}_uploaded_bytes={stats['bytes']}")
print(f"{n}_skipped={stats['checks']}")
print(f"{n}_errors={stats['errors']}")
PY
}

# copyrow NAME KIND BUCKET: one copy (KIND qb: qbackup copy --to s3bench;
# qi: qbackup copy --to s3benchid, the same with an age identity file, so
# no scrypt; rc: rclone copy of the store's blobs, chunks, runs and resume into the
# bucket's root) with its wall time, peak RSS, CPU, the server's CPU and
# requests, and what it uploaded. It must succeed.
copyrow() {
    local name=$1 kind=$2 bucket=$3 off cpu0 rss user sys cmd
    if [ "$kind" = qb ]; then
        cmd=("$BIN/qbackup" --config "$D/config.toml" copy --to s3bench --json)
    elif [ "$kind" = qi ]; then
        cmd=("$BIN/qbackup" --config "$D/config.toml" copy --to s3benchid --json)
    else
        # rclone's defaults (--transfers 4, --checkers 8, size + modtime
        # compare); the remote from environment variables only. One command
        # into the bucket's root: s3s-fs answers a HEAD of a key that is a
        # directory on its disk (a prefix rclone copied to before) with an
        # error that rclone retries for a minute, which says nothing about
        # either tool. AWS_CA_BUNDLE (if the environment sets it) makes this
        # rclone refuse to start.
        cmd=(env -u AWS_CA_BUNDLE
            RCLONE_CONFIG_S3BENCH_TYPE=s3 RCLONE_CONFIG_S3BENCH_PROVIDER=Other
            RCLONE_CONFIG_S3BENCH_ENDPOINT="$S3_URL" RCLONE_CONFIG_S3BENCH_REGION=us-east-1
            RCLONE_CONFIG_S3BENCH_ACCESS_KEY_ID="$S3_AK" RCLONE_CONFIG_S3BENCH_SECRET_ACCESS_KEY="$S3_SK"
            rclone copy --config /dev/null --s3-no-check-bucket
            --stats 1h --stats-log-level NOTICE --use-json-log
            --include '/{blobs,chunks,runs,resume}/**' "$STORE" "s3bench:$bucket")
    fi
    off=$(stat -c %s "$D/s3/log")
    cpu0=$(s3_cpu_ms)
    timed "$name" /usr/bin/time -f '%M %U %S' -o "$D/$name.time" "${cmd[@]}"
    put "${name}_ms" "$T"
    put "${name}_server_cpu_ms" $(($(s3_cpu_ms) - cpu0))
    put "${name}_ops" "$(s3_ops "$off")"
    read -r rss user sys < <(tail -1 "$D/$name.time")
    put "${name}_rss_kb" "$rss"
    put "${name}_cpu_ms" "$(python3 -c "print(round(($user + $sys) * 1000))")"
    put "${name}_bucket" "$(bucket_stats "$bucket")"
    if [ "$RC" -ne 0 ]; then
        echo "bench: $name failed (exit $RC):" >&2
        tail -20 "$D/$name.err" >&2
        tail -c 2000 "$D/$name.out" >&2
        exit 1
    fi
    if [ "$kind" != rc ]; then
        put "${name}_runs_present" "$(jget "$D/$name.out" runs_present)"
        put "${name}_uploaded" "$(jget "$D/$name.out" uploaded)"
        put "${name}_uploaded_bytes" "$(jget "$D/$name.out" uploaded_bytes)"
        put "${name}_skipped" "$(jget "$D/$name.out" skipped)"
    else
        rclone_stats "$name"
    fi
    local r=$D/results
    log "$name: $T ms, RSS $rss KiB, CPU $(grep "^${name}_cpu_ms=" "$r" | cut -d= -f2) ms," \
        "server CPU $(grep "^${name}_server_cpu_ms=" "$r" | cut -d= -f2) ms," \
        "uploaded $(grep "^${name}_uploaded=" "$r" | cut -d= -f2)" \
        "($(grep "^${name}_uploaded_bytes=" "$r" | cut -d= -f2) B)," \
        "requests $(grep "^${name}_ops=" "$r" | cut -d= -f2-)"
}

# copy_bench: COPY_REPS repetitions, each into fresh buckets (one per
# tool): the first copy of each, then each again with nothing new. Which of
# qbackup and rclone goes first alternates between repetitions; qbackup with
# an identity file comes after both.
copy_bench() {
    local i first second
    s3_up
    put copy_reps "$COPY_REPS"
    put copy_store "$(find "$STORE"/{blobs,chunks,runs,resume} -type f -printf '%s\n' 2>/dev/null |
        awk '{ n++; b += $1 } END { printf "%d %d\n", n, b }')"
    put copy_store_runs "$(find "$STORE/runs" -type f -name '*.json' | wc -l)"
    put rclone_version "$(rclone version 2>/dev/null | head -1 | awk '{print $2}')"
    put s3_server_version "$("$S3_SERVER" --version 2>/dev/null | awk '{print $2}')"
    for i in $(seq "$COPY_REPS"); do
        mkdir -p "$D/s3/data/bench-qb-$i" "$D/s3/data/bench-rc-$i" "$D/s3/data/bench-qi-$i"
        copy_config "$i"
        if [ $((i % 2)) -eq 1 ]; then first=qb second=rc; else first=rc second=qb; fi
        log "$n: copy to S3, repetition $i of $COPY_REPS ($first first)"
        copyrow "copy1_${first}_$i" "$first" "bench-$first-$i"
        copyrow "copy1_${second}_$i" "$second" "bench-$second-$i"
        copyrow "copy2_${first}_$i" "$first" "bench-$first-$i"
        copyrow "copy2_${second}_$i" "$second" "bench-$second-$i"
        copyrow "copy1_qi_$i" qi "bench-qi-$i"
        copyrow "copy2_qi_$i" qi "bench-qi-$i"
        rm -rf "$D/s3/data/bench-qb-$i" "$D/s3/data/bench-rc-$i" "$D/s3/data/bench-qi-$i"
    done
    s3_down
    config
}

bench_size() {
    local n=$1
    D=$W/$n
    STORE=$D/store
    mkdir -p "$D"
    : >"$D/results"
    put torrents "$n"

    log "$n: starting the source instance and adding $n torrents (batches of $ADD_BATCH)"
    SRC_URL=$(up src "$n")
    put load_ms "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["load_ms"])' "$D/src/testbed.json")"
    log "$n: $(grep 'generated torrents:' "$D/src.log" | sed 's/^testbed: //')"
    config

    # First run against the plain export loop, which brackets it.
    plain export1 $BIN/examples/plain_export "$SRC_URL" "$D/src/password" "$D/plain1"
    qb first run --instance bench
    # What a full version 1 manifest of this run would be: format 2 keeps
    # none on disk; `show --manifest` writes the run's complete manifest,
    # which format 2 gives without live state and without the magnet links
    # of torrents that have a blob. Version 1 kept both for every torrent, so
    # their lengths (from a listing) are added back.
    "$BIN/qbackup" --config "$D/config.toml" show latest --manifest "$D/first-manifest.json" >/dev/null
    put manifest_v1_bytes $(($(stat -c %s "$D/first-manifest.json") + $(v1_extra_bytes)))
    plain export2 $BIN/examples/plain_export "$SRC_URL" "$D/src/password" "$D/plain2"
    rm -rf "$D/plain2"

    # Nothing new, and 1% changed, against one listing, which brackets them.
    plain list1 $BIN/examples/plain_list "$SRC_URL" "$D/src/password"
    put list_bytes "$(jget "$D/list1.out" bytes)"
    qb second run --instance bench
    plain list2 $BIN/examples/plain_list "$SRC_URL" "$D/src/password"
    recategorize "$n"
    log "$n: $(grep -h recategorize "$D/results" | tr '\n' ' ')"
    qb third run --instance bench
    plain list3 $BIN/examples/plain_list "$SRC_URL" "$D/src/password"
    put qbt_version "$(cat "$D/qbt-version")"
    down src

    # Copy to S3 against rclone, each into fresh buckets of a local server.
    [ "$n" -gt "$COPY_MAX" ] || copy_bench

    # Restore against the plain add loop, each into a fresh empty instance.
    if [ "$n" -le "$RESTORE_MAX" ]; then
        local url
        url=$(up add1 0)
        plain add1 $BIN/examples/plain_add "$url" "$D/add1/password" "$D/plain1" 50
        down add1
        url=$(up restore 0)
        config "$url"
        qb restore restore --from bench --to empty
        put restore_added "$(jget "$D/restore.out" added 2>/dev/null || echo 0)"
        down restore
        url=$(up add2 0)
        plain add2 $BIN/examples/plain_add "$url" "$D/add2/password" "$D/plain1" 50
        down add2
    fi
    rm -rf "$D/plain1"
}

STARTED=$(date -u +%Y-%m-%d)
for n in "${SIZES[@]}"; do
    bench_size "$n"
done

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
COPY_MAX=$COPY_MAX python3 - "$W" "$OUT" "$PROFILE" "$RESTORE_MAX" "$ADD_BATCH" "$STARTED" "$(nproc)" "$COMMIT" "${SIZES[@]}" <<'PY'
import os
import sys

w, out, profile, restore_max, add_batch, date, cores, commit = sys.argv[1:9]
sizes = [int(s) for s in sys.argv[9:]]
KIB, MIB = 1024, 1024 * 1024


def load(n):
    r = {}
    for line in open(f"{w}/{n}/results"):
        k, _, v = line.rstrip("\n").partition("=")
        r[k] = v
    return r


def num(x):
    return f"{int(x):,}"


def mib(kb):
    return f"{int(kb) / 1024:.1f} MiB"


def verdict(ok):
    return "pass" if ok else "**fail**"


def rss_target(n):
    if n <= 10_000:
        return 32
    if n <= 100_000:
        return 64
    return None


def section(n, r):
    g = lambda k: int(r[k])
    lines = []
    v = lambda k: f" (status {r[k + '_status']}, exit {r[k + '_rc']})" if r[k + "_rc"] != "0" else ""
    row = lambda *cells: lines.append("| " + " | ".join(cells) + " |")
    rss_t = rss_target(n)

    def rss_row(k):
        kb = g(k + "_rss_kb")
        if rss_t is None:
            row("↳ peak RSS", "", mib(kb), "— (targets are set up to 100,000)", "")
        else:
            row("↳ peak RSS", "", mib(kb), f"≤ {rss_t} MiB", verdict(kb <= rss_t * 1024))

    base = lambda a, b: (g(a + "_ms") + g(b + "_ms")) / 2
    ratio = lambda k, b: g(k + "_ms") / b

    load_s = g("load_ms") / 1000
    lines.append(f"## {num(n)} torrents\n")
    lines.append(
        f"Source instance: {num(n)} generated torrents added through the WebAPI "
        f"in batches of {add_batch}: listed, settled and on disk after {load_s:.0f} s"
        + (f" ({load_s / n * 1000:.1f} s per 1,000)" if n >= 1000 else "")
        + f". One listing is "
        f"{g('list_bytes') / MIB:.1f} MiB of JSON. A full version 1 manifest (the first "
        f"run's) is {num(r['manifest_v1_bytes'])} bytes.\n"
    )
    row("run", "time (ms)", "measured", "target (issue 10)", "result")
    lines.append("|---|---:|---|---|---|")

    be = base("export1", "export2")
    row("plain keep-alive export loop (login, list, export each, write file; no checks)", r["export1_ms"], "", "", "")
    k = "first"
    row(f"**qbackup, first run**, pace unlimited{v(k)}", r[k + "_ms"],
        f"{ratio(k, be):.2f}× the plain export loop (mean of the two around it: {be:.0f} ms)",
        "≤ 1.2×", verdict(ratio(k, be) <= 1.2))
    rss_row(k)
    row("↳ store growth", "", f"{num(r[k + '_growth'])} bytes (everything is new)", "", "")
    row("plain export loop, again", r["export2_ms"], "", "", "")

    bl = base("list1", "list2")
    row("one `torrents/info` listing (login, list, parse)", r["list1_ms"], "", "", "")
    k = "second"
    row(f"**qbackup, second run**, nothing new{v(k)}", r[k + "_ms"],
        f"{ratio(k, bl):.2f}× one listing (mean of the two around it: {bl:.0f} ms)",
        "≤ 1.2×", verdict(ratio(k, bl) <= 1.2))
    rss_row(k)
    growth = g(k + "_growth")
    if n <= 100_000:
        row("↳ store growth", "", f"{num(growth)} bytes", "≤ 65,536 bytes (64 KiB)", verdict(growth <= 64 * KIB))
    else:
        row("↳ store growth", "", f"{num(growth)} bytes", "— (set up to 100,000)", "")
    row("one listing, again", r["list2_ms"], "", "", "")

    bl3 = base("list2", "list3")
    k = "third"
    row(f"**qbackup, third run**, after {num(r['recategorized'])} torrents (1%) changed category{v(k)}",
        r[k + "_ms"], f"{ratio(k, bl3):.2f}× one listing (mean of the two around it: {bl3:.0f} ms)",
        "—", "")
    rss_row(k)
    growth, v1 = g(k + "_growth"), g("manifest_v1_bytes")
    row("↳ store growth", "",
        f"{num(growth)} bytes = {100 * growth / v1:.1f}% of a full version 1 manifest",
        "≤ 5% of it", verdict(growth <= 0.05 * v1))
    row("one listing, again", r["list3_ms"], "", "", "")

    if "restore_ms" in r:
        ba = base("add1", "add2")
        row("plain batched add loop with read-back, 50 per request, into an empty instance", r["add1_ms"], "", "", "")
        k = "restore"
        added = f", {num(r['restore_added'])} added" if r["restore_added"] != str(n) else ""
        row(f"**qbackup restore** of all {num(n)} into an empty instance{v(k)}{added}", r[k + "_ms"],
            f"{ratio(k, ba):.2f}× the plain add loop (mean of the two around it: {ba:.0f} ms)",
            "≤ 1.5×", verdict(ratio(k, ba) <= 1.5))
        rss_row(k)
        row("↳ store growth", "", f"{num(r[k + '_growth'])} bytes (the restore's history)", "", "")
        row("plain add loop, again (another empty instance)", r["add2_ms"], "", "", "")
    else:
        row(f"restore rows: not measured at this size (`BENCH_RESTORE_MAX={restore_max}`)", "", "", "", "")
    lines.append("")
    return "\n".join(lines)


results = {n: load(n) for n in sizes}
qbt = next(iter(results.values())).get("qbt_version", "?")
build = "release build" if profile == "release" else f"**{profile} build: only a check of the script, the numbers mean nothing**"
doc = f"""# Benchmark

Measured by `scripts/bench.sh {' '.join(map(str, sizes))}` on {date}: qbittorrent-nox {qbt}
(Debian) on 127.0.0.1, small generated v1 torrents (paused), {build},
{cores} cores, commit {commit}. The targets are issue 10's; measured on store format 2
(qbackup 0.2) with each torrent's full state captured (issue 11: settings from
the listing, files and trackers read per torrent on a first run).

Absolute times depend on the machine; the ratios are what to compare. Each
size is one run of the script against its own instances, and every qbackup row
is measured between two runs of its baseline (the ratio is against their
mean), so that a change of load hits both. Times are wall-clock times of the
whole process, start to exit. Peak RSS is the process's maximum resident set
size (`/usr/bin/time`); store growth is `du -sb` of the store directory
(blobs, metadata chunks, run files and the history database) after the run
minus before it.

What the rows mean:
- **Plain export loop**: the simplest possible backup over one keep-alive
  connection — log in, list, and for every torrent one after the other: export
  it and write it to a file, and read its files and trackers
  (`torrents/files`, `torrents/trackers`: the state a first run captures); no
  verification, no fsync, no history (`examples/plain_export.rs`). The first
  run is compared with it.
- **qbackup, first run**: everything is new: export (pipelined) + files and
  trackers of every torrent + verify + store (durable per batch: one syncfs before each batch is recorded) +
  metadata chunks + run file + history, with `exports_per_second = 10000` (unlimited).
  Production runs are paced (default 20/s): a first run of 100,000 torrents
  takes about 5,000 s by design.
- **One listing**: log in, one `torrents/info` (gzip), parse the JSON
  (`examples/plain_list.rs`): what a run that finds nothing new cannot avoid.
- **qbackup, second run**: nothing new since the first: what cron pays every
  night (or every hour) once the store is warm. Its store growth is what every
  such run costs on disk.
- **qbackup, third run**: 1% of the torrents (uncategorized ones, spread over
  the hash space) were moved to another category with `torrents/setCategory`
  before it; nothing new to export. Its store growth is compared with the size
  of a full version 1 manifest of the first run: what `show --manifest` writes,
  plus every torrent's magnet link and state, which version 1 kept and format 2
  keeps only where needed.
- **Plain add loop**: the restore baseline — read the .torrent files the plain
  export loop wrote, add them 50 per `torrents/add` (multipart, paused), after
  each request poll `torrents/info?hashes=` every 100 ms until all are listed
  (`examples/plain_add.rs`): qbackup restore's work minus verification,
  planning, categories and bookkeeping. Each add loop and the restore get a
  fresh empty instance.
- **qbackup restore**: all torrents of the latest run into an empty instance
  (default batches of 50, target pace unlimited, each batch read back).
  Measured up to `BENCH_RESTORE_MAX` torrents (default 10,000).

Targets (issue 10): first run ≤ 1.2× the plain export loop; a run with nothing
new ≤ 1.2× one listing; peak RSS ≤ 32 MiB at 10,000 torrents and ≤ 64 MiB at
100,000 (applied to every qbackup row: ≤ 32 MiB up to 10,000, ≤ 64 MiB up to
100,000); store growth of a run with nothing new ≤ 64 KiB (set for 100,000,
applied to every size up to it) and of a run after 1% changed ≤ 5% of a full
version 1 manifest; restore ≤ 1.5× the plain add loop.

"""
doc += "\n".join(section(n, results[n]) for n in sizes)
if len(sizes) > 1:
    # How the figures grow with the size of the instance.
    cols = [results[n] for n in sizes]
    doc += "\n## Across sizes\n\n"
    doc += "| | " + " | ".join(f"{num(n)} torrents" for n in sizes) + " |\n"
    doc += "|---|" + "---:|" * len(sizes) + "\n"

    def across(label, f):
        global doc
        doc += f"| {label} | " + " | ".join(f(r) for r in cols) + " |\n"

    for k, label in [("first", "first run"), ("second", "nothing new"), ("third", "1% changed"), ("restore", "restore")]:
        across(f"peak RSS, {label}", lambda r, k=k: mib(r[k + "_rss_kb"]) if k + "_rss_kb" in r else "—")
    across("store growth, nothing new", lambda r: f"{num(r['second_growth'])} bytes")
    across("store growth, 1% changed", lambda r: f"{num(r['third_growth'])} bytes")
    across("loading the testbed", lambda r: f"{int(r['load_ms']) / 1000:.0f} s")


# Copy to S3 (issue 12).
def median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def ops_text(s):
    parts = [p.split(":") for p in s.split()]
    parts.sort(key=lambda p: -int(p[1]))
    return ", ".join(f"{op} {int(k):,}" for op, k in parts) or "none"


def copy_section(n, r):
    reps = int(r["copy_reps"])
    R = range(1, reps + 1)
    lines = [f"### {num(n)} torrents\n"]
    files, size = (int(x) for x in r["copy_store"].split())
    lines.append(
        f"The store after the three runs of this size (first, nothing new, 1% changed): "
        f"{num(files)} files, {num(size)} bytes in blobs/, chunks/, runs/ and resume/ "
        f"({r['copy_store_runs']} run files). s3s-fs {r['s3_server_version']}, rclone "
        f"{r['rclone_version']} (Debian). {reps} repetition{'s' if reps > 1 else ''}, each into "
        f"fresh buckets; times, CPU and RSS are medians (RSS of every repetition where they differ), "
        f"the ratios are of the medians, with each repetition's in brackets.\n"
    )
    row = lambda *cells: lines.append("| " + " | ".join(cells) + " |")
    row("", "qbackup, passphrase", "qbackup, identity file", "rclone",
        "qbackup / rclone (passphrase; identity file)", "result")
    lines.append("|---|---:|---:|---:|---|---|")
    tools = ["qb", "qi", "rc"]

    def vals(step, tool, key):
        return [float(r[f"copy{step}_{tool}_{i}_{key}"]) for i in R]

    def med(step, tool, key):
        return median(vals(step, tool, key))

    def same_or_all(xs, fmt):
        return fmt(xs[0]) if len(set(xs)) == 1 else " / ".join(fmt(x) for x in xs)

    def ratios(step, key):
        out = []
        for t in ("qb", "qi"):
            per = ", ".join(f"{a / b:.2f}" for a, b in zip(vals(step, t, key), vals(step, "rc", key)))
            out.append(f"**{med(step, t, key) / med(step, 'rc', key):.2f}×** ({per})")
        return "; ".join(out)

    verdicts = []
    for step, label in [(1, "**first copy** (everything is new)"), (2, "**second copy**, nothing new")]:
        row(f"{label}, wall time", *(f"{med(step, t, 'ms'):,.0f} ms" for t in tools), ratios(step, "ms"), "no target")
        ups = [[int(x) for x in vals(step, t, "uploaded")] for t in tools]
        cells = [same_or_all(u, num) for u in ups]
        if step == 2:
            ok = all(x == 0 for x in ups[0] + ups[1])
            verdicts.append(ok)
            row("↳ objects uploaded", *cells, "", f"{verdict(ok)} (qbackup must upload 0)")
        else:
            row("↳ objects uploaded", *cells, "", "")
        b = [int(med(step, t, "uploaded_bytes")) for t in tools]
        extra = ""
        if step == 1 and b[2]:
            per_obj = (b[0] - b[2]) / max(1, int(med(1, "qb", "uploaded")))
            extra = f"+{100 * (b[0] - b[2]) / b[2]:.1f}%: age adds ≈ {per_obj:.0f} bytes per object"
        row("↳ bytes uploaded", *(num(x) for x in b), extra, "")
        if step == 1:
            held = []
            for t in tools:
                f_, b_ = (int(x) for x in r[f"copy1_{t}_1_bucket"].split())
                held.append(f"{num(f_)} objects, {num(b_)} B")
            row("↳ what the bucket holds after it (repetition 1)", *held, "", "")
        else:
            rp = int(med(2, "qb", "runs_present"))
            row("↳ found there already", f"{rp} run files (their data is not walked)",
                f"{int(med(2, 'qi', 'runs_present'))} run files",
                f"{num(int(med(2, 'rc', 'skipped')))} files checked", "", "")
        row("↳ requests to the server (repetition 1)",
            *(ops_text(r[f"copy{step}_{t}_1_ops"]) for t in tools), "", "")
        cpu = [med(step, t, "cpu_ms") for t in tools]
        row("↳ CPU time of the client (user + system)", *(f"{c:,.0f} ms" for c in cpu),
            f"{cpu[0] / cpu[2]:.2f}×; {cpu[1] / cpu[2]:.2f}×" if cpu[2] else "", "")
        row("↳ CPU time of the server meanwhile", *(f"{med(step, t, 'server_cpu_ms'):,.0f} ms" for t in tools), "", "")
        row("↳ peak RSS", *(same_or_all(vals(step, t, "rss_kb"), mib) if t == "qb" else mib(med(step, t, "rss_kb"))
                             for t in tools), "", "")
    lines.append("")
    q1, c1, i1 = med(1, "qb", "ms"), med(1, "rc", "ms"), med(1, "qi", "ms")
    q2, c2, i2 = med(2, "qb", "ms"), med(2, "rc", "ms"), med(2, "qi", "ms")
    lines.append(
        f"Acceptance (issue 12): the issue sets no numeric target for the copy, only that it is "
        f"measured against `rclone copy` of the same files in the same run, and that a second copy "
        f"with nothing new uploads nothing. Measured: the first copy takes **{q1 / c1:.2f}×** rclone's "
        f"time ({i1 / c1:.2f}× with an identity file), the nothing-new copy **{q2 / c2:.2f}×** "
        f"({i2 / c2:.2f}× with an identity file); the nothing-new copy uploaded "
        + ("nothing in every repetition: **pass**." if all(verdicts) else "objects: **fail**.")
        + f" Peak RSS of a copy: {mib(max(vals(1, 'qb', 'rss_kb') + vals(2, 'qb', 'rss_kb')))} with the "
        f"passphrase (scrypt's memory), {mib(max(vals(1, 'qi', 'rss_kb') + vals(2, 'qi', 'rss_kb')))} "
        f"with an identity file; rclone {mib(max(vals(1, 'rc', 'rss_kb') + vals(2, 'rc', 'rss_kb')))}.\n"
    )
    return "\n".join(lines)


copied = [n for n in sizes if "copy_reps" in results[n]]
if copied:
    doc += f"""
## Copy to S3 (issue 12)

`qbackup copy --to s3bench` of the store against `rclone copy` of the same
files, both to the same real S3-compatible server (s3s-fs, built from
crates.io by `scripts/install-deps.sh --s3-server`) on 127.0.0.1, measured
after the runs of the size, with the qBittorrent source stopped. Each
repetition uses fresh empty buckets, one per tool; which of qbackup and
rclone goes first alternates between repetitions. In each: the first copy
of both, then both again with nothing new.

- **qbackup**: `qbackup copy --to s3bench --json`, a `[[remote]]` of type s3
  with a passphrase file: it lists the remote, walks the runs' metadata to
  find what they name, reads and checks each object against its hash,
  encrypts it with age (to the remote's X25519 recipient) under a name that
  is an HMAC of its path, uploads 8 at once, run files last. Opening the
  remote's `config` object with the passphrase costs one scrypt on every
  copy (age's work factor, calibrated when the remote was created to take
  about a second then: CPU time and 2^logN KiB of memory), and creating it
  on the first copy another.
- **qbackup, identity file**: the same with `identity_file` (an
  `age-keygen` key) instead of the passphrase, so no scrypt; it runs after
  the other two in each repetition, into its own bucket.
- **rclone**: `rclone copy --include '/{{blobs,chunks,runs,resume}}/**' STORE
  s3bench:BUCKET` with the remote set by environment variables
  (`RCLONE_CONFIG_S3BENCH_TYPE=s3`, provider Other, endpoint, keys) and
  `--s3-no-check-bucket`, otherwise rclone's defaults: 4 transfers, 8
  checkers, files compared by size and modification time, no encryption.
  One command into the bucket's root rather than four into a prefix:
  s3s-fs answers rclone's HEAD of a prefix that is a directory on its disk
  with an error rclone retries for about a minute, which measures neither
  tool.

Measured by `scripts/bench.sh {' '.join(map(str, sizes))}` on {date} at commit {commit}
({"release build" if profile == "release" else profile + " build: the numbers mean nothing"}).
Times are wall-clock times of the whole process, start to exit. Peak RSS
and CPU time are `/usr/bin/time`'s; the server's CPU time is from
/proc/PID/stat before and after; its requests are counted from its log (one
line per request, by S3 operation). Bytes uploaded are what each tool
reports (qbackup: `uploaded_bytes`, the encrypted objects; rclone: its
transferred bytes). Both tools and the server share the machine's
{cores} cores, so the server's CPU time counts against both.

Two things of this setup to read the rows with: s3s-fs answers every
ListObjectsV2 page by walking the whole bucket directory, so listing N
objects costs it about N²/1000 file visits (real object storage answers a
page as one cheap request): qbackup's nothing-new copy, a handful of list
pages, is mostly the server's time (see its CPU). rclone, with its defaults,
sends a HEAD after each upload and, with nothing new, a HEAD per object to
read the modification time it stores in the object's metadata, plus one
listing per directory.

"""
    doc += "\n".join(copy_section(n, results[n]) for n in copied)
    skipped_sizes = [n for n in sizes if n not in copied]
    if skipped_sizes:
        doc += (f"\nNot measured at {', '.join(num(n) for n in skipped_sizes)} torrents "
                f"(`BENCH_COPY_MAX={os.environ.get('COPY_MAX', '?')}`).\n")
open(out, "w").write(doc.rstrip("\n") + "\n")
PY
cat "$OUT"
