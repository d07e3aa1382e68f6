#!/bin/bash
# Fuzzing driver: builds, campaigns, smoke test, coverage.  See fuzz/README.md.
#
#   ci/fuzz.sh --list                         targets of this tree
#   ci/fuzz.sh TARGET [--engine libfuzzer|afl] [--duration 10m] [--jobs N]
#   ci/fuzz.sh --all [--engine E] --duration D [--jobs N]   budget split evenly
#   ci/fuzz.sh --smoke        CI: both engines, replay, ~20 s per target, selftest
#   ci/fuzz.sh --coverage [--campaigns] [TARGET...]   line coverage of each
#                             target's sources (fuzz/coverage-map.txt); with
#                             --campaigns, of the campaigns' grown corpora too
#   ci/fuzz.sh --selftest     libFuzzer must find plugins/testbug's planted bug
#   ci/fuzz.sh --merge TARGET [--engine E]   minimise committed corpus + campaign
#   ci/fuzz.sh --replay       corpora + regressions under ASan/UBSan (ctest)
#
# Build trees: build-fuzz-{libfuzzer,afl,replay,cov}/ at the repo root.
# A campaign keeps its grown corpus in build-fuzz-<engine>/campaigns/<target>/;
# crashes it finds are copied to fuzz/regressions/<target>/ (replayed by ctest).
# Exit status: 0 clean, 1 finding or failure, 2 usage error.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
JOBS_BUILD=${JOBS:-$(nproc)}
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1
# Findings must abort, leaks included; symbolised reports for humans.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
SMOKE_LF_SECS=${SMOKE_LF_SECS:-14}
SMOKE_AFL_SECS=${SMOKE_AFL_SECS:-8}

die() { echo "fuzz.sh: $*" >&2; exit 2; }
log() { echo "fuzz.sh: $*" >&2; }

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

# "10m" / "90s" / "1h" / "45" -> seconds
seconds() {
    local v=$1
    case $v in
        *h) echo $(( ${v%h} * 3600 )) ;;
        *m) echo $(( ${v%m} * 60 )) ;;
        *s) echo $(( ${v%s} )) ;;
        *[!0-9]*|'') die "bad duration '$v' (use e.g. 90s, 10m, 1h)" ;;
        *) echo "$v" ;;
    esac
}

# ---- builds ------------------------------------------------------------------
build() { # engine -> build dir on stdout
    local engine=$1 dir cc flags=()
    case $engine in
        libfuzzer) dir=build-fuzz-libfuzzer cc=clang-14 ;;
        afl) dir=build-fuzz-afl cc=afl-clang-fast
             command -v afl-fuzz >/dev/null || die "afl++ is not installed (apt-get install afl++)" ;;
        replay) dir=build-fuzz-replay cc=clang-14 flags=(-DNIMBUS_SANITIZE=ON) ;;
        cov) dir=build-fuzz-cov cc=clang-14 flags=(-DNIMBUS_COVERAGE=ON); engine=replay ;;
        *) die "unknown engine '$engine'" ;;
    esac
    mkdir -p "$dir"
    if [ ! -f "$dir/build.ninja" ]; then
        CC=$cc cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DNIMBUS_WERROR=ON -DNIMBUS_BUILD_TESTS=OFF -DNIMBUS_BUILD_FUZZ=ON \
            -DNIMBUS_FUZZ_ENGINE="$engine" -DCMAKE_PROJECT_INCLUDE="$ROOT/fuzz/engine.cmake" \
            "${flags[@]}" >"$dir/fuzz-configure.log" 2>&1 ||
            { cat "$dir/fuzz-configure.log" >&2; log "configure of $dir failed"; return 1; }
    fi
    # Re-run cmake's globbing so targets of newly added plugins appear.
    cmake "$dir" >/dev/null 2>&1
    ninja -C "$dir" -j "$JOBS_BUILD" fuzz_targets >"$dir/fuzz-build.log" 2>&1 ||
        { tail -n 40 "$dir/fuzz-build.log" >&2; log "build of $dir failed"; return 1; }
    echo "$dir"
}

# targets.txt lines: name corpus plugin max_len
targets_of() { grep -v '^#' "$1/fuzz/targets.txt" | awk '{print $1}'; }
field_of() { awk -v t="$2" -v f="$3" '$1 == t { print $f }' "$1/fuzz/targets.txt"; }

