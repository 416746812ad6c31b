#!/usr/bin/env bash
# Pins (issue 9): a pinned image (ppfctl pin, or pins: in the policy) is
# prefetched at once, never evicted under pressure, charged to its
# tenant's quota, refused by evict with the reason, kept across restarts
# of the peripheral; unpin lets it go; a pin with an end expires.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

T=$tmpdir
mkdir -p "$T/images" "$T/disks"
head -c 32 /dev/urandom >"$T/acme.key"; chmod 600 "$T/acme.key"
mkimg() {   # mkimg NAME MiB
    truncate -s "$2M" "$T/src.raw"
    dd if=/dev/urandom of="$T/src.raw" bs=1M count=1 conv=notrunc status=none
    ppf-image pack --key "$T/acme.key" "$T/src.raw" "$T/images/$1.ppfi" >/dev/null || fail "pack $1"
}
for i in 1 2 3 4 5; do mkimg a$i 20; done
write_policy() {
    cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
  capacity: 200MiB
stores:
  - {name: local, url: "file://$T/images"}
tenants:
  acme: {keyfile: $T/acme.key, quota: 60MiB}
deploy:
  dirs: [$T/disks]
$1
EOT
}
write_policy ""
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "apply"
entries() { ppfctl --json buffer | python3 -c 'import json,sys; print(" ".join(sorted(e["image"] for e in json.load(sys.stdin)["entries"] if e["state"] == "ready")))'; }
wait_ready() {  # wait_ready IMAGE
    for _ in $(seq 100); do
        case " $(entries) " in *" $1 "*) return 0 ;; esac
        sleep 0.1
    done
    fail "$1 never became ready"
}

# pin: prefetched at once
out=$(ppfctl pin a1 --tenant acme) || fail "pin a1"
echo "$out"
wait_ready a1
# pressure: a 60 MiB quota, 20 MiB images: a1 stays whatever comes
for i in 2 3 4 5; do ppfctl prefetch a$i --tenant acme --wait >/dev/null || fail "prefetch a$i"; done
got=$(entries); echo "entries: $got"
case " $got " in *" a1 "*) ;; *) fail "the pinned a1 was evicted under pressure" ;; esac
n=$(echo "$got" | wc -w)
[ "$n" -le 3 ] || fail "the pin is not charged to the quota: $n entries of 20 MiB in 60 MiB"

# evict refuses, naming the pin
ppfctl evict a1 --tenant acme 2>"$T/err" && fail "evict of a pinned image succeeded"
grep -q "held by pin" "$T/err" || fail "evict's refusal does not name the pin: $(cat "$T/err")"

# restart: the pin is persisted
kill_pidfile "$T/ppf0.pid"
start_peripheral ppf0
grep -q "^pin a1 acme 0" "$T/buffer/admin-pins" || fail "pin not persisted: $(cat "$T/buffer/admin-pins")"
ppfctl evict a1 --tenant acme 2>/dev/null && fail "the pin was lost across a restart"

# JSON and bad input
ppfctl --json pin a2 --tenant acme | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["pinned"] and d["until"] == "never", d' ||
    fail "pin --json"
ppfctl pin a3 --tenant acme --until yesterday 2>"$T/err"; [ $? = 2 ] || fail "a bad --until is not a usage error"
grep -q "is not a time" "$T/err" || fail "bad --until message: $(cat "$T/err")"
ppfctl pin a3 --tenant acme --until 2001-01-01 2>"$T/err" && fail "a pin ending in the past was accepted"
grep -q "in the past" "$T/err" || fail "past --until message: $(cat "$T/err")"
ppfctl pin a3 --tenant nobody 2>"$T/err" && fail "a pin for an unknown tenant was accepted"
grep -q "not in the policy" "$T/err" || fail "unknown tenant message: $(cat "$T/err")"
ppfctl unpin a4 --tenant acme 2>"$T/err" && fail "unpin of an unpinned image succeeded"
grep -q "not pinned" "$T/err" || fail "unpin message: $(cat "$T/err")"

# unpin: evictable again
ppfctl unpin a1 --tenant acme >/dev/null || fail "unpin a1"
ppfctl unpin a2 --tenant acme >/dev/null || fail "unpin a2"
ppfctl evict a1 --tenant acme >/dev/null || fail "evict after unpin"
grep -q "a1" "$T/buffer/admin-pins" && fail "unpinned a1 is still in the pins file"

# a pin that ends: expires on its own (the end is checked every tick)
until=$(date -d '+3 seconds' +%Y-%m-%dT%H:%M:%S)
ppfctl pin a5 --tenant acme --until "$until" >/dev/null || fail "pin with an end"
sleep 5
ppfctl evict a5 --tenant acme >/dev/null 2>"$T/err" || fail "the pin did not expire: $(cat "$T/err")"

# policy pins: prefetched when the policy is applied, and unpin says where they live
write_policy "pins:
  - {image: a4, tenant: acme}"
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "apply with pins"
wait_ready a4
ppfctl evict a4 --tenant acme 2>"$T/err" && fail "evict of a policy pin succeeded"
grep -q "policy" "$T/err" || fail "policy pin refusal: $(cat "$T/err")"
ppfctl unpin a4 --tenant acme 2>"$T/err" && fail "unpin of a policy pin succeeded"
grep -q "the policy pins it" "$T/err" || fail "unpin of a policy pin: $(cat "$T/err")"
echo ok
