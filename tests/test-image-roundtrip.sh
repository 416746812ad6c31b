#!/usr/bin/env bash
# ppf-image end to end: a 1 GiB mostly-sparse disk through pack and unpack
# (encrypted and public), output sparse on disk; .zst and qcow2 inputs and
# qcow2 output when qemu-img exists; documented exit codes for usage
# errors, wrong keys, corruption, truncation and I/O errors; no output or
# temporary file left after any failure; a full disk when a small tmpfs
# can be mounted (root only, else that part is skipped).
. "${top_builddir:-..}/tests/functions.sh" || exit 99

requires ppf-image --help
requires cmp --version
d=$tmpdir

expect_exit() {        # expect_exit CODE CMD...
    local want=$1 got=0; shift
    "$@" >"$d/out.log" 2>"$d/err.log" || got=$?
    [ "$got" -eq "$want" ] || { cat "$d/err.log" >&2; fail "'$*' exited $got, expected $want"; }
}
no_leftovers() {       # no_leftovers NAME: neither NAME nor NAME.tmp.* exist
    ! ls "$1" "$1".tmp.* >/dev/null 2>&1 || fail "left behind: $(ls "$1"*)"
}

head -c 32 /dev/urandom >"$d/key"; chmod 600 "$d/key"
head -c 32 /dev/urandom >"$d/key2"; chmod 600 "$d/key2"

# A 1 GiB disk: holes, with real data (binaries from /usr) at a few places.
truncate -s 1G "$d/disk.raw"
src=$(command -v bash)
for off in 0 7 300 301 777 1020; do
    dd if="$src" of="$d/disk.raw" bs=1M seek="$off" conv=notrunc status=none
done
printf 'tail' | dd of="$d/disk.raw" bs=1 seek=$((1024 * 1024 * 1024 - 4)) conv=notrunc status=none

# encrypted, two threads
ppf-image pack "$d/disk.raw" "$d/disk.ppfi" --key "$d/key" --threads 2 || fail "pack"
ppf-image info "$d/disk.ppfi" --key "$d/key" | grep -q 'cipher: *aes-256-gcm' || fail "info"
ppf-image info "$d/disk.ppfi" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["size"] == 1 << 30 and j["encrypted"] and not j["authenticated"], j
assert j["zero_chunks"] > 1000, j' || fail "info --json"
ppf-image verify "$d/disk.ppfi" --key "$d/key" >/dev/null || fail "verify"
ppf-image unpack "$d/disk.ppfi" "$d/disk.out" --key "$d/key" --threads 2 || fail "unpack"
cmp "$d/disk.raw" "$d/disk.out" || fail "round trip differs"
used=$(du -k "$d/disk.out" | cut -f1)
[ "$used" -lt 65536 ] || fail "output is not sparse: $used KiB on disk for 1 GiB"
[ "$(sha256sum <"$d/disk.out" | cut -c1-64)" = \
  "$(ppf-image info "$d/disk.ppfi" --json --key "$d/key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])')" ] ||
    fail "content digest is not the SHA-256 of the disk"
rm -f "$d/disk.out"

# public, one thread, 64 KiB chunks, digest checked during unpack
ppf-image pack "$d/disk.raw" "$d/pub.ppfi" --chunk 64K --level 1 || fail "pack public"
ppf-image unpack "file://$d/pub.ppfi" "$d/pub.out" --verify-digest --no-sync || fail "unpack public"
cmp "$d/disk.raw" "$d/pub.out" || fail "public round trip differs"
rm -f "$d/pub.out"

# .zst input
head -c 20M "$d/disk.raw" >"$d/small.raw"
if command -v zstd >/dev/null 2>&1; then
    zstd -q -c "$d/small.raw" >"$d/small.raw.zst"
    ppf-image pack "$d/small.raw.zst" "$d/zst.ppfi" --key "$d/key" --threads 2 || fail "pack .zst"
    ppf-image unpack "$d/zst.ppfi" "$d/zst.out" --key "$d/key" || fail "unpack .zst"
    cmp "$d/small.raw" "$d/zst.out" || fail ".zst round trip differs"
    head -c 100000 "$d/small.raw.zst" >"$d/trunc.zst"
    expect_exit 3 ppf-image pack "$d/trunc.zst" "$d/trunc.ppfi"
    no_leftovers "$d/trunc.ppfi"
else
    echo "zstd not installed: .zst input not tested"
fi

# qcow2 input and output
if command -v "${QEMU_IMG:-qemu-img}" >/dev/null 2>&1; then
    qemu-img convert -f raw -O qcow2 "$d/small.raw" "$d/small.qcow2"
    ppf-image pack "$d/small.qcow2" "$d/q.ppfi" || fail "pack qcow2"
    ppf-image unpack "$d/q.ppfi" "$d/q.out" || fail "unpack qcow2-sourced"
    cmp "$d/small.raw" "$d/q.out" || fail "qcow2 round trip differs"
    ppf-image unpack "$d/q.ppfi" "$d/q.qcow2" --format qcow2 || fail "unpack --format qcow2"
    qemu-img info "$d/q.qcow2" | grep -q 'file format: qcow2' || fail "output is not qcow2"
    qemu-img compare -q "$d/small.raw" "$d/q.qcow2" || fail "qcow2 output differs"
    no_leftovers "$d/q.qcow2.tmp"
