#!/usr/bin/env bash
# A short libFuzzer run (20 s) of the policy parser and device codec
# (tests/fuzz/fuzz-policy.c), built here with clang's fuzzer, ASan and
# UBSan straight from the sources, seeded with examples/ and
# tests/policy-data/.  Skips (77) without clang or its fuzzer runtime.
# Set PPF_FUZZ_SECONDS to run longer.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

requires clang --version
requires pkg-config --exists yaml-0.1
[ -f "$top_builddir/config.h" ] || fail "no config.h in $top_builddir"

bin=$tmpdir/fuzz-policy
srcs=("$top_srcdir"/tests/fuzz/fuzz-policy.c)
for f in "$top_srcdir"/policy/*.c; do
    case $f in */check-main.c) ;; *) srcs+=("$f") ;; esac
done
srcs+=("$top_srcdir"/common/json.c "$top_srcdir"/common/protocol.c)

# shellcheck disable=SC2046
if ! clang -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined \
        -I"$top_builddir" -I"$top_srcdir/include" -I"$top_srcdir" \
        $(pkg-config --cflags yaml-0.1) "${srcs[@]}" \
        $(pkg-config --libs yaml-0.1) -o "$bin" 2> "$tmpdir/cc.log"; then
    if grep -q -e 'libclang_rt.fuzzer' -e 'cannot find -l' -e 'unsupported option' \
            "$tmpdir/cc.log"; then
        cat "$tmpdir/cc.log"
        echo "$0: skipped: clang has no libFuzzer runtime (libclang-rt-dev)"
        exit 77
    fi
    cat "$tmpdir/cc.log"
    fail "the fuzzer does not build"
fi

mkdir "$tmpdir/corpus"
cp "$top_srcdir"/examples/*.yaml "$top_srcdir"/tests/policy-data/*.yaml "$tmpdir/corpus/"

cd "$tmpdir" || exit 99
if ! "$bin" -max_total_time="${PPF_FUZZ_SECONDS:-20}" -rss_limit_mb=512 -timeout=10 \
        -max_len=65536 -print_final_stats=1 corpus > fuzz.log 2>&1; then
    tail -60 fuzz.log
    ls crash-* leak-* timeout-* oom-* 2>/dev/null
    fail "the policy fuzzer found a problem (see the log above)"
fi
grep -E '^(stat::number_of_executed_units|#[0-9]+ +DONE)' fuzz.log || tail -3 fuzz.log
echo "ok"
