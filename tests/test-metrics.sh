#!/usr/bin/env bash
# The metrics ring end to end: ppfd samples the host at the policy's
# monitoring.interval into the peripheral's ring and the monitor reads it;
# SIGHUP changes the interval; a restarted peripheral is re-attached; a
# ppfd killed with -9 leaves the ring to its successor.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

wait_for() {   # wait_for CMD...: up to 10 s
    for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done
    return 1
}
plog=$tmpdir/ppf0.log
policy=$tmpdir/policy.yaml
printf 'monitoring:\n  interval: 100ms\n' >"$policy"

start_peripheral ppf0
start_ppfd() {
    rm -f "$tmpdir/ppfd.pid"
    ppfd --policy "$policy" --device "$PPF_DEVICE" --foreground --exit-with-parent \
        --pidfile "$tmpdir/ppfd.pid" 2>>"$tmpdir/ppfd.log" &
    ppfd_pid=$!
    cleanup_fn "kill $ppfd_pid 2>/dev/null; wait $ppfd_pid 2>/dev/null"
    wait_for test -s "$tmpdir/ppfd.pid" || { cat "$tmpdir/ppfd.log"; fail "ppfd did not start"; }
}
start_ppfd
sleep 1
grep -q "receiving host metrics from producer pid $ppfd_pid every 100 ms" "$plog" ||
    { cat "$plog" "$tmpdir/ppfd.log"; fail "no records from ppfd at 100 ms"; }
grep -q "writing samples every 100 ms" "$tmpdir/ppfd.log" || fail "ppfd did not attach"

# SIGHUP: the new interval reaches the device
printf 'monitoring:\n  interval: 300ms\n' >"$policy"
kill -HUP $ppfd_pid
wait_for grep -q "producer pid $ppfd_pid every 300 ms" "$plog" ||
    { cat "$plog" "$tmpdir/ppfd.log"; fail "SIGHUP did not change the interval"; }

# the peripheral restarts: ppfd re-attaches to the new window
kill_pidfile "$tmpdir/ppf0.pid"
mv "$plog" "$tmpdir/ppf0-first.log"
start_peripheral ppf0
wait_for grep -q "receiving host metrics from producer pid $ppfd_pid" "$plog" ||
    { cat "$plog" "$tmpdir/ppfd.log"; fail "ppfd did not re-attach to a restarted peripheral"; }
kill -0 $ppfd_pid || fail "ppfd died when the peripheral restarted"

# ppfd killed -9: the next one takes the ring over from the dead pid
old=$ppfd_pid
kill -9 $ppfd_pid
wait $ppfd_pid 2>/dev/null
start_ppfd
wait_for grep -q "receiving host metrics from producer pid $ppfd_pid" "$plog" ||
    { cat "$plog" "$tmpdir/ppfd.log"; fail "a new ppfd could not take over from dead pid $old"; }
grep -q "took the metrics ring over from dead producer pid $old" "$tmpdir/ppfd.log" ||
    fail "take-over not logged"

# a peripheral without a ring (--metrics-records 0) is reported, not fatal
kill $ppfd_pid; wait $ppfd_pid 2>/dev/null
kill_pidfile "$tmpdir/ppf0.pid"
start_peripheral ppf1 --metrics-records 0
start_ppfd
wait_for grep -q "has no metrics ring" "$tmpdir/ppfd.log" ||
    { cat "$tmpdir/ppfd.log"; fail "missing ring not reported"; }
kill -0 $ppfd_pid || fail "ppfd died on a peripheral without a ring"
echo ok
