#!/usr/bin/env bash
# The operations log and usage accounting (schemas/device-protocol.md §5.9)
# on a real peripheral: a prefetch, its preparation and a hit that saved
# time show up in `ppfctl events` (text and JSON, --since, --limit) and in
# a follower started before them (--follow ends cleanly on SIGTERM and
# SIGINT); a miss, a host fallback (EVENT DEPLOY) and a prefetch evicted
# unused are counted per tenant and per image in `ppfctl stats` (text,
# --json, --prometheus); bad arguments are usage errors.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
requires python3 --version
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3

T=$tmpdir
mkdir -p "$T/images" "$T/disks"
for n in web db tmp; do
    # big enough that preparing takes far longer than an overlay: the hit saves time
    truncate -s 64M "$T/$n.raw"
    head -c 16M /dev/urandom | dd of="$T/$n.raw" conv=notrunc status=none
    ppf-image pack "$T/$n.raw" "$T/images/$n.ppfi" >/dev/null || fail "pack $n"
done
# no prefetch bandwidth limit: the pipeline rate is measured on the prefetch
cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
  capacity: 1GiB
stores:
  - {name: local, url: "file://$T/images"}
tenants:
  alice: {quota: 512MiB}
  bob: {quota: 512MiB}
deploy:
  dirs: [$T/disks]
learning:
  algorithm: none
