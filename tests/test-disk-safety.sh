#!/usr/bin/env bash
# Disk safety (issue 9): the buffer never fills its file system.  On a
# small loop-mounted ext4 (a tmpfs where loop devices are missing):
#  - a fetch that would leave less than buffer.reserve free is refused
#    before anything is written, with a reason naming the reserve;
#  - entries are evicted to make room on the file system when they can be;
#  - something else filling the file system during a prefetch stops the
#    prefetch (or its ENOSPC is caught): reported, nothing half-written,
#    the buffer stays consistent and serves deploys afterwards.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

[ "$(id -u)" = 0 ] || skip "needs root to mount a small file system"
T=$tmpdir
mkdir -p "$T/images" "$T/disks" "$T/small"
if command -v mkfs.ext4 >/dev/null && truncate -s 64M "$T/fs.img" &&
   mkfs.ext4 -q -F "$T/fs.img" && mount -o loop "$T/fs.img" "$T/small" 2>/dev/null; then
    echo "a 64 MiB loop-mounted ext4"
elif mount -t tmpfs -o size=56m tmpfs "$T/small" 2>/dev/null; then
    echo "no loop device: a 56 MiB tmpfs"
else
    skip "cannot mount a small file system here"
fi
cleanup_fn "umount '$T/small'"
avail_mib() { df -Pm "$T/small" | awk 'NR==2 {print $4}'; }
echo "free: $(avail_mib) MiB"

mkimg() {   # mkimg NAME DATA-MiB: 64 MiB logical, DATA MiB of random data
    truncate -s 64M "$T/src.raw"
    head -c "$2M" /dev/urandom | dd of="$T/src.raw" conv=notrunc status=none
    ppf-image pack "$T/src.raw" "$T/images/$1.ppfi" >/dev/null || fail "pack $1"
    rm -f "$T/src.raw"
}
mkimg big 60
mkimg m1 16
mkimg m2 16
mkimg m3 16
mkimg slow 24
write_policy() {    # write_policy BANDWIDTH
    cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/small/buffer
  capacity: 1GiB
  reserve: 8MiB
prefetch:
  bandwidth: $1
stores:
  - {name: local, url: "file://$T/images"}
deploy:
  dirs: [$T/disks]
EOT
}
write_policy 0
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "apply"
partials() { find "$T/small/buffer/entries" -name '*.tmp' -o -name '*.raw' -newer "$T/policy.yaml" | while read -r f; do [ -e "${f%.raw}.meta" ] || echo "$f"; done; }

# 1. does not fit with the reserve: refused before writing
before=$(avail_mib)
ppfctl prefetch big --wait 2>"$T/err" && fail "a prefetch that cannot fit succeeded"
echo "refusal: $(cat "$T/err")"
grep -q "buffer.reserve" "$T/err" || fail "the refusal does not name buffer.reserve"
[ "$(avail_mib)" -ge $((before - 1)) ] || fail "something was written for a refused prefetch"
grep -q "no space for big" "$T/ppf0.log" || fail "the refusal is not in the peripheral's log"

# 2. room made by evicting: m1, m2 fit; m3 needs m1's space
for i in 1 2 3; do ppfctl prefetch m$i --wait >/dev/null 2>"$T/err" || fail "prefetch m$i: $(cat "$T/err")"; done
echo "free after m1..m3: $(avail_mib) MiB"
[ "$(avail_mib)" -ge 8 ] || fail "the reserve was crossed: $(avail_mib) MiB free"
got=$(ppfctl --json buffer | python3 -c 'import json,sys; print(" ".join(sorted(e["image"] for e in json.load(sys.stdin)["entries"])))')
echo "entries: $got"
case " $got " in *" m1 "*) fail "nothing was evicted for room on the file system" ;; esac
grep -q "evicted m1.*on the file system" "$T/ppf0.log" || fail "the eviction's reason is not logged"

# 3. something else fills the file system during a (slow) prefetch
ppfctl evict m2 >/dev/null; ppfctl evict m3 >/dev/null
write_policy 4MiB/s
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "apply with a bandwidth limit"
ppfctl prefetch slow >/dev/null || fail "start the slow prefetch"
sleep 0.3
# leaves the prefetch too little room for the rest of its data
dd if=/dev/zero of="$T/small/filler" bs=1M count=$(( $(avail_mib) - 6 )) status=none 2>/dev/null
echo "free with the filler: $(avail_mib) MiB"
for _ in $(seq 100); do
    st=$(ppfctl --json buffer | python3 -c 'import json,sys; print(" ".join(e["state"] for e in json.load(sys.stdin)["entries"] if e["image"] == "slow"))')
    [ -z "$st" ] && break
    [ "$st" = ready ] && { grep slow "$T/ppf0.log"; df -m "$T/small"; ls -ls "$T/small/buffer/entries/@public"; fail "the prefetch finished on a full file system"; }
    sleep 0.2
done
[ -z "$st" ] || fail "the prefetch neither finished nor stopped"
grep -Eq "preparing slow .*failed: .*(buffer.reserve|disk full|no space)" "$T/ppf0.log" ||
    fail "the stopped prefetch is not reported: $(grep slow "$T/ppf0.log" | tail -3)"
[ -z "$(partials)" ] || fail "half-written files left: $(partials)"
ls "$T/small/buffer/entries/@public" | grep -q slow && fail "slow's files were left behind"

# the buffer is consistent and serves once there is room again
rm -f "$T/small/filler"
ppfctl deploy slow --dest "$T/disks/slow.qcow2" >/dev/null 2>"$T/err" || fail "deploy after the full disk: $(cat "$T/err")"
qemu-img check "$T/disks/slow.qcow2" >/dev/null 2>&1 || [ ! -x "$(command -v qemu-img)" ] || fail "the deployed disk is broken"
echo ok
