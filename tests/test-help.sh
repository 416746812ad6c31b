#!/usr/bin/env bash
# Every program answers --help and --version, and has a man page.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

for prog in ppf-peripheral ppfctl ppfd; do
    out=$($prog --help) || fail "$prog --help exited $?"
    echo "$out" | grep -q '^Usage: ' || fail "$prog --help prints no usage"
    $prog --version | grep -q "^$prog [0-9]" || fail "$prog --version"
    [ -f "$top_srcdir/docs/$prog.8" ] || fail "no man page docs/$prog.8"
    if command -v man >/dev/null 2>&1; then
        man -l "$top_srcdir/docs/$prog.8" 2>/dev/null | grep -q "$prog" ||
            fail "man page docs/$prog.8 does not render"
    fi
done
ppfctl help | grep -q status || fail "ppfctl help lists no commands"
echo "ok"
