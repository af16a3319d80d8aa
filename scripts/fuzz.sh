#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer): NOT run in CI. Run it by hand, e.g.
# before a release or after changing a parser:
#
#     scripts/fuzz.sh                      # 600 s per target
#     scripts/fuzz.sh 60                   # a quick check
#     scripts/fuzz.sh 3600 manifest_read   # only the targets named
#
# Installs cargo-fuzz if it is missing (needs the nightly toolchain:
# `rustup toolchain install nightly`), builds every target in fuzz/, then runs
# them one after the other, one job each, for SECONDS_PER_TARGET each. Each
# target starts from its checked-in seeds (fuzz/seeds/TARGET/) and keeps what
# it finds in fuzz/corpus/TARGET/ (git-ignored), so later runs pick up where
# earlier ones stopped. Crashes land in fuzz/artifacts/TARGET/ and the whole
# libFuzzer output of the last run in fuzz/logs/TARGET.log (both git-ignored).
# Replay a crash with `cargo +nightly fuzz run TARGET ARTIFACT`, shrink it
# with `cargo +nightly fuzz tmin TARGET ARTIFACT`. FUZZ_TOOLCHAIN picks
# another toolchain than nightly.
#
# Prints the executions per target and any crash artifact; exits 1 if a
# target crashed (or timed out / ran out of memory on an input).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs="${1:-600}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET [TARGET...]]   (default 600, every target)" >&2
    exit 2
fi
shift $(($# > 0 ? 1 : 0))
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
    echo "fuzz: the $toolchain toolchain is missing: rustup toolchain install $toolchain" >&2
    exit 2
fi
if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

all=$(cargo "+$toolchain" fuzz list)
if [[ $# -gt 0 ]]; then
    for t in "$@"; do
        if ! grep -qx -- "$t" <<<"$all"; then
            echo "fuzz: no target $t; there are: $(echo $all)" >&2
            exit 2
        fi
    done
    targets="$*"
else
    targets="$all"
fi
echo "fuzz: building $(echo "$all" | wc -w) targets" >&2
cargo "+$toolchain" fuzz build
# The targets run from this build: `cargo fuzz run` would rebuild before
# each target, and a tree being edited meanwhile would get each target a
# different (or a failed) build.
host=$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')
bindir="$root/fuzz/target/$host/release"
# What `cargo fuzz run` sets.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"

mkdir -p fuzz/logs
summary=()
crashed=0
for t in $targets; do
    corpus="$root/fuzz/corpus/$t"
    seeds="$root/fuzz/seeds/$t"
    artifacts="$root/fuzz/artifacts/$t"
    log="$root/fuzz/logs/$t.log"
    mkdir -p "$corpus" "$seeds" "$artifacts"
    before=$(find "$artifacts" -type f | sort)
    args=(-artifact_prefix="$artifacts/" -max_total_time="$secs" -timeout=30 -print_final_stats=1)
    if [[ -f "fuzz/dict/$t.dict" ]]; then
        args+=(-dict="$root/fuzz/dict/$t.dict")
    fi
    # New inputs go to the first directory (the working corpus); the seeds
    # are only read.
    cmd=("$bindir/$t" "${args[@]}" "$corpus" "$seeds")
    echo "fuzz: $t for ${secs}s (log: fuzz/logs/$t.log)" >&2
    echo "fuzz: ${cmd[*]}" >&2
    status=0
    "${cmd[@]}" >"$log" 2>&1 || status=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if [[ -z "$execs" ]]; then
        # No final stats (a crash): the last "#N" status line.
        execs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)
    fi
    new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | sed '/^$/d')
    written=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
    found=$(printf '%s\n%s\n' "$new" "$written" | sed '/^$/d' | sort -u)
    lines=()
    if [[ $status -ne 0 || -n "$found" ]]; then
        crashed=1
        lines+=("$t: CRASH after ${execs:-?} executions (exit $status)")
        while read -r a; do
            if [[ -n "$a" ]]; then lines+=("    artifact: ${a#"$root"/}"); fi
        done <<<"$found"
        panic=$(grep -m1 -A1 "panicked at" "$log" | tr '\n' ' ' || true)
        if [[ -n "$panic" ]]; then lines+=("    $panic"); fi
    else
        lines+=("$t: ok, ${execs:-?} executions in ${secs}s, corpus $(find "$corpus" -type f | wc -l) inputs")
    fi
    printf '%s\n' "${lines[@]}" >&2
    summary+=("${lines[@]}")
done

echo
echo "fuzz summary (${secs}s per target):"
printf '  %s\n' "${summary[@]}"
exit "$crashed"
