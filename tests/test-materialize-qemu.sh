#!/usr/bin/env bash
# The qcow2 overlays that peripheral/materialize.c writes by hand, checked
# by the real qemu tools at sizes from 512 bytes to 1 TiB (including sizes
# that are not multiples of the cluster or of 512 bytes): qemu-img check
# finds no error, qemu-img info reports the backing file, its raw format
# and the virtual size, qemu-img compare finds the overlay identical to its
# base, and writes through qemu-io land in the overlay and never in the
# base.  Also: an existing file is never overwritten unless --replace, a
# copy is identical and sparse, no temporary file is left behind.
# Skipped (77) without qemu-img and qemu-io.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

requires qemu-img --version
requires qemu-io --version
requires command -v materialize-tool
d=$tmpdir
mt=materialize-tool

# json_field FILE KEY: the top-level scalar KEY of qemu-img's JSON output.
json_field() {
    sed -n "s/^    \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$1" | head -n 1
}
no_tmp_left() {
    if ls -A "$d" | grep -q -- '\.ppf-tmp-'; then
        fail "temporary files left behind: $(ls -A "$d" | grep -- '\.ppf-tmp-')"
    fi
}
# pattern_at FILE FMT OFFSET LEN BYTE: qemu-io reads BYTE at OFFSET..+LEN.
pattern_at() {
    local out
    out=$(qemu-io -f "$2" -r -c "read -P $5 $3 $4" "$1" 2>&1) ||
        fail "$1 ($2): expected $5 at $3+$4: $out"
    case $out in *"verification failed"*) fail "$1 ($2): expected $5 at $3+$4: $out" ;; esac
}

check_size() {
    local size=$1
    local vsize=$(( (size + 511) / 512 * 512 ))
    local base="$d/base-$size.raw" ov="$d/ov-$size.qcow2"
    local tail=$(( size < 200 ? size / 2 : 100 ))
    local head=$(( size - tail < 4096 ? size - tail : 4096 ))
    local w=$(( vsize < 65536 ? vsize : 65536 ))
    local before after

    # The base: sparse, a pattern at the start and at the very end.
    truncate -s "$size" "$base"
    qemu-io -f raw -c "write -P 0x5a 0 $head" "$base" >/dev/null || fail "writing base $size"
    qemu-io -f raw -c "write -P 0x77 $((size - tail)) $tail" "$base" >/dev/null ||
        fail "writing the end of base $size"
    before=$(stat -c '%s %Y %b' "$base")

    $mt overlay "$d" "$ov" "$base" || fail "overlay of $size bytes"
    no_tmp_left

    qemu-img check "$ov" >"$d/check.out" 2>&1 || { cat "$d/check.out"; fail "qemu-img check $ov"; }
    grep -q 'No errors were found' "$d/check.out" || { cat "$d/check.out"; fail "check $ov"; }
    qemu-img info --output=json "$ov" >"$d/info.json" || fail "qemu-img info $ov"
    [ "$(json_field "$d/info.json" format)" = qcow2 ] || { cat "$d/info.json"; fail "format"; }
    [ "$(json_field "$d/info.json" virtual-size)" = "$vsize" ] ||
        { cat "$d/info.json"; fail "virtual size of $ov is not $vsize"; }
    [ "$(json_field "$d/info.json" backing-filename)" = "$base" ] ||
        { cat "$d/info.json"; fail "backing file of $ov"; }
    [ "$(json_field "$d/info.json" backing-filename-format)" = raw ] ||
        { cat "$d/info.json"; fail "backing format of $ov"; }
    [ "$(json_field "$d/info.json" cluster-size)" = 65536 ] || fail "cluster size of $ov"
    grep -q '"compat": "1.1"' "$d/info.json" || fail "$ov is not qcow2 v3"
    [ "$($mt backing "$ov")" = "$base" ] || fail "materialize-tool backing $ov"
    [ "$(stat -c %b "$ov")" -le 256 ] || fail "$ov takes $(stat -c %b "$ov") blocks"

    qemu-img compare -f qcow2 -F raw "$ov" "$base" >"$d/cmp.out" 2>&1 ||
        { cat "$d/cmp.out"; fail "overlay $size differs from its base"; }
    pattern_at "$ov" qcow2 $((size - tail)) "$tail" 0x77

    # Writes go to the overlay, never to the base.
    qemu-io -f qcow2 -c "write -P 0xab 0 $w" "$ov" >"$d/io.out" 2>&1 ||
        { cat "$d/io.out"; fail "writing into $ov"; }
    pattern_at "$ov" qcow2 0 "$w" 0xab
    pattern_at "$base" raw 0 "$head" 0x5a
    after=$(stat -c '%s %Y %b' "$base")
    [ "$before" = "$after" ] || fail "base $size changed: $before -> $after"
    qemu-img check "$ov" >"$d/check.out" 2>&1 || { cat "$d/check.out"; fail "check after write"; }
    if qemu-img compare -f qcow2 -F raw "$ov" "$base" >/dev/null 2>&1; then
        fail "overlay $size still identical to its base after a write"
    fi
    rm -f "$ov" "$base"
    echo "size $size: ok"
}

