#!/usr/bin/env bash
# Both daemons detach properly: the starting command returns once the
# daemon serves (even inside a pipeline: the daemon must not hold the
# caller's stderr), the log goes to --log-file, the pidfile names the
# daemon, and SIGTERM removes it.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

dev=$tmpdir/ppf0
cleanup_fn "kill_pidfile '$tmpdir/periph.pid'"
timeout 20 bash -c "ppf-peripheral --emulate --dev '$dev' --state-dir '$tmpdir/state' \
    --pidfile '$tmpdir/periph.pid' --log-file '$tmpdir/log/periph.log' 2>&1 | cat" ||
    fail "ppf-peripheral did not return once detached (status $?)"
[ -s "$tmpdir/periph.pid" ] || fail "no pidfile"
kill -0 "$(cat "$tmpdir/periph.pid")" || fail "the daemon is not running"
grep -q "ready:" "$tmpdir/log/periph.log" || fail "log file has no 'ready' line"
ppfctl --device "emu:$dev" status >/dev/null || fail "the detached peripheral does not answer"

printf 'table:\n  size: 333\n' >"$tmpdir/policy.yaml"
cleanup_fn "kill_pidfile '$tmpdir/ppfd.pid'"
timeout 20 bash -c "ppfd --device 'emu:$dev' --policy '$tmpdir/policy.yaml' \
    --pidfile '$tmpdir/ppfd.pid' --log-file '$tmpdir/log/ppfd.log' 2>&1 | cat" ||
    fail "ppfd did not return once detached (status $?)"
grep -q "applied: policy generation 1" "$tmpdir/log/ppfd.log" || fail "ppfd log"
ppfctl --device "emu:$dev" policy show | grep -q "size: 333" || fail "ppfd did not apply"

for d in ppfd periph; do
    pid=$(cat "$tmpdir/$d.pid")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    [ ! -e "$tmpdir/$d.pid" ] || fail "$d left its pidfile"
done
# an unwritable log file is an error at start, named
ppf-peripheral --emulate --dev "$tmpdir/x" --state-dir "$tmpdir/state2" \
    --log-file /proc/nope/log 2>"$tmpdir/err"; [ $? = 1 ] || fail "bad --log-file: exit 1"
grep -q "/proc/nope/log" "$tmpdir/err" || fail "bad --log-file not named"
echo ok