else
    echo "qemu-img not installed: qcow2 not tested"
fi

# usage errors: 2
expect_exit 2 ppf-image
expect_exit 2 ppf-image frobnicate
expect_exit 2 ppf-image pack "$d/small.raw"
expect_exit 2 ppf-image pack "$d/small.raw" "$d/x.ppfi" --threads 0
expect_exit 2 ppf-image pack "$d/small.raw" "$d/x.ppfi" --chunk 3M
expect_exit 2 ppf-image pack "$d/small.raw" "$d/x.ppfi" --chunk 4K
expect_exit 2 ppf-image unpack "$d/disk.ppfi" "$d/x.out" --format vmdk
expect_exit 2 ppf-image info "$d/disk.ppfi" --level 3
for cmd in pack unpack info verify; do
    ppf-image $cmd --help | grep -q '^Usage: ' || fail "$cmd --help"
done
ppf-image --version | grep -q '^ppf-image [0-9]' || fail "--version"
chmod 644 "$d/key2"
expect_exit 2 ppf-image unpack "$d/disk.ppfi" "$d/x.out" --key "$d/key2"
grep -q 'chmod 600' "$d/err.log" || fail "no advice for a readable key file"
chmod 600 "$d/key2"
expect_exit 2 ppf-image unpack "$d/disk.ppfi" "$d/x.out"          # encrypted, no key
grep -q 'encrypted' "$d/err.log" || fail "no 'encrypted' in the message"
echo keep >"$d/exists.out"
expect_exit 2 ppf-image unpack "$d/zst.ppfi" "$d/exists.out" --key "$d/key"
[ "$(cat "$d/exists.out")" = keep ] || fail "an existing file was overwritten"
ppf-image unpack "$d/zst.ppfi" "$d/exists.out" --key "$d/key" --force || fail "--force"
no_leftovers "$d/x.out"

# bad images: 3, nothing left behind, keys never printed
expect_exit 3 ppf-image unpack "$d/disk.ppfi" "$d/x.out" --key "$d/key2"
grep -q 'wrong key' "$d/err.log" || fail "wrong key not reported as such"
for k in key key2; do
    hex=$(od -An -tx1 "$d/$k" | tr -d ' \n')
    ! grep -qi "${hex:0:16}" "$d/err.log" "$d/out.log" || fail "key material in a message"
done
cp "$d/zst.ppfi" "$d/bad.ppfi"
size=$(stat -c %s "$d/bad.ppfi")
printf '\x55' | dd of="$d/bad.ppfi" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_exit 3 ppf-image unpack "$d/bad.ppfi" "$d/x.out" --key "$d/key" --threads 2
grep -q 'bad.ppfi' "$d/err.log" || fail "the message does not name the image"
no_leftovers "$d/x.out"
expect_exit 3 ppf-image verify "$d/bad.ppfi" --key "$d/key"
head -c $((size - 10)) "$d/zst.ppfi" >"$d/short.ppfi"
expect_exit 3 ppf-image unpack "$d/short.ppfi" "$d/x.out" --key "$d/key"
no_leftovers "$d/x.out"
expect_exit 3 ppf-image info "$d/small.raw"                       # not an image

# I/O errors: 4
expect_exit 4 ppf-image info "$d/missing.ppfi"
expect_exit 4 ppf-image unpack "$d/zst.ppfi" "$d/nodir/x.out" --key "$d/key"

# A full disk (needs root and a mountable tmpfs).
if [ "$(id -u)" -eq 0 ] && mkdir "$d/full" && mount -t tmpfs -o size=8M ppf-test "$d/full" 2>/dev/null; then
    cleanup_fn "umount '$d/full'"
    cat /usr/bin/* 2>/dev/null | head -c 16M >"$d/dense.raw"
    ppf-image pack "$d/dense.raw" "$d/dense.ppfi" --key "$d/key" || fail "pack dense"
    expect_exit 4 ppf-image unpack "$d/dense.ppfi" "$d/full/x.out" --key "$d/key" --threads 2
    grep -qi 'disk full' "$d/err.log" || { cat "$d/err.log"; fail "a full disk is not reported as such"; }
    [ -z "$(ls -A "$d/full")" ] || fail "files left on the full disk: $(ls "$d/full")"
else
    echo "cannot mount a tmpfs: full-disk case skipped"
fi

# The man page is well-formed.
if command -v groff >/dev/null 2>&1; then
    out=$(groff -man -ww -z "$top_srcdir/docs/ppf-image.1" 2>&1) || fail "groff failed"
    [ -z "$out" ] || fail "groff warnings: $out"
fi
echo ok
