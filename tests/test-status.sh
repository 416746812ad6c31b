#!/usr/bin/env bash
# ppfctl status and nop against a running emulated peripheral; --json
# output is valid JSON with the documented keys.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
requires python3 --version

start_peripheral ppf0
out=$(ppfctl status) || fail "ppfctl status: $out"
echo "$out"
echo "$out" | grep -q "^device      emu:$tmpdir/ppf0 (emulated)" || fail "status: device line"
echo "$out" | grep -q "^protocol    1\.0" || fail "status: protocol line"
echo "$out" | grep -q "17 pairs" || fail "status: geometry"

ppfctl --json status > "$tmpdir/s.json" || fail "status --json"
python3 - "$tmpdir/s.json" <<'PY' || fail "status --json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["device"]["backend"] == "emu"
assert d["device"]["queue_pairs"] == 17
assert d["identify"]["emulated"] is True
assert d["identify"]["model"] == "ppf emulated peripheral"
assert d["stats"]["op_identify"] >= 1
assert d["stats"]["clients"] >= 1
PY
ppfctl status --json | python3 -c 'import json,sys; json.load(sys.stdin)' ||
    fail "--json after the command"

out=$(ppfctl nop --count 2000) || fail "nop: $out"
echo "$out" | grep -q "2000 NOP round trips: p50" || fail "nop output: $out"
ppfctl --json nop --count 100 | python3 -c '
import json,sys; d=json.load(sys.stdin); assert d["count"]==100 and d["p50_us"]>0' ||
    fail "nop --json"

# interrupt-only waits work too
PPF_POLL_US=0 ppfctl nop --count 500 >/dev/null || fail "nop in interrupt mode"
# the admin pair and a custom geometry
start_peripheral small --queues 2 --queue-size 4 --slots 3 --slot-size 4KiB
ppfctl status | grep -q "2 pairs (1 admin + 1 I/O), 4 entries, 3 slots of 4 KiB" ||
    fail "custom geometry not reported"
ppfctl nop --count 100 >/dev/null || fail "nop on the smallest geometry"
echo ok