EOT
wait_for() {   # wait_for SECONDS CMD...
    local n=$(($1 * 10)); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
# check_json FILE: python assertions on the records in FILE (one per line) as `recs`
check_json() {
    local file=$1; shift
    "$PY" - "$file" <<EOF || { cat "$file" >&2; fail "${FUNCNAME[1]:-main}: $file"; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
deploys = [r for r in recs if r["kind"] == "deploy"]
$*
EOF
}

# the followers run in the background: stopped at exit if a check failed first
follow=
stop_follow() {
    [ -n "$follow" ] || return 0
    kill "$follow" 2>/dev/null; wait "$follow" 2>/dev/null; follow=
}

start_peripheral ppf0
cleanup_fn stop_follow
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply"

# an empty log is not an error
ppfctl events >"$T/empty.txt" || fail "ppfctl events on an empty log"
ppfctl --json events >"$T/empty.json" || fail "ppfctl --json events on an empty log"
check_json "$T/empty.json" 'assert all(r["kind"] != "deploy" for r in recs), recs'

# a follower from the start (SIGTERM ends it with 0)
ppfctl events --follow --json >"$T/follow.json" 2>"$T/follow.err" &
follow=$!

# prefetch, then a hit: recorded with the time it saved
ppfctl prefetch web --tenant alice --wait >/dev/null || fail "prefetch web"
out=$(ppfctl --json deploy web --tenant alice --dest "$T/disks/web.qcow2") || fail "deploy web"
echo "$out" | grep -q '"outcome": *"hit"' || fail "deploy after prefetch --wait not a hit: $out"
ppfctl --json events >"$T/ev1.json" || fail "ppfctl --json events"
check_json "$T/ev1.json" '
assert [r["seq"] for r in recs] == sorted(r["seq"] for r in recs) and recs[0]["seq"] >= 1, recs
kinds = [r["kind"] for r in recs]
assert "prefetch" in kinds and "ready" in kinds, kinds
ready = [r for r in recs if r["kind"] == "ready"][0]
assert ready["image"] == "web" and ready["bytes"] == 64 << 20 and ready["wait_ms"] > 0, ready
d = deploys[-1]
assert d["image"] == "web" and d["tenant"] == "alice" and d["outcome"] == "hit", d
assert d["saved_ms"] > 0 and d["wait_ms"] >= 0, d
assert d["text"].startswith("deployed web for alice: hit, waited "), d
assert " saved " in d["text"] and "unknown" not in d["text"], d
assert d["time"][:2] == "20" and "T" in d["time"] and d["time_us"] > 1.6e15, d
'
wait_for 5 grep -q '"kind":"deploy"' "$T/follow.json" ||
    { cat "$T/follow.err" >&2; fail "the follower did not print the deploy"; }
kill -TERM $follow
wait $follow; rc=$?; follow=
[ $rc = 0 ] || fail "events --follow exited $rc on SIGTERM: $(cat "$T/follow.err")"
# the follower saw what a later reader sees, once each
check_json "$T/follow.json" '
seqs = [r["seq"] for r in recs]
assert seqs == sorted(set(seqs)), seqs
assert deploys and deploys[0]["outcome"] == "hit", recs'
cmp <(head -n "$(wc -l <"$T/follow.json")" "$T/ev1.json" | sed 's/"time":"[^"]*",//') \
    <(sed 's/"time":"[^"]*",//' "$T/follow.json") >/dev/null ||
    fail "the follower's records differ from ppfctl events'"

# a follower started later sees only new records, in text; SIGINT ends it with 0
last=$(tail -n 1 "$T/ev1.json" | sed 's/^{"seq":\([0-9]*\).*/\1/')
ppfctl events --follow --limit 1 >"$T/follow.txt" 2>&1 &
follow=$!
wait_for 5 grep -q "^$last " "$T/follow.txt" || fail "events --follow --limit 1: $(cat "$T/follow.txt")"
# a miss for bob and a deploy the host made itself (a fallback)
out=$(ppfctl --json deploy db --tenant bob --dest "$T/disks/db.qcow2") || fail "deploy db"
echo "$out" | grep -q '"outcome": *"miss"' || fail "deploy db not a miss: $out"
ppfctl event deploy web --tenant bob >/dev/null || fail "event deploy (fallback)"
wait_for 5 grep -q " deploy .* web .* bob .*fallback" "$T/follow.txt" ||
    fail "the follower did not print the fallback: $(cat "$T/follow.txt")"
kill -INT $follow
wait $follow; rc=$?; follow=
[ $rc = 0 ] || fail "events --follow exited $rc on SIGINT"
head -n 1 "$T/follow.txt" | grep -q '^SEQ  *TIME  *KIND  *IMAGE  *TENANT  *TEXT$' ||
    fail "no header line: $(head -n 2 "$T/follow.txt")"
[ "$(grep -c '^[0-9]' "$T/follow.txt")" -ge 3 ] || fail "follow --limit 1: $(cat "$T/follow.txt")"
grep -q "^$((last - 1)) " "$T/follow.txt" && fail "--limit 1 printed an older record"
grep -Eq "^[0-9]+ +20[0-9-]+T[0-9:]+ +deploy +db +bob +deployed db for bob: miss, waited " \
    "$T/follow.txt" || fail "the miss in text: $(cat "$T/follow.txt")"

# --since and --limit
ppfctl --json events --since $((last + 1)) >"$T/since.json" || fail "events --since"
check_json "$T/since.json" "
assert recs[0]['seq'] == $last + 1 and all(r['seq'] > $last for r in recs), recs
assert [d['outcome'] for d in deploys] == ['miss', 'fallback'], deploys
assert deploys[1]['saved_ms'] == 0 and 'wait_ms' not in deploys[1], deploys"
ppfctl --json events --limit 2 >"$T/limit.json" || fail "events --limit"
check_json "$T/limit.json" "assert len(recs) == 2 and recs[-1]['kind'] == 'deploy', recs"
ppfctl events --since 1000000 | grep -q "^no records" || fail "events --since past the end"

# a prefetch evicted unused is wasted
ppfctl prefetch tmp --tenant alice --wait >/dev/null || fail "prefetch tmp"
ppfctl evict tmp >/dev/null || fail "evict tmp"
ppfctl --json events --limit 1 >"$T/evict.json" || fail "events after evict"
check_json "$T/evict.json" "assert recs[0]['kind'] == 'evict' and recs[0]['image'] == 'tmp', recs"

# usage in ppfctl stats: text, JSON, Prometheus
ppfctl stats >"$T/stats.txt" || fail "ppfctl stats"
grep -q '^TENANT  *DEPLOYS  *HIT%' "$T/stats.txt" || fail "no tenant table: $(cat "$T/stats.txt")"
grep -q '^IMAGE  *TENANT  *DEPLOYS' "$T/stats.txt" || fail "no image table: $(cat "$T/stats.txt")"
grep -Eq '^alice +1 +100\.0 ' "$T/stats.txt" || fail "alice's row: $(cat "$T/stats.txt")"
ppfctl --json stats >"$T/stats.json" || fail "ppfctl --json stats"
"$PY" - "$T/stats.json" <<'EOF' || { cat "$T/stats.json" >&2; fail "stats --json usage"; }
import json, sys
s = json.load(open(sys.argv[1]))
t = {r["tenant"]: r for r in s["tenants"]}
i = {(r["image"], r["tenant"]): r for r in s["images"]}
a, b = t["alice"], t["bob"]
assert a["deploys"] == 1 and a["hits"] == 1 and a["hit_ratio"] == 1 and a["saved_ms"] > 0, a
assert b["deploys"] == 2 and b["misses"] == 1 and b["fallbacks"] == 1 and b["hit_ratio"] == 0, b
assert b["saved_ms"] == 0 and b["mean_wait_ms"] > 0, b
assert i[("web", "alice")]["hits"] == 1 and i[("web", "bob")]["fallbacks"] == 1, i
assert i[("db", "bob")]["misses"] == 1, i
assert sum(r["prefetched_bytes"] for r in s["tenants"]) >= 2 * (64 << 20), t
assert sum(r["wasted_bytes"] for k, r in i.items() if k[0] == "tmp") == 64 << 20, i
assert sum(r["wasted_bytes"] for k, r in i.items() if k[0] != "tmp") == 0, i
EOF
ppfctl stats --prometheus >"$T/stats.prom" || fail "ppfctl stats --prometheus"
for re in '^ppf_saved_seconds_total [0-9]+\.[0-9]{6}$' \
          '^ppf_tenant_deploys_total\{tenant="alice",outcome="hit"\} 1$' \
          '^ppf_tenant_deploys_total\{tenant="bob",outcome="fallback"\} 1$' \
          '^ppf_tenant_saved_seconds_total\{tenant="alice"\} [0-9.]+$' \
          '^ppf_image_deploys_total\{image="db",tenant="bob",outcome="miss"\} 1$' \
          '^ppf_image_prefetched_bytes_total\{image="web",tenant="[^"]+"\} 67108864$' \
          '^ppf_image_wasted_bytes_total\{image="tmp",tenant="[^"]+"\} 67108864$' \
          '^# TYPE ppf_image_wasted_bytes_total counter$'; do
    grep -Eq "$re" "$T/stats.prom" || { cat "$T/stats.prom" >&2; fail "no line like $re"; }
done
saved=$(sed -n 's/^ppf_saved_seconds_total //p' "$T/stats.prom")
awk -v s="$saved" 'BEGIN { exit !(s > 0) }' || fail "ppf_saved_seconds_total is $saved"

# every record went to the peripheral's log too
grep -q "ops: deployed web for alice: hit, waited" "$T/ppf0.log" || fail "no ops line in the log"

# usage errors: exit 2 with a reason
for args in "--since abc" "--since 0" "--limit 0" "--limit x" "--bogus" "extra"; do
    # shellcheck disable=SC2086
    ppfctl events $args >/dev/null 2>"$T/err"; rc=$?
    [ $rc = 2 ] || fail "events $args: exit $rc, want 2"
    grep -q "^ppfctl: " "$T/err" || fail "events $args: no reason: $(cat "$T/err")"
done
ppfctl events --since abc 2>&1 | grep -q -- "--since 'abc'" || fail "--since abc: unclear error"
ppfctl --help | grep -q "events \[--follow\]" || fail "ppfctl --help does not list events"
echo ok
