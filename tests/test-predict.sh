#!/usr/bin/env bash
# The live predictor (schemas/device-protocol.md §5.7) on a real peripheral:
# history taught through EVENT makes the next image ready before it is
# asked for (a predicted prefetch, then a hit); a DEFINED event prefetches
# at once; the Image Prediction Table shows the pattern; what was learned
# survives a restart in the NVM store, and a corrupt store is set aside
# and reported, never a crash; bad EVENTs are refused with a reason;
# learning.algorithm none predicts nothing.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

T=$tmpdir
mkdir -p "$T/images" "$T/disks"
for n in a b c d; do
    truncate -s 8M "$T/$n.raw"
    head -c 1M /dev/urandom | dd of="$T/$n.raw" conv=notrunc status=none
    ppf-image pack "$T/$n.raw" "$T/images/$n.ppfi" >/dev/null || fail "pack $n"
done
policy() {  # policy ALGORITHM
    cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
  capacity: 1GiB
stores:
  - {name: local, url: "file://$T/images"}
deploy:
  dirs: [$T/disks]
learning:
  algorithm: $1
prefetch:
  bandwidth: 64MiB/s
EOT
}
stat() {    # stat NAME: a counter from ppfctl --json stats
    ppfctl --json stats | tr ',{}' '\n\n\n' | sed -n "s/^ *\"$1\": *\\([0-9]*\\).*/\\1/p" | head -1
}
state_of() {  # state_of IMAGE: its state in the buffer, or "absent"
    local s
    s=$(ppfctl --json buffer | tr '{' '\n' | grep "\"image\": *\"$1\"" |
        sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p')
    echo "${s:-absent}"
}
wait_state() {  # wait_state IMAGE STATE...: up to 10 s
    for _ in $(seq 100); do
        local s; s=$(state_of "$1")
        for want in "${@:2}"; do [ "$s" = "$want" ] && return 0; done
        sleep 0.1
    done
    return 1
}

policy markov
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply"

# history: a is always followed by b (deploys the device did not serve)
for _ in 1 2 3 4 5; do
    ppfctl event deploy a >/dev/null || fail "event deploy a"
    ppfctl event deploy b >/dev/null || fail "event deploy b"
done
[ "$(stat events)" = 10 ] || fail "events counter: $(stat events), want 10"
[ "$(stat learned)" = 10 ] || fail "learned counter: $(stat learned), want 10"
out=$(ppfctl --json event deploy c) || fail "event --json"
echo "$out" | grep -q '"learned": *true' || fail "event --json: $out"

# a (deploy or EVENT of) a makes b ready before anyone asks for it
ppfctl --json deploy a --mode copy --dest "$T/disks/a.raw" >/dev/null || fail "deploy a"
wait_state b ready in-flight ||
    { cat "$T/ppf0.log" >&2; fail "b was not prefetched after a (state $(state_of b))"; }
[ "$(stat predicted_prefetches)" -ge 1 ] || fail "predicted_prefetches not counted"
wait_state b ready || fail "the predicted prefetch of b did not finish"
out=$(ppfctl --json deploy b --mode copy --dest "$T/disks/b.raw") || fail "deploy b"
echo "$out" | grep -q '"outcome": *"hit"' || fail "deploy of the predicted b not a hit: $out"
[ "$(stat predicted_hits)" -ge 1 ] || fail "predicted_hits not counted"
cmp "$T/disks/b.raw" "$T/b.raw" || fail "the prefetched b differs from its source"
grep -q "predict: prefetching b for default: p=.*predicted after default/a" "$T/ppf0.log" ||
    fail "the log does not say why b was prefetched"

# the table shows the pattern, in text and JSON
ppfctl table >"$T/table.txt" || fail "ppfctl table"
grep -q '^after default/a' "$T/table.txt" || fail "no 'after default/a' row: $(cat "$T/table.txt")"
ppfctl --json table >"$T/table.json" || fail "ppfctl --json table"
python3 - "$T/table.json" <<'EOF' || fail "table JSON"
import json, sys
t = json.load(open(sys.argv[1]))
rows = {r["key"]: r for r in t["rows"]}
r = rows["after default/a"]
assert r["images"][0]["image"] == "b", r
assert 0 < r["images"][0]["score"] <= 1, r
assert t["total"] == len(t["rows"]), t
EOF
[ "$(stat table_rows)" -ge 1 ] || fail "table_rows counter"

# DEFINED: prefetched at once, counted as a hint
ppfctl event defined d --domain 6c1f7b1e-54a4-4bd6-9a3e-6a2f9c1e0d11 >/dev/null || fail "event defined"
wait_state d ready in-flight || fail "DEFINED did not prefetch d"
[ "$(stat hint_prefetches)" = 1 ] || fail "hint_prefetches: $(stat hint_prefetches)"

# bad EVENTs: refused with a reason, nothing learned
learned=$(stat learned)
ppfctl event bogus a 2>"$T/err"; [ $? = 2 ] || fail "unknown kind not a usage error"
grep -q "not a kind" "$T/err" || fail "no reason for a bad kind: $(cat "$T/err")"
ppfctl event started 2>"$T/err"; [ $? = 2 ] || fail "missing image not a usage error"
ppfctl event deploy a --time $(( $(date +%s) + 3 * 86400 )) 2>"$T/err" &&
    fail "an event 3 days in the future was accepted"
grep -q "more than a day ahead" "$T/err" || fail "no reason for a future time: $(cat "$T/err")"
ppfctl event deploy 'x/y' 2>/dev/null && fail "a path as image name was accepted"
[ "$(stat learned)" = "$learned" ] || fail "a refused event was learned"
# a STARTED right after the domain's DEPLOY is not learned twice
dom=0b8e5f0c-3a57-4d6e-a0a1-5d1d6f3c2b10
ppfctl deploy c --mode copy --domain $dom --dest "$T/disks/c.raw" >/dev/null || fail "deploy c"
learned=$(stat learned)
out=$(ppfctl --json event started c --domain $dom) || fail "event started"
echo "$out" | grep -q '"learned": *false' || fail "STARTED after DEPLOY learned twice: $out"
[ "$(stat learned)" = "$learned" ] || fail "learned moved"

# what was learned survives a restart (saved at shutdown)
kill_pidfile "$T/ppf0.pid"
[ -s "$T/ppf0.state/patterns.nvm" ] || fail "no pattern store after shutdown"
start_peripheral ppf0
grep -q "predict: learning: markov, [1-9][0-9]* images known" "$T/ppf0.log" ||
    fail "the restarted peripheral did not load the store: $(grep predict "$T/ppf0.log")"
ppfctl evict b >/dev/null 2>&1
ppfctl event defined a >/dev/null   # (clears a's retry time; a is there anyway)
ppfctl deploy a --mode copy --ephemeral --dest "$T/disks/a.raw" >/dev/null || fail "deploy a again"

# a corrupt store: set aside, reported, the device serves on
kill_pidfile "$T/ppf0.pid"
head -c 4096 /dev/urandom >"$T/ppf0.state/patterns.nvm"
start_peripheral ppf0
ppfctl status >/dev/null || fail "the peripheral does not answer after a corrupt store"
ls "$T/ppf0.state"/patterns.nvm.corrupt* >/dev/null 2>&1 || fail "the corrupt store was not set aside"
grep -qi "pattern store" "$T/ppf0.log" || fail "the corrupt store was not reported"
ppfctl event deploy a >/dev/null || fail "EVENT after a corrupt store"

# learning none: nothing predicted
policy none
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply (none)"
before=$(stat predicted_prefetches)
for _ in 1 2 3; do ppfctl event deploy a >/dev/null; ppfctl event deploy c >/dev/null; done
ppfctl evict c >/dev/null 2>&1
sleep 1.5
[ "$(stat predicted_prefetches)" = "$before" ] || fail "algorithm none prefetched"
ppfctl event defined c >/dev/null
sleep 0.3
[ "$(state_of c)" = absent ] || fail "algorithm none acted on a DEFINED hint"
echo "ok"
