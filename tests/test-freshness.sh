#!/usr/bin/env bash
# Freshness (issue 9): entries are versions (content digests).  Publishing
# a new version of an image makes the next deploy get the new content,
# while a disk on the old base keeps working (and its domain restarting);
# the old version goes once no disk uses it.  Deleting an image from the
# store purges its unpinned entries; a pinned one stays and is served.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

requires qemu-img --version
T=$tmpdir
mkdir -p "$T/images" "$T/disks"
mkraw() {   # mkraw FILE: 16 MiB, 2 MiB random
    truncate -s 16M "$1"
    head -c 2M /dev/urandom | dd of="$1" conv=notrunc status=none
}
publish() { # publish NAME RAW: atomically, as a store would
    ppf-image pack "$2" "$T/images/.$1.tmp" >/dev/null || fail "pack $1"
    mv -f "$T/images/.$1.tmp" "$T/images/$1.ppfi"
}
cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
  capacity: 1GiB
  reserve: 0B
  revalidate: 0s
stores:
  - {name: local, url: "file://$T/images"}
deploy:
  dirs: [$T/disks]
EOT
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "apply"
state_of() { ppfctl --json buffer | python3 -c 'import json,sys; print(" ".join(sorted(e["state"] for e in json.load(sys.stdin)["entries"] if e["image"] == sys.argv[1])))' "$1"; }
D1=11111111-2222-3333-4444-555555555555

# version 1, deployed for a domain (its disk is an overlay on the v1 base)
mkraw "$T/v1.raw"; publish web "$T/v1.raw"
ppfctl prefetch web --wait >/dev/null || fail "prefetch v1"
ppfctl deploy web --domain $D1 --dest "$T/disks/d1.qcow2" >/dev/null || fail "deploy v1"
qemu-img compare -f qcow2 -F raw "$T/disks/d1.qcow2" "$T/v1.raw" >/dev/null || fail "d1 is not v1"

# version 2 published: the next deploy gets v2, d1 keeps v1
mkraw "$T/v2.raw"; publish web "$T/v2.raw"
ppfctl --json deploy web --dest "$T/disks/d2.qcow2" >"$T/out" || fail "deploy after v2"
qemu-img compare -f qcow2 -F raw "$T/disks/d2.qcow2" "$T/v2.raw" >/dev/null ||
    fail "the deploy after a new version got the old content"
grep -Eq '"outcome": *"(miss|in-flight)"' "$T/out" || fail "the stale entry was served: $(cat "$T/out")"
qemu-img compare -f qcow2 -F raw "$T/disks/d1.qcow2" "$T/v1.raw" >/dev/null ||
    fail "the disk on the old base lost its content"
[ "$(state_of web)" = "ready stale" ] || fail "expected the v2 entry ready and v1 kept stale, got: $(state_of web)"
grep -q "new version of web" "$T/ppf0.log" || fail "the new version is not in the log"

# the domain restarts: its disk exists, its base is pinned again, and kept
ppfctl deploy web --domain $D1 --dest "$T/disks/d1.qcow2" >/dev/null 2>&1
qemu-img compare -f qcow2 -F raw "$T/disks/d1.qcow2" "$T/v1.raw" >/dev/null ||
    fail "restarting the domain changed its disk"
ppfctl release $D1 >/dev/null
sleep 6     # a sweep: the disk still uses v1, so v1 stays
[ "$(state_of web)" = "ready stale" ] || fail "v1 went while d1 still uses it: $(state_of web)"
# the disk goes: so does v1, at the next sweep
rm -f "$T/disks/d1.qcow2"
for _ in $(seq 80); do [ "$(state_of web)" = ready ] && break; sleep 0.2; done
[ "$(state_of web)" = ready ] || fail "the unused stale entry was not removed: $(state_of web)"

# a third version, and no deploy: the sweep (every 5 s here) finds it and prepares it
mkraw "$T/v3.raw"; publish web "$T/v3.raw"
v3=$(ppf-image info "$T/images/web.ppfi" | sed -n 's/^sha256: *//p')
v3_state() { ppfctl --json buffer | python3 -c 'import json,sys; print(" ".join(e["state"] for e in json.load(sys.stdin)["entries"] if e.get("digest") == sys.argv[1]) or "absent")' "$v3"; }
for _ in $(seq 100); do [ "$(v3_state)" = ready ] && break; sleep 0.2; done
[ "$(v3_state)" = ready ] || fail "the new version was not prepared ahead: $(ppfctl buffer)"
ppfctl --json deploy web --dest "$T/disks/d3.qcow2" | grep -q '"outcome": *"hit"' ||
    fail "the new version prepared ahead was not a hit"
qemu-img compare -f qcow2 -F raw "$T/disks/d3.qcow2" "$T/v3.raw" >/dev/null || fail "d3 is not v3"

# deleting images: the unpinned entry is purged, the pinned one stays and serves
mkraw "$T/g.raw"; publish gone1 "$T/g.raw"; publish gone2 "$T/g.raw"
ppfctl prefetch gone1 --wait >/dev/null || fail "prefetch gone1"
ppfctl pin gone2 >/dev/null || fail "pin gone2"
for _ in $(seq 50); do [ "$(state_of gone2)" = ready ] && break; sleep 0.1; done
rm -f "$T/images/gone1.ppfi" "$T/images/gone2.ppfi"
ppfctl deploy gone1 --dest "$T/disks/g1.qcow2" 2>"$T/err" && fail "a deleted image was deployed"
grep -q "none of the policy's stores" "$T/err" || fail "deleted image: $(cat "$T/err")"
[ -z "$(state_of gone1)" ] || fail "the deleted, unpinned image is still in the buffer"
ppfctl deploy gone2 --dest "$T/disks/g2.qcow2" >/dev/null 2>"$T/err" || fail "the pinned image was not served: $(cat "$T/err")"
qemu-img compare -f qcow2 -F raw "$T/disks/g2.qcow2" "$T/g.raw" >/dev/null || fail "g2 content"
grep -q "gone1 is gone from every store: purged" "$T/ppf0.log" || fail "the purge is not in the log"
[ -z "$(find "$T/buffer" -name '*.tmp')" ] || fail "temporary files left"
echo ok
