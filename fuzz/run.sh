#!/usr/bin/env bash
# Runs the libFuzzer targets: fuzz/run.sh SECONDS [TARGET...]
#
# Builds the `fuzz` preset (clang, libFuzzer, ASan + UBSan) if needed, then
# runs each target (default: all) for SECONDS with -max_total_time, one
# after the other (FUZZ_JOBS=2 runs two at a time). New corpus entries go
# to a scratch directory, never into the committed corpus:
#
#   $FUZZ_WORK_DIR/<target>/corpus/     new inputs (kept between runs)
#   $FUZZ_WORK_DIR/<target>/artifacts/  crash-*, leak-*, timeout-*, oom-*
#   $FUZZ_WORK_DIR/<target>/log         libFuzzer's output
#
# and prints a Markdown table (executions, exec/s, coverage, corpus,
# crashes) that can be pasted into docs. Exit status 1 if any target
# found a crash.
#
# Environment:
#   FUZZ_BUILD_DIR  build directory (default build/fuzz, the preset's)
#   FUZZ_WORK_DIR   scratch directory (default build/fuzz-work)
#   FUZZ_JOBS       targets run at once (default 1)
#   FUZZ_ARGS       extra libFuzzer flags
#   TAPMIRROR_FUZZ_TOLERATE  findings to ignore while fuzzing for new ones
#                   (see fuzz/README.md)
#
# To promote new inputs into the committed corpus, minimise them first:
#   build/fuzz/fuzz/fuzz_T -merge=1 fuzz/corpus/T build/fuzz-work/T/corpus
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
    echo "usage: fuzz/run.sh SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift
build=${FUZZ_BUILD_DIR:-$root/build/fuzz}
work=${FUZZ_WORK_DIR:-$root/build/fuzz-work}
jobs=${FUZZ_JOBS:-1}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in "$here"/fuzz_*.c; do
        t=$(basename "$f" .c)
        targets+=("${t#fuzz_}")
    done
fi

# Per-target input size limits and dictionaries.
max_len() {
    case $1 in
        cli) echo 512 ;; parse) echo 128 ;; decode) echo 2048 ;;
        reasm) echo 8192 ;; capreader | engine | kubejson) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

# ---- build ----
if [ ! -f "$build/CMakeCache.txt" ]; then
    if [ "$build" = "$root/build/fuzz" ]; then
        (cd "$root" && cmake --preset fuzz >/dev/null)
    else
        cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug \
            -DCMAKE_C_COMPILER=clang "-DCMAKE_C_FLAGS=-O1 -g" \
            -DTAPMIRROR_FUZZ=ON -DTAPMIRROR_SANITIZE=ON >/dev/null
    fi
fi
# Configure again: a target added since the last configure is otherwise
# unknown to the existing build files.
cmake -S "$root" -B "$build" >/dev/null
build_targets=()
for t in "${targets[@]}"; do
    build_targets+=("fuzz_$t")
done
if ! cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" \
        --target "${build_targets[@]}" >"$build/fuzz-build.log" 2>&1; then
    tail -n 30 "$build/fuzz-build.log" >&2
    echo "fuzz/run.sh: build failed (is add_subdirectory(fuzz) in" \
         "CMakeLists.txt, and TAPMIRROR_FUZZ=ON in $build?)" >&2
    exit 1
fi

# ---- run ----
run_one() {
    local t=$1 dir="$work/$1"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    touch "$dir/.start"
    local args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
                -print_final_stats=1 -max_len="$(max_len "$t")"
                -artifact_prefix="$dir/artifacts/")
    if [ -f "$here/dict/$t.dict" ]; then
        args+=(-dict="$here/dict/$t.dict")
    fi
    # shellcheck disable=SC2086
    "$build/fuzz/fuzz_$t" "${args[@]}" ${FUZZ_ARGS:-} \
        "$dir/corpus" "$here/corpus/$t" >"$dir/log" 2>&1 || true
}

i=0
for t in "${targets[@]}"; do
    if [ ! -x "$build/fuzz/fuzz_$t" ]; then
        echo "fuzz/run.sh: no fuzz target $t" >&2
        exit 2
    fi
    echo "fuzz/run.sh: fuzzing $t for ${seconds}s" >&2
    run_one "$t" &
    i=$((i + 1))
    if [ $((i % jobs)) -eq 0 ]; then
        wait
    fi
done
wait

# ---- report ----
stat() { # stat LOG NAME
    sed -n "s/^stat::$2: *//p" "$1" | tail -n 1
}
crashed=0
echo
echo "| target | seconds | executions | exec/s | cov | ft | corpus | new inputs | peak RSS | crashes |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
    dir="$work/$t"
    log="$dir/log"
    execs=$(stat "$log" number_of_executed_units)
    speed=$(stat "$log" average_exec_per_sec)
    added=$(stat "$log" new_units_added)
    rss=$(stat "$log" peak_rss_mb)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    crashes=$(find "$dir/artifacts" -type f -newer "$dir/.start" | wc -l)
    crashes=${crashes// /}
    if [ "$crashes" != 0 ]; then
        crashed=1
    fi
    echo "| $t | $seconds | ${execs:-?} | ${speed:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | ${added:-?} | ${rss:-?} MB | $crashes |"
done
if [ "$crashed" = 1 ]; then
    echo
    echo "Crashes (reproduce with the regression runner or the fuzz binary):"
    for t in "${targets[@]}"; do
        find "$work/$t/artifacts" -type f -newer "$work/$t/.start" \
            -exec echo "  $t: {}" \;
    done
    exit 1
fi
