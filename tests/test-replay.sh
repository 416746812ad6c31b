#!/usr/bin/env bash
# ppfctl replay: small traces in tests/replay-data (plain and gzip), the
# baselines, --json, --plot, --policy and --metrics; the same input gives
# the same output; bad traces fail with FILE:LINE and exit 1; bad options
# exit 2.  The full Google trace is bench/bench-replay's, not this test's.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

data="$top_srcdir/tests/replay-data"
requires ppfctl --version

# A plain trace, every baseline, JSON: one object per run with name and hit_ratio.
ppfctl replay "$data/daily.csv" --capacity 16GiB,64GiB --bandwidth 1GB/s \
    --baselines lru,belady,oracle --json >"$tmpdir/a.json" || fail "replay daily.csv"
python3 - "$tmpdir/a.json" <<'PY' || fail "JSON output"
import json, sys
runs = json.load(open(sys.argv[1]))
names = [r["name"] for r in runs]
assert names == ["ensemble", "lru", "belady", "oracle"] * 2, names
for r in runs:
    assert 0 <= r["hit_ratio"] <= 1, r
    assert r["requests"] == 1000, r
    assert r["wasted_prefetch_bytes"] <= r["prefetch_bytes"], r
by = {(r["name"], r["capacity"]): r for r in runs}
cap = 16 << 30
# the oracle is an upper bound, lru a floor the predictor must clear
assert by[("oracle", cap)]["hit_ratio"] >= by[("belady", cap)]["hit_ratio"]
assert by[("ensemble", cap)]["hit_ratio"] > by[("lru", cap)]["hit_ratio"], by
PY

# Deterministic: the same input gives byte-identical output (text and JSON).
ppfctl replay "$data/daily.csv" --capacity 16GiB --baselines all >"$tmpdir/t1" || fail "run 1"
ppfctl replay "$data/daily.csv" --capacity 16GiB --baselines all >"$tmpdir/t2" || fail "run 2"
cmp -s "$tmpdir/t1" "$tmpdir/t2" || fail "two runs differ: $(diff "$tmpdir/t1" "$tmpdir/t2")"
ppfctl --json replay "$data/daily.csv" --capacity 16GiB,64GiB --baselines all >"$tmpdir/a2.json"
ppfctl replay "$data/daily.csv" --capacity 16GiB,64GiB --baselines all --json >"$tmpdir/a3.json"
cmp -s "$tmpdir/a2.json" "$tmpdir/a3.json" || fail "JSON runs differ"
grep -q '^run ' "$tmpdir/t1" || fail "no table header"

# gzip input, every algorithm, a plot.
if command -v gzip >/dev/null 2>&1; then
    for a in markov seasonal histogram workload ensemble lru none; do
        ppfctl replay "$data/chain.csv.gz" --algorithm $a --capacity 8GiB \
            >"$tmpdir/chain-$a" || fail "replay chain.csv.gz --algorithm $a"
        grep -q "^$a " "$tmpdir/chain-$a" || fail "no $a row"
    done
    ppfctl replay "$data/chain.csv.gz" --capacity 4GiB,8GiB --baselines belady \
        --plot "$tmpdir/p.svg" >/dev/null || fail "--plot"
    grep -q '<svg' "$tmpdir/p.svg" || fail "--plot wrote no SVG"
    grep -q '</svg>' "$tmpdir/p.svg" || fail "--plot SVG is incomplete"
    # a truncated gzip file is an error, not a short trace
    head -c 2000 "$data/chain.csv.gz" >"$tmpdir/trunc.csv.gz"
    if ppfctl replay "$tmpdir/trunc.csv.gz" 2>"$tmpdir/err"; then
        fail "a truncated gzip trace was accepted"
    fi
fi

# A policy (tenant quotas, bandwidth) and a metrics file.
ppfctl replay "$data/daily.csv" --policy "$data/policy.yaml" \
    --metrics "$data/metrics.csv" --json >"$tmpdir/pol.json" || fail "--policy/--metrics"
grep -q '"capacity":17179869184' "$tmpdir/pol.json" || fail "policy capacity not used"
grep -q '"bandwidth":200000000' "$tmpdir/pol.json" || fail "policy bandwidth not used"

# Bad traces: exit 1 and FILE:LINE naming what is wrong.
check_bad() {
    local f=$1 want=$2 rc=0
    ppfctl replay "$data/$f" >/dev/null 2>"$tmpdir/err" || rc=$?
    [ $rc -eq 1 ] || fail "$f: exit $rc, wanted 1"
    grep -q -- "$want" "$tmpdir/err" || fail "$f: wanted '$want' in: $(cat "$tmpdir/err")"
}
check_bad bad-columns.csv "bad-columns.csv:1: .*missing: tenant"
check_bad bad-number.csv "bad-number.csv:3: size_bytes"
check_bad bad-time.csv "bad-time.csv:4: time goes back"
check_bad bad-binary.csv "bad-binary.csv:3: binary data"
check_bad bad-empty.csv "bad-empty.csv: empty trace"
check_bad bad-fields.csv "bad-fields.csv:3: 3 fields"
rc=0; ppfctl replay "$tmpdir/no-such-file" 2>"$tmpdir/err" || rc=$?
[ $rc -eq 1 ] && grep -q "no-such-file: cannot open" "$tmpdir/err" || fail "missing file"

# Usage errors: exit 2.
for args in "" "--capacity 12XB $data/daily.csv" "--bandwidth fast $data/daily.csv" \
        "--algorithm magic $data/daily.csv" "--baselines lfu $data/daily.csv" \
        "$data/daily.csv extra"; do
    rc=0; ppfctl replay $args >/dev/null 2>&1 || rc=$?
    [ $rc -eq 2 ] || fail "ppfctl replay $args: exit $rc, wanted 2"
done
echo "ok"
