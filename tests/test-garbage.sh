#!/usr/bin/env bash
# Garbage written into the window (random submission entries, wild indices
# and lengths, junk over device-owned fields) never crashes the peripheral
# and never disturbs other clients, whose every completion is verified.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

start_peripheral ppf0
pids=()
for seed in 1 2 3; do
    garbage-client --iterations 3000 --seed $seed & pids+=($!)
done
good=()
for i in 1 2 3 4; do
    stress-client --count 20000 --id $i & good+=($!)
done
for pid in "${good[@]}"; do
    wait "$pid" || fail "a well-behaved client was disturbed by garbage"
done
for pid in "${pids[@]}"; do
    wait "$pid" || fail "garbage client saw the peripheral stop answering"
done
kill -0 "$periph_pid" || fail "ppf-peripheral died"
ppfctl --json status | python3 -c '
import json,sys; s=json.load(sys.stdin)["stats"]
assert s["rejected"] > 0 and s["queue_fatal"] > 0, s
print("rejected", s["rejected"], "stopped pairs", s["queue_fatal"])' ||
    fail "garbage was not rejected"
ppfctl nop --count 1000 >/dev/null || fail "peripheral unusable after garbage"
echo ok