KiB=1024 MiB=$((1024 * 1024)) GiB=$((1024 * 1024 * 1024))
for size in 512 1000 $((64 * KiB + 512)) $((3 * MiB + 4096)) $GiB $((GiB + 512)) \
            $((8 * GiB)) $((8 * GiB + 123 * 512)) $((1024 * GiB)) $((1024 * GiB + 65536 + 512)); do
    check_size "$size"
done

# The largest overlay (2 PiB: a 32 MiB L1 table, qemu's limit) over a
# small base; one byte more is refused.
truncate -s 1M "$d/base.raw"
$mt overlay "$d" "$d/huge.qcow2" "$d/base.raw" $((2 << 50)) || fail "2 PiB overlay"
qemu-img check "$d/huge.qcow2" >/dev/null || fail "check of the 2 PiB overlay"
qemu-io -f qcow2 -c 'write -P 0xcd 1P 64k' "$d/huge.qcow2" >/dev/null || fail "write at 1 PiB"
pattern_at "$d/huge.qcow2" qcow2 1P 64k 0xcd
pattern_at "$d/huge.qcow2" qcow2 0 1M 0
qemu-img check "$d/huge.qcow2" >/dev/null || fail "check of the 2 PiB overlay after a write"
if $mt overlay "$d" "$d/huge2.qcow2" "$d/base.raw" $(((2 << 50) + 1)) 2>/dev/null; then
    fail "an overlay beyond 2 PiB was made"
fi
rm -f "$d/huge.qcow2"
no_tmp_left

# Never overwrite without --replace; replace when asked.
echo precious >"$d/user.img"
if $mt overlay "$d" "$d/user.img" "$d/base.raw" 2>"$d/err"; then
    fail "an existing disk was overwritten"
fi
grep -q 'never overwritten' "$d/err" || { cat "$d/err"; fail "message for an existing disk"; }
[ "$(cat "$d/user.img")" = precious ] || fail "the existing disk changed"
if $mt copy "$d" "$d/user.img" "$d/base.raw" 2>/dev/null; then
    fail "an existing disk was overwritten by a copy"
fi
$mt overlay "$d" "$d/user.img" "$d/base.raw" --replace || fail "--replace"
qemu-img check "$d/user.img" >/dev/null || fail "check of the replaced disk"
no_tmp_left

# Targets through symlinks or outside the allowed directory are refused.
mkdir "$d/allowed" "$d/elsewhere"
ln -s "$d/elsewhere" "$d/allowed/link"
if $mt overlay "$d/allowed" "$d/allowed/link/x.qcow2" "$d/base.raw" 2>/dev/null; then
    fail "a symlinked directory was followed"
fi
if $mt overlay "$d/allowed" "$d/elsewhere/x.qcow2" "$d/base.raw" 2>/dev/null; then
    fail "a target outside the allowed directory was accepted"
fi
[ -z "$(ls -A "$d/elsewhere")" ] || fail "something was written outside: $(ls -A "$d/elsewhere")"

# A copy: identical to its source and sparse.
truncate -s 1G "$d/src.raw"
qemu-io -f raw -c 'write -P 0x11 0 1M' -c 'write -P 0x22 512M 64k' "$d/src.raw" >/dev/null
$mt copy "$d" "$d/copy.raw" "$d/src.raw" || fail "copy"
qemu-img compare -f raw -F raw "$d/copy.raw" "$d/src.raw" >/dev/null || fail "copy differs"
[ "$(stat -c %b "$d/copy.raw")" -le $(( $(stat -c %b "$d/src.raw") + 64 )) ] ||
    fail "copy is not sparse: $(stat -c %b "$d/copy.raw") blocks"
# An overlay over the copy works too (qcow2 backing a raw copy).
$mt overlay "$d" "$d/ov-copy.qcow2" "$d/copy.raw" || fail "overlay over the copy"
qemu-img compare "$d/ov-copy.qcow2" "$d/src.raw" >/dev/null || fail "overlay over copy differs"
no_tmp_left

# Reflink: on a loop-mounted XFS (root and mkfs.xfs needed, else skipped),
# a copy of a 300 MiB file succeeds with less than 300 MiB free, which
# only FICLONE can do, and the copy is still independent of its source.
if [ "$(id -u)" -eq 0 ] && command -v mkfs.xfs >/dev/null 2>&1 &&
    truncate -s 512M "$d/xfs.img" && mkfs.xfs -q -m reflink=1 "$d/xfs.img" 2>/dev/null &&
    mkdir "$d/xfs" && mount -o loop "$d/xfs.img" "$d/xfs" 2>/dev/null; then
    cleanup_fn "umount '$d/xfs'"
    yes ppf | head -c 300M >"$d/xfs/src.raw"
    sync "$d/xfs/src.raw"
    $mt copy "$d/xfs" "$d/xfs/copy.raw" "$d/xfs/src.raw" || fail "reflink copy on XFS"
    cmp -s "$d/xfs/src.raw" "$d/xfs/copy.raw" || fail "the reflink copy differs"
    qemu-io -f raw -c 'write -P 0xee 0 64k' "$d/xfs/copy.raw" >/dev/null || fail "write to copy"
    pattern_at "$d/xfs/src.raw" raw 0 2 0x70 # the source still starts "pp"
    ls -A "$d/xfs" | grep -q -- '\.ppf-tmp-' && fail "temporary file left on XFS"
    echo "reflink copy: ok"
else
    echo "no loop-mounted XFS with reflink: FICLONE case skipped"
fi
echo ok
