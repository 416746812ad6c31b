#!/usr/bin/env bash
# The prefetch buffer and DEPLOY against a real peripheral and real files:
# miss, hit and in-flight; overlays that qemu-img accepts and copies that
# are bit-exact; an existing disk is never overwritten; tenant isolation;
# quotas and pins; 32 concurrent deploys of 4 images fetch each once;
# kill -9 mid-prefetch and a restart keep a consistent index.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
requires qemu-img --version

T=$tmpdir
mkdir -p "$T/images" "$T/disks"
head -c 32 /dev/urandom >"$T/acme.key"; chmod 600 "$T/acme.key"
head -c 32 /dev/urandom >"$T/bob.key"; chmod 600 "$T/bob.key"
mkimg() {   # mkimg NAME SIZE_MiB [--key F]
    local name=$1 mib=$2; shift 2
    truncate -s "${mib}M" "$T/$name.raw"
    dd if=/dev/urandom of="$T/$name.raw" bs=1M count=2 seek=1 conv=notrunc status=none
    ppf-image pack "$@" "$T/$name.raw" "$T/images/$name.ppfi" >/dev/null || fail "pack $name"
}
mkimg pub 32
mkimg big 256
mkimg secret 16 --key "$T/acme.key"
for i in 1 2 3 4; do mkimg par$i 24; done
cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
  capacity: 1GiB
stores:
  - name: local
    url: file://$T/images
tenants:
  acme:
    keyfile: $T/acme.key
    quota: 100MiB
  bob:
    keyfile: $T/bob.key
deploy:
  dirs: [$T/disks]
prefetch:
  bandwidth: 64MiB/s
EOT
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply"

# miss, then hit; overlays are valid qcow2 over the prepared base
out=$(ppfctl --json deploy pub --dest "$T/disks/a.qcow2") || fail "deploy pub (miss)"
echo "$out" | grep -q '"outcome": *"miss"' || fail "first deploy not a miss: $out"
out=$(ppfctl --json deploy pub --dest "$T/disks/b.qcow2") || fail "deploy pub (hit)"
echo "$out" | grep -q '"outcome": *"hit"' || fail "second deploy not a hit: $out"
qemu-img check "$T/disks/b.qcow2" >/dev/null || fail "qemu-img check of the overlay"
qemu-img compare "$T/disks/b.qcow2" "$T/pub.raw" >/dev/null || fail "overlay content differs"

# copy mode: an independent bit-exact copy
ppfctl deploy pub --mode copy --dest "$T/disks/c.raw" >/dev/null || fail "deploy copy"
cmp "$T/disks/c.raw" "$T/pub.raw" || fail "copy differs"

# never overwrite an existing disk; ephemeral may
echo keep >"$T/disks/mine.img"
ppfctl deploy pub --dest "$T/disks/mine.img" 2>"$T/err" && fail "overwrote an existing disk"
grep -q "never overwrites" "$T/err" || fail "no clear message for an existing disk"
[ "$(cat "$T/disks/mine.img")" = keep ] || fail "existing disk changed"
ppfctl deploy pub --ephemeral --dest "$T/disks/mine.img" >/dev/null || fail "ephemeral deploy"
# targets outside the deploy dirs, names that are paths
ppfctl deploy pub --dest "$T/elsewhere.qcow2" 2>/dev/null && fail "deployed outside deploy.dirs"
ppfctl deploy ../pub --dest "$T/disks/x.qcow2" 2>/dev/null && fail "accepted a path as an image name"
ln -s /etc "$T/disks/link"
ppfctl deploy pub --dest "$T/disks/link/passwd" 2>/dev/null && fail "followed a symlink"
[ -e "$T/elsewhere.qcow2" ] && fail "file written outside deploy.dirs"

# tenants: acme's private image is never served to bob or default
ppfctl deploy secret --tenant acme --dest "$T/disks/s1.qcow2" >/dev/null || fail "acme secret"
ppfctl deploy secret --tenant bob --dest "$T/disks/s2.qcow2" 2>"$T/err" && fail "bob got acme's image"
ppfctl deploy secret --dest "$T/disks/s3.qcow2" 2>"$T/err" && fail "default got acme's image"
grep -q "encrypted" "$T/err" || fail "no clear message for a keyless tenant"

# in flight: a deploy while the (bandwidth-limited) prefetch runs waits for it
ppfctl prefetch big >/dev/null || fail "prefetch big"
out=$(ppfctl --json deploy big --dest "$T/disks/big.qcow2") || fail "deploy big"
echo "$out" | grep -q '"outcome": *"in-flight"' || fail "not served from the prefetch in flight: $out"

# 32 concurrent deploys of 4 images: each fetched once
pids=()
for i in $(seq 32); do
    ppfctl deploy par$(( (i % 4) + 1 )) --dest "$T/disks/par-$i.qcow2" >/dev/null 2>"$T/par-$i.err" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent deploy failed: $(cat "$T"/par-*.err)"; done