dict_args() { # engine target
    local d=fuzz/dict/$2.dict
    [ -f "$d" ] || return 0
    if [ "$1" = afl ]; then echo "-x $ROOT/$d"; else echo "-dict=$ROOT/$d"; fi
}

# Copy new crash files into fuzz/regressions/<target>/ (content-named, no
# duplicates) and report each.  Prints the number of new findings.
collect() { # target files...
    local target=$1 n=0 f sum dest
    shift
    mkdir -p "fuzz/regressions/$target"
    for f in "$@"; do
        [ -f "$f" ] || continue
        sum=$(sha1sum "$f" | cut -c1-16)
        dest=fuzz/regressions/$target/crash-$sum
        if [ ! -e "$dest" ]; then
            cp "$f" "$dest"
            log "NEW FINDING in $target: $f copied to $dest" \
                "(reproduce: build-fuzz-replay/fuzz/$target $dest)"
        fi
        n=$((n + 1))
    done
    echo "$n"
}

# ---- campaigns ---------------------------------------------------------------
# Prints "target engine execs exec/s findings" on stdout; returns 1 on findings.
run_libfuzzer() { # dir target secs jobs [scratch]
    local dir=$1 t=$2 secs=$3 jobs=$4 scratch=${5:-}
    local bin=$ROOT/$dir/fuzz/$t corpus_name max_len work corpus art logf
    corpus_name=$(field_of "$dir" "$t" 2) max_len=$(field_of "$dir" "$t" 4)
    [ -x "$bin" ] || die "no target '$t' in $dir (see --list)"
    work=${scratch:-$ROOT/$dir/campaigns/$t}
    corpus=$work/corpus art=$work/artifacts logf=$work/log
    mkdir -p "$corpus" "$art"
    rm -f "$art"/*
    [ -d "fuzz/corpus/$corpus_name" ] && cp -n "fuzz/corpus/$corpus_name"/* "$corpus/" 2>/dev/null
    local par=()
    [ "$jobs" -gt 1 ] && par=(-fork="$jobs")
    # shellcheck disable=SC2046
    "$bin" -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$art/" -print_final_stats=1 "${par[@]}" $(dict_args libfuzzer "$t") \
        "$corpus" >"$logf" 2>&1
    local execs rate found
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$logf" | grep -Eo '[0-9]+$' | tail -n 1)
    [ -z "$execs" ] && execs=$(grep -Eo '^#[0-9]+' "$logf" | tail -n 1 | tr -d '#')
    rate=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$logf" | grep -Eo '[0-9]+$' | tail -n 1)
    # (fork mode prints "exec/s N" without the colon)
    [ -z "$rate" ] && rate=$(grep -Eo 'exec/s:? [0-9]+' "$logf" | tail -n 1 | grep -Eo '[0-9]+$')
    found=$(collect "$t" "$art"/crash-* "$art"/leak-* "$art"/oom-* "$art"/timeout-*)
    echo "$t libfuzzer ${execs:-0} ${rate:-0} $found"
    if [ "$found" -gt 0 ]; then
        grep -E 'ERROR|runtime error|FINDING|SUMMARY' "$logf" | head -n 5 >&2
        return 1
    fi
}

run_afl() { # dir target secs jobs [scratch]
    local dir=$1 t=$2 secs=$3 jobs=$4 scratch=${5:-}
    local bin=$ROOT/$dir/fuzz/$t corpus_name max_len work seeds out
    corpus_name=$(field_of "$dir" "$t" 2) max_len=$(field_of "$dir" "$t" 4)
    [ -x "$bin" ] || die "no target '$t' in $dir (see --list)"
    work=${scratch:-$ROOT/$dir/campaigns/$t}
    seeds=$work/seeds out=$work/out
    rm -rf "$out" "$seeds"
    mkdir -p "$seeds"
    [ -d "fuzz/corpus/$corpus_name" ] && cp "fuzz/corpus/$corpus_name"/* "$seeds/" 2>/dev/null
    # A previous campaign's queue seeds this one.
    [ -d "$work/queue" ] && cp "$work/queue"/* "$seeds/" 2>/dev/null
    [ -n "$(ls -A "$seeds")" ] || printf '\0' >"$seeds/empty"
    local common=(-i "$seeds" -o "$out" -V "$secs" -G "$max_len" -t 1000)
    local extra
    read -r -a extra <<<"$(dict_args afl "$t")"
    local pids=() i
    # afl-fuzz insists on these sanitizer settings (no symbolising, abort).
    local -x ASAN_OPTIONS=abort_on_error=1:symbolize=0:detect_leaks=0
    local -x UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:symbolize=0
    for ((i = 1; i < jobs; i++)); do
        afl-fuzz "${common[@]}" "${extra[@]}" -S "s$i" -- "$bin" >"$work/afl-s$i.log" 2>&1 &
        pids+=($!)
    done
    afl-fuzz "${common[@]}" "${extra[@]}" -M main -- "$bin" >"$work/afl-main.log" 2>&1
    local rc=$?
    for i in "${pids[@]}"; do wait "$i"; done
    if [ ! -f "$out/main/fuzzer_stats" ]; then
        tail -n 20 "$work/afl-main.log" >&2
        log "afl-fuzz failed to start for $t (rc $rc)"
        echo "$t afl 0 0 0"
        return 1
    fi
    mkdir -p "$work/queue"
    cp "$out"/main/queue/id:* "$work/queue/" 2>/dev/null
    local execs=0 rate=0 s e r
    for s in "$out"/*/fuzzer_stats; do
        e=$(awk -F: '/^execs_done/ {gsub(/ /, "", $2); print $2}' "$s")
        r=$(awk -F: '/^execs_per_sec/ {gsub(/ /, "", $2); print int($2)}' "$s")
        execs=$((execs + e)) rate=$((rate + r))
    done
    local found
    found=$(collect "$t" "$out"/*/crashes/id:*)
    echo "$t afl $execs $rate $found"
    [ "$found" -eq 0 ]
}

campaign() { # engine target secs jobs [scratch]
    local dir
    dir=$(build "$1") || return 1
    "run_$1" "$dir" "$2" "$3" "$4" "${5:-}"
}

summary_header() { printf '%-26s %-9s %12s %9s %s\n' target engine execs exec/s findings; }
summary_line() { printf '%-26s %-9s %12s %9s %s\n' "$@"; }

# ---- modes ---------------------------------------------------------------------
do_list() {
    local dir
    dir=$(build replay) || exit 1
    targets_of "$dir"
}

do_replay() {
    local dir
    dir=$(build replay) || return 1
    ctest --test-dir "$dir/fuzz" --output-on-failure -j "$JOBS_BUILD"
}

do_selftest() {
    local dir
    dir=$(build libfuzzer) || return 1
    local out rc
    out=$(ctest --test-dir "$dir/fuzz" --output-on-failure -R fuzz.selftest.planted_bug -V)
    rc=$?
    echo "$out" | grep -E 'selftest:|Passed|Failed|tests passed'
    return $rc
}

# AFL++ on the planted bug: reported, not required (one AFL++ run can miss
# it in 60 s; libFuzzer's selftest is the gate).
do_selftest_afl() {
    local dir work first
    dir=$(build afl) || return 1
    work=$(mktemp -d)
    local -x ASAN_OPTIONS=abort_on_error=1:symbolize=0:detect_leaks=0
    local -x UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:symbolize=0
    AFL_BENCH_UNTIL_CRASH=1 NIMBUS_FUZZ_PLUGIN=$ROOT/$dir/fuzz/plugins/testbug.so \
        afl-fuzz -i fuzz/corpus/testbug -o "$work/out" -V 60 -- "$ROOT/$dir/fuzz/fuzz_plugin_generic" \
        >"$work/log" 2>&1
    first=$(find "$work/out/default/crashes" -name 'id:000000*' 2>/dev/null | head -n 1)
    if [ -n "$first" ]; then
        log "selftest (AFL++): planted bug found after $(echo "$first" | sed -E 's/.*time:([0-9]+).*/\1/') ms," \
            "$(echo "$first" | sed -E 's/.*execs:([0-9]+).*/\1/') execs"
    else
        log "selftest (AFL++): planted bug not found in 60 s (informational)"
    fi
    rm -rf "$work"
}

do_smoke() {
    local t0 status=0 lf afl t line
    t0=$(date +%s)
    log "smoke: replay of every corpus and regression (ASan/UBSan)"
    # A fresh clone has no build tree yet; the log lives in it.
    mkdir -p "$ROOT/build-fuzz-replay"
    do_replay >"$ROOT/build-fuzz-replay/fuzz-ctest.log" 2>&1 ||
        { tail -n 40 "$ROOT/build-fuzz-replay/fuzz-ctest.log"; log "smoke: replay FAILED"; status=1; }
    lf=$(build libfuzzer) || return 1
    afl=$(build afl) || return 1
    local scratch
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' RETURN
    summary_header
    for t in $(targets_of "$lf"); do
        line=$(run_libfuzzer "$lf" "$t" "$SMOKE_LF_SECS" 1 "$scratch/lf-$t") || status=1
        # shellcheck disable=SC2086
        summary_line $line
    done
    for t in $(targets_of "$afl"); do
        line=$(run_afl "$afl" "$t" "$SMOKE_AFL_SECS" 1 "$scratch/afl-$t") || status=1
        # shellcheck disable=SC2086
        summary_line $line
    done
    do_selftest || status=1
    log "smoke: $( [ $status = 0 ] && echo PASSED || echo FAILED ) in $(( $(date +%s) - t0 )) s"
    return $status
}

do_all() { # engine secs jobs
    local dir n per t line status=0
    dir=$(build "$1") || return 1
    n=$(targets_of "$dir" | wc -l)
    per=$(( $2 / n ))
    [ "$per" -ge 5 ] || die "--duration too short for $n targets (need >= $((5 * n))s)"
    log "all: $n targets x ${per}s with $1"
    summary_header
    for t in $(targets_of "$dir"); do
        line=$("run_$1" "$dir" "$t" "$per" "$3") || status=1
        # shellcheck disable=SC2086
        summary_line $line
    done
    return $status
}

do_merge() { # engine target
    local dir corpus_name campaign_dir new
    dir=$(build libfuzzer) || return 1
    corpus_name=$(field_of "$dir" "$2" 2)
    [ -n "$corpus_name" ] || die "no target '$2'"
    campaign_dir=$ROOT/build-fuzz-$1/campaigns/$2
    new=$(mktemp -d)
    mkdir -p "fuzz/corpus/$corpus_name"
    local extra=("$campaign_dir/corpus")
    [ "$1" = afl ] && extra=("$campaign_dir/queue")
    # -use_counters=0: keep the fewest inputs that hit every edge (not every
    # hit-count bucket), so the committed corpus stays small.
    "$ROOT/$dir/fuzz/$2" -merge=1 -use_counters=0 -max_len="$(field_of "$dir" "$2" 4)" "$new" \
        "fuzz/corpus/$corpus_name" "${extra[@]}" >"$new.log" 2>&1 ||
        { tail -n 20 "$new.log"; rm -rf "$new"; return 1; }
    # Hand-written seeds stay (readable examples); merged inputs replace the rest.
    find "fuzz/corpus/$corpus_name" -type f ! -name 'seed-*' -delete
    local f sum
    for f in "$new"/*; do
        [ -f "$f" ] || continue
        sum=$(sha1sum "$f" | cut -c1-16)
        cmp_any "$f" "fuzz/corpus/$corpus_name" || cp "$f" "fuzz/corpus/$corpus_name/min-$sum"
    done
    rm -rf "$new" "$new.log"
    log "merge: fuzz/corpus/$corpus_name now has $(find "fuzz/corpus/$corpus_name" -type f | wc -l) files" \
        "($(du -sh "fuzz/corpus/$corpus_name" | cut -f1))"
}

cmp_any() { # file dir: true if an identical file is already in dir
    local g
    for g in "$2"/*; do cmp -s "$1" "$g" && return 0; done
    return 1
}

# The sources a target is meant to exercise (fuzz/coverage-map.txt), else
# its plugin's; absolute paths, one a line.
cov_sources() { # dir target
    local globs plugin f
    globs=$(awk -v t="$2" '!/^#/ && $1 == t { $1 = ""; print }' fuzz/coverage-map.txt)
    if [ -z "$globs" ]; then
        plugin=$(field_of "$1" "$2" 3)
        [ "$plugin" != "-" ] || return 0
        globs="plugins/$plugin/*.c"
    fi
    # shellcheck disable=SC2086 # the globs expand here, relative to $ROOT
    for f in $globs; do [ -f "$f" ] && echo "$ROOT/$f"; done
}

# llvm-cov over one profile and the given sources: HTML in html/<name>/,
# the lines no input ran in missed/<name>.txt ("file:line: source"), one
# line per file in coverage-files.txt, and "name covered total percent" on
# stdout.
cov_report() { # name profdata object [-object more]... -- sources...
    local name=$1 prof=$2 cov=$ROOT/build-fuzz-cov objs=()
    shift 2
    while [ "$1" != -- ]; do objs+=("$1"); shift; done
    shift
    llvm-cov-14 show "${objs[@]}" -instr-profile="$prof" -format=html \
        -output-dir="$cov/html/$name" "$@" >/dev/null 2>&1
    # (with one source file, llvm-cov prints no file name header)
    llvm-cov-14 show "${objs[@]}" -instr-profile="$prof" -format=text "$@" 2>/dev/null |
        awk -v root="$ROOT/" -v file="${1#"$ROOT"/}" '
            /^\/.*:$/ {
                file = substr($0, 1, length($0) - 1)
                if (index(file, root) == 1) file = substr(file, length(root) + 1)
                next
            }
            match($0, /^ *[0-9]+\| *0\|/) {
                n = $0; sub(/\|.*/, "", n); gsub(/ /, "", n)
                print file ":" n ": " substr($0, RLENGTH + 1)
            }' >"$cov/missed/$name.txt"
    llvm-cov-14 export "${objs[@]}" -instr-profile="$prof" -summary-only "$@" 2>/dev/null |
        /usr/bin/python3 -c '
