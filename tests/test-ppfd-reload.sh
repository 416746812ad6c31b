#!/usr/bin/env bash
# ppfd sends the policy file at start, re-reads it on SIGHUP, keeps the
# policy in force when the new file is invalid (reporting FILE:LINE:COLUMN),
# waits for a peripheral that is not there yet, and refuses to start on an
# invalid policy.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

policy=$tmpdir/policy.yaml
write_policy() {
    cat >"$policy" <<EOT
learning:
  algorithm: $1
table:
  size: $2
EOT
}
wait_for() {   # wait_for CMD...: up to 10 s
    for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done
    return 1
}
shows() { ppfctl policy show 2>/dev/null | grep -q "$1"; }

# ppfd first, the peripheral later: the policy arrives when it answers
export PPF_DEVICE="emu:$tmpdir/ppf0"
write_policy seasonal 4096
ppfd --policy "$policy" --device "$PPF_DEVICE" --exit-with-parent --pidfile "$tmpdir/ppfd.pid" \
    2>"$tmpdir/ppfd.log" &
ppfd_pid=$!
cleanup_fn "kill_pidfile '$tmpdir/ppfd.pid'; kill $ppfd_pid 2>/dev/null; wait $ppfd_pid 2>/dev/null"
wait_for test -s "$tmpdir/ppfd.pid" || fail "ppfd did not start"
grep -q "will send the policy when the peripheral answers" "$tmpdir/ppfd.log" ||
    fail "ppfd did not say it waits for the peripheral"
start_peripheral ppf0
wait_for shows "algorithm: seasonal" || { cat "$tmpdir/ppfd.log"; fail "policy not sent once the peripheral came"; }

# SIGHUP with a new valid policy
write_policy histogram 512
kill -HUP $ppfd_pid
wait_for shows "algorithm: histogram" || fail "SIGHUP did not apply the new policy"
shows "size: 512" || fail "table.size not applied"

# SIGHUP with an invalid one: reported, nothing changes
printf 'learning:\n  algorithm: astrology\n' >"$policy"
kill -HUP $ppfd_pid
wait_for grep -q "policy.yaml:2:[0-9]*: learning.algorithm" "$tmpdir/ppfd.log" ||
    { cat "$tmpdir/ppfd.log"; fail "invalid policy not reported with FILE:LINE:COLUMN"; }
grep -q "keeping the policy in force" "$tmpdir/ppfd.log" || fail "no 'keeping' message"
shows "algorithm: histogram" || fail "an invalid policy changed the device"
kill -0 $ppfd_pid || fail "ppfd died on an invalid policy"

# SIGTERM stops it cleanly and removes its pidfile
kill $ppfd_pid
wait $ppfd_pid || fail "ppfd exit status $? on SIGTERM"
[ ! -e "$tmpdir/ppfd.pid" ] || fail "pidfile left behind"

# an invalid policy at start: exit 1, with the reason
ppfd --policy "$policy" --foreground 2>"$tmpdir/err"; [ $? = 1 ] || fail "invalid policy at start: exit 1"
grep -q "astrology" "$tmpdir/err" || fail "start error does not name the value"
ppfd --bogus 2>/dev/null; [ $? = 2 ] || fail "bad option: exit 2"
echo ok
