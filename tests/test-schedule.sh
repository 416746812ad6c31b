#!/usr/bin/env bash
# Policy schedules (ppf-policy(5) schedules:) on a real peripheral running
# on a virtual clock (--virtual-clock): before the window the image is not
# fetched; at 08:30 it is, into a full buffer (something else makes room),
# and the log and the operations log name the schedule; inside the window
# the entry is held (ppfctl evict refuses it, naming the schedule; other
# prefetches cannot push it out) and the schedule shows in the prediction
# table; after the window it is a normal entry that can be evicted.  A
# peripheral started inside a window, and a policy applied inside one, hold
# at once; a schedule removed from the policy releases its hold.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

T=$tmpdir
export TZ=UTC                   # "08:30" below is 08:30 UTC
mkdir -p "$T/images" "$T/disks"
for n in s f1 f2 f3 f4 f5; do   # 4 MiB each (charged at their full size)
    truncate -s 4M "$T/$n.raw"
    head -c 512K /dev/urandom | dd of="$T/$n.raw" conv=notrunc status=none
    ppf-image pack "$T/$n.raw" "$T/images/$n.ppfi" >/dev/null || fail "pack $n"
done
policy() {  # policy [EXTRA-SCHEDULE-LINES]: s every weekday 08:30-09:00, room for 4
    cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
  capacity: 16MiB
stores:
  - {name: local, url: "file://$T/images"}
deploy:
  dirs: [$T/disks]
learning:
  algorithm: markov
schedules:
  - when: "weekdays 08:30"
    image: s
    before: "09:00"
${1:-}
EOT
}
at() {      # at "YYYY-MM-DD HH:MM:SS": sets the virtual clock (UTC)
    date -u -d "$1" +%s >"$T/clock.tmp" && mv "$T/clock.tmp" "$T/clock"
}
entries() {  # the images in the buffer, sorted, on one line
    ppfctl --json buffer | grep -o '"image": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/' |
        sort | tr '\n' ' ' | sed 's/ $//'
}
state_of() {  # state_of IMAGE: its state in the buffer, or "absent"
    local s
    s=$(ppfctl --json buffer | tr '{' '\n' | grep "\"image\": *\"$1\"" |
        sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p')
    echo "${s:-absent}"
}
wait_state() {  # wait_state IMAGE STATE...: up to 10 s
    local s
    for _ in $(seq 100); do
        s=$(state_of "$1")
        for want in "${@:2}"; do [ "$s" = "$want" ] && return 0; done
        sleep 0.1
    done
    return 1
}

# Monday 6 January 2025, a minute before the window
at "2025-01-06 08:29:00"
policy
start_peripheral ppf0 --virtual-clock "$T/clock"
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply"
for n in f1 f2 f3 f4; do
    ppfctl prefetch $n --wait >/dev/null || fail "prefetch $n"
done
[ "$(entries)" = "f1 f2 f3 f4" ] || fail "the buffer is not full of f1-f4: $(entries)"
sleep 1.5
[ "$(state_of s)" = absent ] || fail "s was fetched before its window (08:29)"

# 08:30:05: the schedule fires; one of the others makes room
at "2025-01-06 08:30:05"
wait_state s in-flight ready ||
    { cat "$T/ppf0.log" >&2; fail "s was not prefetched at 08:30 (state $(state_of s))"; }
wait_state s ready || fail "the scheduled prefetch of s did not finish"
grep -q 'schedule "weekdays 08:30": prefetching s for default before 09:00' "$T/ppf0.log" ||
    { cat "$T/ppf0.log" >&2; fail "the log does not name the schedule"; }
got=$(entries)
[ "$(echo "$got" | wc -w)" = 4 ] || fail "4 entries of 4 MiB expected in 16 MiB: $got"
case " $got " in *" s "*) ;; *) fail "s is not in the buffer: $got" ;; esac
if ppfctl --json events >"$T/events.json" 2>/dev/null; then
    grep -q 'schedule \\"weekdays 08:30\\": prefetching s' "$T/events.json" ||
        fail "the operations log has no schedule record: $(cat "$T/events.json")"
fi

# held: ppfctl evict refuses it, naming the schedule
ppfctl evict s 2>"$T/err" && fail "ppfctl evict removed a scheduled image inside its window"
grep -q "schedule weekdays 08:30" "$T/err" ||
    fail "the refusal does not name the schedule: $(cat "$T/err")"
# ... and prefetches of the others cannot push it out
for n in f1 f2 f3 f4 f5; do
    ppfctl prefetch $n --wait >/dev/null 2>&1
done
[ "$(state_of s)" = ready ] || fail "s was evicted inside its window: $(entries)"

# the predictor took the schedule as a hint: a row in the table
ppfctl table >"$T/table.txt" || fail "ppfctl table"
grep -q '^schedule weekdays 08:30' "$T/table.txt" || fail "no schedule row: $(cat "$T/table.txt")"
# a deploy of it inside the window is a hit
out=$(ppfctl --json deploy s --mode copy --dest "$T/disks/s.raw") || fail "deploy s"
echo "$out" | grep -q '"outcome": *"hit"' || fail "deploy of the scheduled s not a hit: $out"
cmp "$T/disks/s.raw" "$T/s.raw" || fail "the scheduled s differs from its source"
ppfctl --json stats | tr ',{}' '\n\n\n' | grep -q '"predicted_hits": *[1-9]' ||
    fail "the deploy of the scheduled s did not count as a hit of the hint"

# 09:00:01: the window is over; s is a normal entry again
at "2025-01-06 09:00:01"
for _ in $(seq 50); do
    ppfctl evict s >/dev/null 2>"$T/err" && break
    sleep 0.1
done
[ "$(state_of s)" = absent ] || fail "s could not be evicted after its window: $(cat "$T/err")"
sleep 1.5
[ "$(state_of s)" = absent ] || fail "s came back outside its window"

# a peripheral started inside Tuesday's window holds at once
kill_pidfile "$T/ppf0.pid"
at "2025-01-07 08:40:00"
start_peripheral ppf0 --virtual-clock "$T/clock"
wait_state s in-flight ready || fail "a restart inside the window did not bring s back"
wait_state s ready || fail "s did not finish after the restart"
ppfctl evict s 2>"$T/err" && fail "s not held after a restart inside the window"
grep -q "schedule weekdays 08:30" "$T/err" || fail "s's refusal after the restart: $(cat "$T/err")"

# a policy applied inside a window holds at once; a removed schedule lets go
ppfctl evict f5 >/dev/null 2>&1
policy '  - {when: "tue 08:00", image: f5, before: "10:00"}'
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply (2 schedules)"
wait_state f5 in-flight ready || fail "a policy applied inside a window did not hold f5"
wait_state f5 ready || fail "f5 did not finish"
ppfctl evict f5 2>"$T/err" && fail "f5 not held"
grep -q "schedule tue 08:00" "$T/err" || fail "f5's refusal: $(cat "$T/err")"
sed -i '/weekdays 08:30/,/before: "09:00"/d' "$T/policy.yaml"
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply (without s)"
wait_state s ready || fail "s did not finish"
ppfctl evict s >/dev/null 2>"$T/err" ||
    fail "a schedule removed from the policy still holds s: $(cat "$T/err")"
ppfctl evict f5 2>/dev/null && fail "f5 lost its hold when another schedule was removed"
echo ok
