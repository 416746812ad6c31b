#!/usr/bin/env bash
# Builds tests/fuzz/fuzz-ppfi.c with clang's libFuzzer, ASan and UBSan
# straight from the sources and runs it for about 20 seconds on a corpus
# seeded with small real images.  Skipped (77) without clang or libFuzzer.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

requires clang --version
requires pkg-config --exists gnutls libzstd
requires ppf-image --help
d=$tmpdir

echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$d/probe.c"
clang -fsanitize=fuzzer "$d/probe.c" -o "$d/probe" 2>/dev/null ||
    { echo "$0: skipped: clang has no libFuzzer (install libclang-rt-dev)"; exit 77; }

# shellcheck disable=SC2046
clang -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$top_builddir" -I"$top_srcdir" -I"$top_srcdir/include" \
    $(pkg-config --cflags gnutls libzstd) \
    "$top_srcdir/tests/fuzz/fuzz-ppfi.c" "$top_srcdir/image/format.c" "$top_srcdir/image/err.c" \
    $(pkg-config --libs gnutls libzstd) -o "$d/fuzz-ppfi" || fail "building the fuzz target"

mkdir "$d/corpus"
head -c 32 /dev/urandom >"$d/key"; chmod 600 "$d/key"
yes "ppf fuzz seed $RANDOM" | head -c 300000 >"$d/in.raw"
truncate -s 1M "$d/in.raw"
ppf-image pack "$d/in.raw" "$d/corpus/public.ppfi" --chunk 64K || fail "pack seed"
ppf-image pack "$d/in.raw" "$d/corpus/sealed.ppfi" --chunk 64K --key "$d/key" || fail "pack seed"
: >"$d/empty.raw"
ppf-image pack "$d/empty.raw" "$d/corpus/empty.ppfi" || fail "pack seed"

"$d/fuzz-ppfi" -max_total_time="${PPF_FUZZ_SECONDS:-20}" -max_len=8192 -timeout=10 \
    -rss_limit_mb=1024 -print_final_stats=1 "$d/corpus" >"$d/fuzz.log" 2>&1 || {
    tail -40 "$d/fuzz.log" >&2
    fail "the fuzzer found a crash"
}
grep -E 'stat::number_of_executed_units' "$d/fuzz.log" || :
echo ok
