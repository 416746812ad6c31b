#!/usr/bin/env bash
# A dead peripheral: clients waiting on it fail promptly with a clear
# message (never hang); a stale socket is taken over by a new peripheral;
# a second peripheral on a live socket is refused; SIGTERM stops cleanly.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

start_peripheral ppf0
stress-client --count 0 --id 1 --progress "$tmpdir/a.progress" 2>"$tmpdir/a.err" & a=$!
cleanup_fn "kill -9 $a 2>/dev/null"
PPF_POLL_US=0 stress-client --count 0 --id 2 --depth 1 2>"$tmpdir/b.err" & b=$!
cleanup_fn "kill -9 $b 2>/dev/null"
for _ in $(seq 100); do [ -s "$tmpdir/a.progress" ] && break; sleep 0.05; done

# a second peripheral on the same socket is refused
out=$(ppf-peripheral --foreground --dev "$tmpdir/ppf0" --state-dir "$tmpdir/st2" 2>&1) &&
    fail "a second peripheral started on a live socket"
echo "$out" | grep -q "already running" || fail "second peripheral: $out"

kill -9 "$periph_pid"
start=$(date +%s%N)
wait $a && fail "client a exited 0 after the peripheral died"
wait $b && fail "client b exited 0 after the peripheral died"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "clients noticed in ${elapsed} ms"
[ "$elapsed" -lt 3000 ] || fail "clients took ${elapsed} ms to notice"
grep -q "went away" "$tmpdir/a.err" || fail "client a: $(cat "$tmpdir/a.err")"
grep -q "went away" "$tmpdir/b.err" || fail "client b: $(cat "$tmpdir/b.err")"

# stale socket left by kill -9: a new peripheral takes over
[ -S "$tmpdir/ppf0" ] || fail "expected a stale socket"
start_peripheral ppf0
ppfctl status >/dev/null || fail "new peripheral on a stale socket"

# SIGTERM: clean stop, socket and pidfile removed, clients told
stress-client --count 0 --id 3 2>"$tmpdir/c.err" & c=$!
cleanup_fn "kill -9 $c 2>/dev/null"
sleep 0.2
kill -TERM "$periph_pid"
wait "$periph_pid"; st=$?
[ "$st" = 0 ] || fail "ppf-peripheral exited $st on SIGTERM"
wait $c && fail "client c exited 0 after shutdown"
grep -q "shut down\|went away" "$tmpdir/c.err" || fail "client c: $(cat "$tmpdir/c.err")"
[ -e "$tmpdir/ppf0" ] && fail "socket left behind after SIGTERM"
[ -e "$tmpdir/ppf0.pid" ] && fail "pidfile left behind after SIGTERM"
echo ok
