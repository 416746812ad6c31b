#!/usr/bin/env bash
# kill -9 of a client mid-stream: the other clients keep going and the
# dead client's queue pair is reclaimed for a new client.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

progress() { tail -n 1 "$1" 2>/dev/null | grep -E '^[0-9]+$' || echo 0; }

start_peripheral ppf0 --queues 3          # two I/O pairs only
stress-client --count 0 --id 1 --progress "$tmpdir/a.progress" & a=$!
cleanup_fn "kill -9 $a 2>/dev/null"
stress-client --count 0 --id 2 --progress "$tmpdir/b.progress" & b=$!
cleanup_fn "kill -9 $b 2>/dev/null"
for _ in $(seq 200); do
    [ "$(progress "$tmpdir/a.progress")" -gt 0 ] &&
        [ "$(progress "$tmpdir/b.progress")" -gt 0 ] && break
    sleep 0.05
done
[ "$(progress "$tmpdir/a.progress")" -gt 0 ] || fail "client a did not start"
[ "$(progress "$tmpdir/b.progress")" -gt 0 ] || fail "client b did not start"

# a third client must wait: both pairs are taken
stress-client --count 3000 --id 3 --claim-timeout 20000 & c=$!
cleanup_fn "kill -9 $c 2>/dev/null"
sleep 0.5
kill -0 $c 2>/dev/null || fail "client c finished while no pair was free"
kill -9 $a
wait $a 2>/dev/null
wait $c || fail "client c never got the reclaimed pair"

# b kept going the whole time, and still does
before=$(progress "$tmpdir/b.progress")
sleep 0.3
after=$(progress "$tmpdir/b.progress")
kill -0 $b || fail "client b died"
[ "$after" -gt "$before" ] || fail "client b stalled ($before -> $after)"
kill $b; wait $b 2>/dev/null

ppfctl --json status | python3 -c '
import json,sys; s=json.load(sys.stdin)["stats"]
assert s["reclaims"] >= 1, s
assert s["errors"] == 0, s' || fail "no reclaim counted, or errors"
echo ok
