#!/usr/bin/env bash
# Explainable decisions (issue 9): a scripted scenario on a real
# peripheral, and what ppfctl explain and ppfctl events say about each
# image is checked against what really happened: an unknown image, a
# pinned one, a predicted one (its model, table row and prefetch reason),
# one evicted by an administrator (paused), one evicted for room (lowest
# value per byte), a scheduled one (its next window), a stale one.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

T=$tmpdir
mkdir -p "$T/images" "$T/disks"
for n in a b c pinned sched f1 f2 f3 f4; do
    truncate -s 8M "$T/$n.raw"
    head -c 1M /dev/urandom | dd of="$T/$n.raw" conv=notrunc status=none
    ppf-image pack "$T/$n.raw" "$T/images/$n.ppfi" >/dev/null || fail "pack $n"
done
echo "$(date -d '2026-11-23 07:00' +%s)" >"$T/clock"     # a Monday
cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
  capacity: 1GiB
  reserve: 0B
stores:
  - {name: local, url: "file://$T/images"}
deploy:
  dirs: [$T/disks]
learning:
  algorithm: ensemble
schedules:
  - {when: "weekdays 08:30", image: sched, before: "09:00"}
EOT
TZ=UTC start_peripheral ppf0 --virtual-clock "$T/clock"
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "apply"
explain() { ppfctl --json explain "$@"; }
field() {   # field KEY < JSON
    python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(v if not isinstance(v, list) else "\n".join(map(str, v)))' "$1"
}
state_of() { ppfctl --json buffer | python3 -c 'import json,sys; print(" ".join(e["state"] for e in json.load(sys.stdin)["entries"] if e["image"] == sys.argv[1]) or "absent")' "$1"; }
wait_state() { for _ in $(seq 100); do [ "$(state_of "$1")" = "$2" ] && return 0; sleep 0.1; done; return 1; }

# 1. never seen
explain c >"$T/c.json" || fail "explain c"
grep -q "no model knows it" <(field verdict <"$T/c.json") || fail "unknown image: $(cat "$T/c.json")"
[ "$(field state <"$T/c.json")" = absent ] || fail "c state"

# 2. pinned
ppfctl pin pinned >/dev/null || fail "pin"
wait_state pinned ready || fail "pinned not ready"
explain pinned >"$T/p.json"
field verdict <"$T/p.json" | grep -q "in the buffer, ready, held by pin until removed" ||
    fail "pinned verdict: $(field verdict <"$T/p.json")"
field holds <"$T/p.json" | grep -q "^pin until removed" || fail "pinned holds"

# 3. predicted: a is followed by b
for _ in 1 2 3 4 5; do ppfctl event deploy a >/dev/null; ppfctl event deploy b >/dev/null; done
ppfctl deploy a --mode copy --dest "$T/disks/a.raw" >/dev/null || fail "deploy a"
wait_state b ready || fail "b was not predicted"
explain b >"$T/b.json"
field last_prefetch <"$T/b.json" | grep -q "prefetching b for default .*: p=.*predicted after default/a" ||
    fail "b's last prefetch: $(field last_prefetch <"$T/b.json")"
field table <"$T/b.json" | grep -q "^after default/a: score" || fail "b's table rows: $(field table <"$T/b.json")"
python3 - "$T/b.json" <<'PY' || fail "b's models"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["known"] and d["probability"] > 0, d
m = {x["model"]: x for x in d["models"]}
assert "markov" in m and m["markov"].get("probability", 0) > 0, m
PY

# 4. evicted by an administrator: paused, and the reason
ppfctl evict b >/dev/null || fail "evict b"
explain b >"$T/b2.json"
field last_eviction <"$T/b2.json" | grep -q "an administrator's EVICT" || fail "b's last eviction: $(cat "$T/b2.json")"
field verdict <"$T/b2.json" | grep -q "paused" || fail "b's verdict after evict: $(field verdict <"$T/b2.json")"

# 5. evicted for room: a small capacity, f1..f4 prefetched in turn
sed -i 's|capacity: 1GiB|capacity: 40MiB|' "$T/policy.yaml"
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "apply small"
for i in 1 2 3 4; do ppfctl prefetch f$i --wait >/dev/null || fail "prefetch f$i"; done
ppfctl --json events >"$T/events.json" || fail "events"
grep -q '"kind": *"evict".*to make room: lowest value per byte' "$T/events.json" ||
    fail "no eviction for room in the events: $(grep evict "$T/events.json")"
victim=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["kind"] == "evict" and "to make room" in r["text"]: print(r["image"])' "$T/events.json" | tail -1)
explain "$victim" | field last_eviction | grep -q "to make room: lowest value per byte" ||
    fail "explain $victim does not give its eviction's reason"

# 6. scheduled: the next window, then held in it
explain sched | field schedules | grep -q "weekdays 08:30 before 09:00: next window opens 2026-11-23 08:30" ||
    fail "sched's schedule: $(explain sched)"
echo "$(date -d '2026-11-23 08:30:05' +%s)" >"$T/clock"
wait_state sched ready || fail "the schedule did not bring sched in"
explain sched | field verdict | grep -q "held by schedule weekdays 08:30" || fail "sched verdict: $(explain sched | field verdict)"
ppfctl events | grep -q "schedule" || fail "events do not name the schedule"

# 7. text output and bad input
ppfctl explain pinned | grep -q "^pinned for default: in the buffer, ready" || fail "text output"
ppfctl explain 'no/such' 2>"$T/err"; [ $? = 2 ] || fail "a bad name is not a usage error"
ppfctl explain 2>/dev/null; [ $? = 2 ] || fail "explain without an image is not a usage error"
echo ok
