#!/usr/bin/env bash
# Bad command-line arguments get exit status 2 and a message naming the
# option, the value and what is expected; a bad device spec or a missing
# peripheral gets exit status 1 and says what to do.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

expect() {   # expect STATUS PATTERN CMD...
    local want=$1 pat=$2 out st; shift 2
    out=$("$@" 2>&1); st=$?
    [ "$st" = "$want" ] || fail "'$*' exited $st, expected $want: $out"
    echo "$out" | grep -q -- "$pat" || fail "'$*' said '$out', expected /$pat/"
}

expect 2 "queues '0'"        ppf-peripheral --queues 0
expect 2 "queues '65'"       ppf-peripheral --queues 65
expect 2 "queue-size '3'"    ppf-peripheral --queue-size 3
expect 2 "queue-size '100'"  ppf-peripheral --queue-size 100
expect 2 "slot-size '5000'"  ppf-peripheral --slot-size 5000
expect 2 "slot-size '2MiB'"  ppf-peripheral --slot-size 2MiB
expect 2 "poll-us '-1'"      ppf-peripheral --poll-us -1
expect 2 "poll-us '12x'"     ppf-peripheral --poll-us 12x
expect 2 "must be below"     ppf-peripheral --queue-size 8 --slots 8 --foreground
expect 2 "log-level"         ppf-peripheral --log-level loud
expect 2 "unexpected argument" ppf-peripheral extra
expect 2 "Try 'ppf-peripheral --help'" ppf-peripheral --no-such-option

expect 2 "no command"        ppfctl
expect 2 "unknown command 'frobnicate'" ppfctl frobnicate
expect 2 "timeout 'abc'"     ppfctl --timeout abc status
expect 2 "count '0'"         ppfctl nop --count 0
expect 2 "status takes no arguments" ppfctl status extra
expect 1 "not a device spec" ppfctl --device bogus:thing status
expect 1 "no ppf peripheral at $tmpdir/none: start one" ppfctl --device "emu:$tmpdir/none" status
PPF_DEVICE="emu:$tmpdir/none2" expect 1 "no ppf peripheral at $tmpdir/none2" ppfctl status

# a path that is not a socket is refused, and left alone
echo "precious" > "$tmpdir/file"
expect 1 "not a ppf device socket" ppf-peripheral --foreground --dev "$tmpdir/file" \
    --state-dir "$tmpdir/st"
grep -q precious "$tmpdir/file" || fail "ppf-peripheral clobbered a regular file"
expect 1 "no ppf peripheral\|cannot connect" ppfctl --device "emu:$tmpdir/file" status
echo ok
