#!/usr/bin/env bash
# Every program answers --help and --version, and has a man page.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

for prog in ppf-peripheral ppfctl ppfd ppf-image; do
    sec=8; [ "$prog" = ppf-image ] && sec=1
    out=$($prog --help) || fail "$prog --help exited $?"
    echo "$out" | grep -q '^Usage: ' || fail "$prog --help prints no usage"
    $prog --version | grep -q "^$prog [0-9]" || fail "$prog --version"
    [ -f "$top_srcdir/docs/$prog.$sec" ] || fail "no man page docs/$prog.$sec"
    if command -v man >/dev/null 2>&1; then
        man -l "$top_srcdir/docs/$prog.$sec" 2>/dev/null | grep -q "$prog" ||
            fail "man page docs/$prog.$sec does not render"
    fi
done
ppfctl help | grep -q status || fail "ppfctl help lists no commands"
for cmd in status nop policy prefetch deploy release evict buffer stats replay; do
    ppfctl help | grep -q "^  $cmd" || fail "ppfctl help does not list $cmd"
    grep -q "^\.B.*$cmd" "$top_srcdir/docs/ppfctl.8" || fail "ppfctl(8) does not document $cmd"
done
ppf-reaper --help | grep -q '^Usage' || fail "ppf-reaper --help"
ppf-qemu-hook --help | grep -qi '^usage' || fail "ppf-qemu-hook --help"
[ -f "$top_srcdir/docs/ppf-qemu-hook.8" ] || fail "no ppf-qemu-hook(8)"
[ -f "$top_srcdir/docs/ppf-policy.5" ] || fail "no ppf-policy(5)"
echo "ok"
