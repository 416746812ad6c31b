#!/usr/bin/env bash
# Whoever can submit commands can make the card write disks: the device is
# open to root (and the ppf group) only.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
requires setpriv --version

chmod 755 "$tmpdir"
start_peripheral ppf0 --group no-such-group-here
mode=$(stat -c %a "$tmpdir/ppf0")
[ "$mode" = 600 ] || fail "device socket mode is $mode, expected 600"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
      env PPF_DEVICE="$PPF_DEVICE" "$top_builddir/ppfctl" status 2>&1) &&
    fail "an unprivileged user reached the peripheral"
echo "$out" | grep -q "permission denied" || fail "unprivileged: $out"

# with a group, the socket is 0660 root:GROUP
if getent group ppf >/dev/null; then g=ppf; else g=$(id -gn 65534 2>/dev/null || echo nogroup); fi
start_peripheral ppf1 --group "$g"
mode=$(stat -c '%a %G' "$tmpdir/ppf1")
[ "$mode" = "660 $g" ] || fail "device socket is '$mode', expected '660 $g'"
out=$(setpriv --reuid=65534 --regid=65534 --init-groups \
      env PPF_DEVICE="emu:$tmpdir/ppf1" "$top_builddir/ppfctl" status 2>&1) ||
    fail "a member of group $g was refused: $out"
echo ok
