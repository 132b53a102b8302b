#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/Package.swift, `-sanitize=fuzzer,address`, in .build-fuzz) and runs each in turn.
#   Fuzz/run.sh            each target for FUZZ_SECONDS seconds (default 60), growing .build-fuzz/corpus/<target>
#   Fuzz/run.sh --smoke    replays the seeds and the saved crash inputs (Fuzz/regressions), then fuzzes 5 s each
#   FUZZ_TARGETS="FuzzNumpy FuzzONNX" picks targets; FUZZ_RUNS=N stops each after N executions instead of a time.
#   FUZZ_SANITIZE=fuzzer builds without AddressSanitizer (faster; the default "fuzzer,address" also catches
#   out-of-bounds reads through unsafe pointers, which release Swift does not check).
# A crash writes its input to .build-fuzz/crashes/<target>-crash-* and fails the run; copy it into
# Fuzz/regressions/<target>/ once fixed, so every later smoke replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
[[ "${1:-}" == "--smoke" ]] && smoke=1
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-FuzzONNX FuzzConfig FuzzNumpy FuzzPlan FuzzPrepare FuzzCheckpoint FuzzCaffe}
sanitize=${FUZZ_SANITIZE:-fuzzer,address}
scratch=.build-fuzz

mkdir -p "$scratch"
build() {
    nice -n 10 swift build --package-path Fuzz --scratch-path "$scratch" -c release \
        -Xswiftc -sanitize="$sanitize" -Xswiftc -use-ld=lld > "$scratch/build.log" 2>&1
}
# SwiftPM keeps the file list of the parent package (a path dependency) in its build plan: a source file added to
# amct-pipe since the last fuzz build is missing from it. A failed build re-plans once before it counts.
if ! build && ! { rm -f "$scratch"/*.yaml "$scratch/build.db"; build; }; then
    cat "$scratch/build.log"
    exit 1
fi
bin=$(swift build --package-path Fuzz --scratch-path "$scratch" -c release --show-bin-path)

# Seed corpora: the fixtures of each kind (models under 64 KiB, configs, .npy/.npz).
seeds() {
    case $1 in
        FuzzONNX | FuzzPlan) find fixtures -maxdepth 1 -name '*.onnx' -size -64k ;;
        FuzzConfig) find fixtures/configs tests/textformat -name '*.cfg' ;;
        FuzzNumpy) find fixtures Fuzz/seeds/numpy -name '*.np[yz]' ;;
        FuzzPrepare) find Fuzz/seeds/prepare -type f ;;
        FuzzCheckpoint) find Fuzz/seeds/checkpoint -type f ;;
        FuzzCaffe) find Fuzz/seeds/caffe -type f ;;
    esac
    [[ -d Fuzz/regressions/$1 ]] && find "Fuzz/regressions/$1" -type f
    return 0
}

mkdir -p "$scratch/crashes"
status=0
for target in $targets; do
    corpus=$scratch/corpus/$target
    mkdir -p "$corpus"
    seedlist=$(mktemp)
    seeds "$target" > "$seedlist"
    # The Swift runtime keeps its metadata caches to the end: not leaks.
    options=(-rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1 -detect_leaks=0
        "-artifact_prefix=$scratch/crashes/$target-")
    [[ $target == FuzzConfig ]] && options+=(-dict=Fuzz/config.dict)
    export SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
    echo "== $target"
    if [[ $smoke == 1 ]]; then
        # Every seed and saved crash input once (-runs=0 runs only the given files), then a short fuzz.
        xargs -a "$seedlist" nice -n 10 "$bin/$target" "${options[@]}" -runs=0 > "$scratch/$target.log" 2>&1 \
            || { cat "$scratch/$target.log"; status=1; continue; }
        run=(-max_total_time=5)
    elif [[ -n "${FUZZ_RUNS:-}" ]]; then
        run=(-runs="$FUZZ_RUNS")
    else
        run=(-max_total_time="$seconds")
    fi
    mkdir -p "$corpus.seeds"
    xargs -a "$seedlist" cp -t "$corpus.seeds"
    rm -f "$seedlist"
    if nice -n 10 "$bin/$target" "${options[@]}" "${run[@]}" "$corpus" "$corpus.seeds" > "$scratch/$target.log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec)|^Done' "$scratch/$target.log" | tr '\n' ' '
        echo
    else
        tail -n 60 "$scratch/$target.log"
        status=1
    fi
done
exit $status
