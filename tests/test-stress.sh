#!/usr/bin/env bash
# 8 processes x 50,000 commands each, 8 in flight, against one emulated
# peripheral: every completion verified (token and payload, exactly once,
# to the right process).  Then 12 processes on only 4 I/O pairs: waiting
# for a pair is back-pressure, never an error.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

run_clients() {   # run_clients N COUNT [ARGS]
    local n=$1 count=$2 pids=() i rc=0; shift 2
    for ((i = 1; i <= n; i++)); do
        stress-client --count "$count" --id "$i" "$@" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || rc=1
    done
    return $rc
}

start_peripheral ppf0
time run_clients 8 50000 --depth 8 || fail "a stress client failed"
ppfctl --json status > "$tmpdir/s.json"
python3 - "$tmpdir/s.json" <<'PY' || fail "stats after stress"
import json, sys
s = json.load(open(sys.argv[1]))["stats"]
assert s["op_nop"] >= 400000, s
assert s["errors"] == 0, s
assert s["queue_fatal"] == 0, s
PY

# mixed waiting modes: interrupts only, and pure polling
run_clients 4 5000 --depth 1 --poll-us 0 || fail "interrupt-mode clients failed"
run_clients 2 5000 --depth 4 --poll-us -1 || fail "polling clients failed"
# more processes than pairs
time run_clients 24 10000 --depth 8 || fail "24 clients on 16 pairs failed"

start_peripheral few --queues 5
time run_clients 12 3000 --depth 4 || fail "clients waiting for pairs failed"
echo ok
