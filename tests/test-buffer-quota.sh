#!/usr/bin/env bash
# Quotas: a tenant over its quota evicts its own entries first, never
# another tenant's; pinned entries (bases of existing disks) survive the
# pressure.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

T=$tmpdir
mkdir -p "$T/images" "$T/disks"
for t in acme bob; do head -c 32 /dev/urandom >"$T/$t.key"; chmod 600 "$T/$t.key"; done
mkimg() {   # mkimg NAME MiB KEY
    truncate -s "$2M" "$T/src.raw"
    dd if=/dev/urandom of="$T/src.raw" bs=1M count=1 conv=notrunc status=none
    ppf-image pack --key "$T/$3.key" "$T/src.raw" "$T/images/$1.ppfi" >/dev/null || fail "pack $1"
}
for i in 1 2 3 4 5; do mkimg a$i 20 acme; done
mkimg b1 20 bob
cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
  capacity: 200MiB
stores:
  - {name: local, url: "file://$T/images"}
tenants:
  acme: {keyfile: $T/acme.key, quota: 50MiB}
  bob: {keyfile: $T/bob.key, quota: 100MiB}
deploy:
  dirs: [$T/disks]
EOT
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "apply"
entries() { ppfctl --json buffer | python3 -c 'import json,sys; print(" ".join(sorted(e["image"] for e in json.load(sys.stdin)["entries"])))'; }

ppfctl prefetch b1 --tenant bob --wait >/dev/null || fail "prefetch b1"
# a1 becomes the base of a disk: pinned
ppfctl deploy a1 --tenant acme --dest "$T/disks/a1.qcow2" >/dev/null || fail "deploy a1"
for i in 2 3 4 5; do ppfctl prefetch a$i --tenant acme --wait >/dev/null || fail "prefetch a$i"; done
got=$(entries)
echo "entries: $got"
case " $got " in *" b1 "*) ;; *) fail "bob's entry was evicted for acme's quota" ;; esac
case " $got " in *" a1 "*) ;; *) fail "the pinned base a1 was evicted" ;; esac
case " $got " in *" a5 "*) ;; *) fail "the newest prefetch is missing" ;; esac
n=$(echo "$got" | tr ' ' '\n' | grep -c '^a')
[ "$n" -le 2 ] || fail "acme holds $n entries of 20 MiB in a 50 MiB quota"
ppfctl --json stats | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["evictions"] >= 3, s' ||
    fail "evictions not counted"
qemu-img compare "$T/disks/a1.qcow2" "$T/src.raw" >/dev/null 2>&1 ||
    [ -s "$T/disks/a1.qcow2" ] || fail "the disk over a1 lost its base"

# the full-disk cases are in test-disk-safety.sh
echo ok
