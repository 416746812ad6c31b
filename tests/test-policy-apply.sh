#!/usr/bin/env bash
# ppfctl policy validate/apply/show against a real peripheral: an invalid
# file changes nothing, an applied policy survives a restart, a corrupt
# store is set aside (never a crash), and hostile CONFIGURE payloads are
# refused.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

key=$tmpdir/acme.key
head -c 32 /dev/urandom >"$key"
chmod 600 "$key"
mkdir -p "$tmpdir/buffer" "$tmpdir/images" "$tmpdir/disks"
cat >"$tmpdir/good.yaml" <<EOT
monitoring:
  interval: 250ms
learning:
  algorithm: markov
table:
  size: 2048
buffer:
  path: $tmpdir/buffer
  capacity: 4GiB
stores:
  - name: local
    url: file://$tmpdir/images
tenants:
  acme:
    quota: 1GiB
    keyfile: $key
deploy:
  dirs: [$tmpdir/disks]
EOT
cat >"$tmpdir/bad.yaml" <<EOT
monitoring:
  interval: 1ms
buffer:
  capacity: 64 GB
  colour: blue
EOT

ppfctl policy validate "$tmpdir/good.yaml" || fail "good.yaml did not validate"
ppfctl policy validate "$tmpdir/bad.yaml" 2>"$tmpdir/err" && fail "bad.yaml validated"
cat "$tmpdir/err"
grep -q "bad.yaml:2:[0-9]*: monitoring.interval" "$tmpdir/err" || fail "no FILE:LINE:COL for interval"
grep -q "bad.yaml:4:[0-9]*: buffer.capacity" "$tmpdir/err" || fail "no error for capacity"
grep -q "colour" "$tmpdir/err" || fail "unknown key not reported"
ppfctl --json policy validate "$tmpdir/bad.yaml" >"$tmpdir/err.json" && fail "bad.yaml validated (json)"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["valid"] and len(d["errors"]) >= 3, d' \
    "$tmpdir/err.json" || fail "--json validate output"

start_peripheral ppf0
ppfctl policy show >"$tmpdir/default.yaml" || fail "policy show (defaults)"
grep -q "algorithm: ensemble" "$tmpdir/default.yaml" || fail "defaults not shown"
ppfctl policy validate "$tmpdir/default.yaml" || fail "shown defaults do not validate"

# an invalid file changes nothing
ppfctl policy apply "$tmpdir/bad.yaml" 2>/dev/null && fail "bad.yaml applied"
ppfctl policy show >"$tmpdir/after-bad.yaml"
cmp "$tmpdir/default.yaml" "$tmpdir/after-bad.yaml" || fail "a refused policy changed the device"

ppfctl policy apply "$tmpdir/good.yaml" | grep -q "applied (policy generation 1)" || fail "apply"
ppfctl policy show >"$tmpdir/applied.yaml"
grep -q "algorithm: markov" "$tmpdir/applied.yaml" || fail "applied policy not in force"
grep -q "interval: 250ms" "$tmpdir/applied.yaml" || fail "interval not applied"
ppfctl policy validate "$tmpdir/applied.yaml" || fail "shown policy does not validate"
ppfctl --json policy show | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["table"]["size"] == 2048, d' ||
    fail "policy show --json"

# hostile CONFIGURE payloads
configure-client --rounds 200 || fail "configure-client"

# survives a restart
kill_pidfile "$tmpdir/ppf0.pid"; wait $periph_pid 2>/dev/null
start_peripheral ppf0
ppfctl policy show >"$tmpdir/restarted.yaml"
cmp "$tmpdir/applied.yaml" "$tmpdir/restarted.yaml" || fail "policy lost across a restart"

# a corrupt store is set aside, never a crash
kill_pidfile "$tmpdir/ppf0.pid"; wait $periph_pid 2>/dev/null
printf 'garbage' | dd of="$tmpdir/ppf0.state/policy.ppfc" bs=1 seek=40 conv=notrunc 2>/dev/null
start_peripheral ppf0
ppfctl policy show | grep -q "algorithm: ensemble" || fail "corrupt store: defaults not in force"
ls "$tmpdir/ppf0.state"/policy.ppfc.corrupt-* >/dev/null || fail "corrupt store not set aside"
grep -q "policy.ppfc: truncated or damaged" "$tmpdir/ppf0.log" || fail "corrupt store not reported"

# usage errors
ppfctl policy 2>/dev/null; [ $? = 2 ] || fail "policy without subcommand: exit 2"
ppfctl policy apply 2>/dev/null; [ $? = 2 ] || fail "policy apply without FILE: exit 2"
ppfctl policy validate "$tmpdir/missing.yaml" 2>"$tmpdir/err"; [ $? = 1 ] || fail "missing file: exit 1"
grep -q "missing.yaml" "$tmpdir/err" || fail "missing file not named"
echo ok
