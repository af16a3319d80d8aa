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
# Environment:
#   BENCH_RESTORE_MAX=N  restore rows only for sizes up to N (default 10000)
#   BENCH_ADD_BATCH=N    torrents per torrents/add while loading the testbed (1000)
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
ADD_BATCH=${BENCH_ADD_BATCH:-1000}
PROFILE=${BENCH_PROFILE:-release}
OUT=${BENCH_OUT:-docs/benchmark.md}

scripts/install-deps.sh
# What this script needs beyond that: GNU time (peak RSS), curl, python3.
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing ${missing[*]} (Debian packages)..." >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
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
cleanup() {
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
python3 - "$W" "$OUT" "$PROFILE" "$RESTORE_MAX" "$ADD_BATCH" "$STARTED" "$(nproc)" "$COMMIT" "${SIZES[@]}" <<'PY'
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
open(out, "w").write(doc.rstrip("\n") + "\n")
PY
cat "$OUT"