import json, os, sys
name, root, files = sys.argv[1:4]
d = json.load(sys.stdin)["data"][0]
with open(files, "a") as f:
    for x in sorted(d["files"], key=lambda x: x["filename"]):
        s = x["summary"]["lines"]
        f.write("%s %s %d %d %.1f\n" % (name, os.path.relpath(x["filename"], root),
                                        s["covered"], s["count"], s["percent"]))
t = d["totals"]["lines"]
print("%s %d %d %.1f" % (name, t["covered"], t["count"], t["percent"]))' \
            "$name" "$ROOT" "$cov/coverage-files.txt"
}

# Line coverage of each target's own sources (fuzz/coverage-map.txt) by its
# committed corpus and regressions (and, with --campaigns, the corpora the
# last campaigns grew), then per plugin over all the targets that drive it.
do_coverage() { # campaigns(0|1) [targets...]
    local campaigns=$1 dir cov t line status=0 profdir summary
    shift
    command -v llvm-profdata-14 >/dev/null || die "llvm-14 (llvm-profdata-14, llvm-cov-14) is not installed"
    dir=$(build cov) || return 1
    cov=$ROOT/build-fuzz-cov profdir=$ROOT/build-fuzz-cov/profiles summary=$cov/coverage-summary.txt
    rm -rf "$profdir" "$cov/missed" "$cov/html"
    mkdir -p "$cov/html" "$cov/missed" "$profdir"
    echo "# ci/fuzz.sh --coverage $(date -u +%Y-%m-%dT%H:%MZ)$([ "$campaigns" = 1 ] && echo ' --campaigns'):" \
        "target covered total percent (lines of its sources: fuzz/coverage-map.txt)" >"$summary"
    echo "# target file covered total percent" >"$cov/coverage-files.txt"
    local want=("$@")
    [ ${#want[@]} -gt 0 ] || mapfile -t want < <(targets_of "$dir")
    for t in "${want[@]}"; do
        local corpus_name plugin bin objs=() srcs=() extra=()
        corpus_name=$(field_of "$dir" "$t" 2) plugin=$(field_of "$dir" "$t" 3)
        bin=$ROOT/$dir/fuzz/$t
        [ -x "$bin" ] || die "no target '$t'"
        [ "$campaigns" = 1 ] && extra=("$ROOT/build-fuzz-libfuzzer/campaigns/$t/corpus"
                                       "$ROOT/build-fuzz-afl/campaigns/$t/queue")
        LLVM_PROFILE_FILE="$profdir/$t-%p.profraw" "$bin" --allow-empty \
            "fuzz/corpus/$corpus_name" "fuzz/regressions/$t" "${extra[@]}" >/dev/null 2>&1 ||
            { log "coverage: replay of $t failed (a finding? run --replay)"; status=1; continue; }
        llvm-profdata-14 merge -sparse "$profdir/$t"-*.profraw -o "$profdir/$t.profdata"
        mapfile -t srcs < <(cov_sources "$dir" "$t")
        [ ${#srcs[@]} -gt 0 ] || { log "coverage: no sources for $t in fuzz/coverage-map.txt"; status=1; continue; }
        objs=("$bin")
        [ "$plugin" = - ] || objs+=(-object "$ROOT/$dir/plugins/$plugin.so")
        line=$(cov_report "$t" "$profdir/$t.profdata" "${objs[@]}" -- "${srcs[@]}")
        echo "$line" >>"$summary"
        # shellcheck disable=SC2086
        set -- $line
        echo "$t: $4% lines ($2/$3) of $(awk -v t="$t" '!/^#/ && $1 == t { $1 = ""; print }' \
            fuzz/coverage-map.txt | sed 's/^ *//' | grep . || echo "plugins/$plugin/*.c")"
    done
    # One figure per plugin that more than one target drives, over all of
    # their corpora together.
    local p
    for p in $(awk '!/^#/ && $3 != "-" {print $3}' "$dir/fuzz/targets.txt" | sort | uniq -d); do
        local profs=() srcs=()
        # shellcheck disable=SC2013 # target names are single words
        for t in $(awk -v p="$p" '!/^#/ && $3 == p {print $1}' "$dir/fuzz/targets.txt"); do
            [ -f "$profdir/$t.profdata" ] && profs+=("$profdir/$t.profdata")
        done
        [ ${#profs[@]} -gt 1 ] || continue
        llvm-profdata-14 merge -sparse "${profs[@]}" -o "$profdir/plugin-$p.profdata"
        srcs=("$ROOT/plugins/$p"/*.c)
        line=$(cov_report "plugin:$p" "$profdir/plugin-$p.profdata" "$ROOT/$dir/plugins/$p.so" -- "${srcs[@]}")
        echo "$line" >>"$summary"
        # shellcheck disable=SC2086
        set -- $line
        echo "plugin $p (all ${#profs[@]} targets): $4% lines ($2/$3)"
    done
    log "coverage: HTML in $cov/html/<target>/index.html, summary in $summary," \
        "per file in $cov/coverage-files.txt, unrun lines in $cov/missed/<target>.txt"
    return $status
}

# ---- arguments -----------------------------------------------------------------
mode="" target="" engine=libfuzzer duration="" jobs=1
cov_targets=() cov_campaigns=0
[ $# -gt 0 ] || usage
while [ $# -gt 0 ]; do
    case $1 in
        --list|--smoke|--selftest|--replay|--all) mode=${1#--} ;;
        --coverage) mode=coverage ;;
        --campaigns) cov_campaigns=1 ;;
        --merge) mode=merge; target=${2:-}; shift ;;
        --engine) engine=${2:-}; shift ;;
        --duration) duration=${2:-}; shift ;;
        --jobs) jobs=${2:-}; shift ;;
        -h|--help) usage ;;
        -*) die "unknown option '$1'" ;;
        *) if [ "$mode" = coverage ]; then cov_targets+=("$1");
           elif [ -z "$target" ]; then target=$1; mode=${mode:-campaign};
           else die "unexpected argument '$1'"; fi ;;
    esac
    shift
done
case $engine in libfuzzer|afl) ;; *) die "--engine must be libfuzzer or afl" ;; esac
case $jobs in ''|*[!0-9]*|0) die "--jobs must be a positive number" ;; esac

case $mode in
    list) do_list ;;
    smoke) do_smoke ;;
    selftest) do_selftest; rc=$?; do_selftest_afl; exit $rc ;;
    replay) do_replay ;;
    coverage) do_coverage "$cov_campaigns" "${cov_targets[@]}" ;;
    merge) [ -n "$target" ] || die "--merge needs a target"; do_merge "$engine" "$target" ;;
    all) [ -n "$duration" ] || die "--all needs --duration"
         do_all "$engine" "$(seconds "$duration")" "$jobs" ;;
    campaign) secs=$(seconds "${duration:-10m}")
              summary_header
              line=$(campaign "$engine" "$target" "$secs" "$jobs"); rc=$?
              # shellcheck disable=SC2086
              [ -n "$line" ] && summary_line $line
              exit $rc ;;
    *) usage ;;
esac