n=$(grep -c "fetching par" "$tmpdir/ppf0.log")
[ "$n" = 4 ] || fail "4 images fetched $n times"

# pins: a domain's base survives evict; release unpins
uuid=11111111-2222-3333-4444-555555555555
ppfctl deploy pub --ephemeral --domain $uuid --dest "$T/disks/dom.qcow2" >/dev/null || fail "deploy with domain"
ppfctl evict pub 2>/dev/null && fail "evicted a pinned base"
ppfctl release $uuid >/dev/null || fail "release"
ppfctl buffer --json | python3 -c '
import json,sys; d=json.load(sys.stdin); names=[e["image"] for e in d["entries"]]
assert "pub" in names and "big" in names, names' || fail "buffer list"
# a domain started again on its existing overlay (or libvirtd reconnecting
# to it) pins its base again, once however often it is told
uuid2=22222222-3333-4444-5555-666666666666
pins_of() { ppfctl buffer --json | python3 -c '
import json,sys; print([e["pins"] for e in json.load(sys.stdin)["entries"] if e["image"]=="'"$1"'"][0])'; }
ppfctl deploy pub --domain $uuid2 --dest "$T/disks/keep.qcow2" >/dev/null || fail "deploy keep"
base=$(pins_of pub)
ppfctl release $uuid2 >/dev/null || fail "release keep"
[ "$(pins_of pub)" = $((base - 1)) ] || fail "release did not unpin: $(pins_of pub), was $base"
for _ in 1 2; do
    ppfctl deploy pub --domain $uuid2 --dest "$T/disks/keep.qcow2" 2>/dev/null && fail "overwrote keep"
done
[ "$(pins_of pub)" = "$base" ] || fail "not re-pinned once on the existing disk: $(pins_of pub), want $base"
ppfctl release $uuid2 >/dev/null || fail "release keep again"

# stats
ppfctl --json stats | python3 -c '
import json,sys; s=json.load(sys.stdin)
assert s["deploys"] >= 36 and s["hits"] >= 1 and s["misses"] >= 1, s' || fail "stats"
ppfctl stats --prometheus | grep -q '^ppf_deploys_total ' || fail "prometheus output"

# a deploy preempts a prefetch when every worker is busy
sed -i 's|^prefetch:|prefetch:\n  concurrent: 1|; s|bandwidth: 64MiB/s|bandwidth: 16MiB/s|; s|capacity: 1GiB|capacity: 4GiB|' "$T/policy.yaml"
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply (1 worker)"
mkimg crawl 512
mkimg urgent 16
ppfctl prefetch crawl >/dev/null || fail "prefetch crawl"
sleep 0.3
t0=$(date +%s%N)
ppfctl deploy urgent --dest "$T/disks/urgent.qcow2" >/dev/null || fail "deploy urgent"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "urgent deploy behind a 32 s prefetch: $ms ms"
[ "$ms" -lt 8000 ] || fail "the deploy waited for the prefetch ($ms ms)"
grep -q "pausing the prefetch of crawl" "$tmpdir/ppf0.log" || fail "prefetch not preempted"

# kill -9 mid-deploy: the target is complete and valid, or absent
mkimg late 256
ppfctl deploy late --dest "$T/disks/late.qcow2" >/dev/null 2>&1 &
sleep 0.2
kill -9 $periph_pid; wait $periph_pid 2>/dev/null
if [ -e "$T/disks/late.qcow2" ]; then
    qemu-img check "$T/disks/late.qcow2" >/dev/null || fail "a half-written disk after kill -9"
fi
touch "$T/disks/.planted.qcow2.ppf-tmp-deadbeef"   # as a crash mid-write leaves
start_peripheral ppf0
ls -A "$T/disks" | grep -q "ppf-tmp" && fail "temporary files left in the deploy dir: $(ls -A "$T/disks")"

# kill -9 mid-prefetch, restart: no partial entry, finished ones kept
mkimg slow 512
ppfctl prefetch slow >/dev/null || fail "prefetch slow"
sleep 0.5
kill -9 $periph_pid; wait $periph_pid 2>/dev/null
start_peripheral ppf0
ppfctl --json buffer >"$T/after.json" || fail "buffer after restart"
python3 - "$T/after.json" <<'PY' || fail "index after kill -9"
import json,sys
d=json.load(open(sys.argv[1])); names={e["image"]:e for e in d["entries"]}
assert "slow" not in names, "a partial entry survived"
for n in ("pub","big","par1","secret"):
    assert n in names and names[n]["state"]=="ready", (n, names.keys())
PY
ls "$T/buffer/entries/@public" | grep -q tmp && fail "temporary files left in the buffer"
out=$(ppfctl --json deploy par1 --dest "$T/disks/after.qcow2") || fail "deploy after restart"
echo "$out" | grep -q '"outcome": *"hit"' || fail "kept entry not a hit after restart"
qemu-img compare "$T/disks/b.qcow2" "$T/pub.raw" >/dev/null || fail "an overlay lost its base"
echo ok
