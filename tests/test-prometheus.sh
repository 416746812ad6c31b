#!/usr/bin/env bash
# The peripheral's counters in the Prometheus text format: `ppfctl stats
# --prometheus` parses (every sample is `name[{labels}] value` and every
# family has # HELP and # TYPE before its samples), and ppfd's textfile
# (--prometheus-file) appears, is rewritten atomically at its interval, and
# says ppfd_peripheral_up 0 without the peripheral's counters while the
# peripheral is away.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
requires python3 --version
# the system's interpreter if there is one: a version manager's shim costs a second a call
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3

T=$tmpdir
wait_for() {   # wait_for SECONDS CMD...
    local n=$(($1 * 10)); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
# check_prom FILE: the exposition format, strictly enough for a scraper
cat >"$T/check.py" <<'EOF'
import math, re, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n"), "no final newline"
help_, type_, seen = {}, {}, set()
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (?P<value>\S+)$')
for n, line in enumerate(text.splitlines(), 1):
    if line.startswith("# HELP "):
        name = line.split(" ", 3)[2]
        assert name not in help_, f"{n}: second HELP for {name}"
        help_[name] = n
    elif line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        assert kind in ("counter", "gauge", "untyped"), f"{n}: type {kind}"
        assert name not in type_, f"{n}: second TYPE for {name}"
        type_[name] = kind
    elif line.startswith("#"):
        continue
    else:
        m = sample.match(line)
        assert m, f"{n}: not a sample: {line!r}"
        name, value = m.group(1), m.group("value")
        v = float(value)    # NaN, +Inf included
        assert name in help_ and name in type_, f"{n}: {name} has no HELP/TYPE before it"
        if type_[name] == "counter":
            assert name.endswith("_total") and v >= 0, f"{n}: bad counter {line}"
        seen.add(name)
for name in type_:
    assert name in seen, f"family {name} has no sample"
print(" ".join(sorted(seen)))
EOF
check_prom() { "$PY" "$T/check.py" "$1" >"$T/names" || { cat "$1" >&2; fail "$1 is not valid Prometheus text"; }; }
value() { sed -n "s/^$1 //p" "$2"; }

start_peripheral ppf0

# --- ppfctl stats --prometheus -------------------------------------------------------------
ppfctl stats --prometheus >"$T/stats.prom" || fail "ppfctl stats --prometheus"
check_prom "$T/stats.prom"
for m in ppf_uptime_seconds ppf_commands_total ppf_deploys_total ppf_buffer_used_bytes \
         ppf_hit_ratio; do
    grep -qw "$m" "$T/names" || fail "ppfctl stats --prometheus has no $m"
done
grep -q '^# TYPE ppf_buffer_used_bytes gauge$' "$T/stats.prom" || fail "buffer_used is not a gauge"
grep -q '^# TYPE ppf_deploys_total counter$' "$T/stats.prom" || fail "deploys is not a counter"
grep -q '^ppf_hit_ratio NaN$' "$T/stats.prom" || fail "hit ratio before any deploy is not NaN"
grep -q '^ppf_opcode_commands_total{opcode="GET_STATS"} [0-9]' "$T/stats.prom" ||
    fail "no labelled opcode counter"
# every counter --json shows is exported
ppfctl --json stats >"$T/stats.json" || fail "ppfctl --json stats"
n_json=$(grep -o '"[a-z_]*":' "$T/stats.json" | grep -vc '"hit_ratio"')
n_prom=$(grep -cv '^#' "$T/stats.prom")
[ "$n_prom" -ge "$n_json" ] || fail "$n_json counters in --json but $n_prom samples in --prometheus"
ppfctl --json stats --prometheus >/dev/null 2>&1; [ $? = 2 ] || fail "--json --prometheus: exit 2"

# --- ppfd --prometheus-file --------------------------------------------------------------
mkdir "$T/textfile"
prom=$T/textfile/ppf.prom
ppfd --policy "$T/no-policy.yaml" --device "$PPF_DEVICE" --no-libvirt --exit-with-parent \
    --prometheus-file "$prom" --prometheus-interval 1 --pidfile "$T/ppfd.pid" 2>"$T/ppfd.log" &
ppfd_pid=$!
cleanup_fn "kill $ppfd_pid 2>/dev/null; wait $ppfd_pid 2>/dev/null"
wait_for 10 test -s "$prom" || { cat "$T/ppfd.log" >&2; fail "ppfd did not write $prom"; }
check_prom "$prom"
[ "$(value ppfd_peripheral_up "$prom")" = 1 ] || fail "ppfd_peripheral_up is not 1"
grep -qw ppf_uptime_seconds "$T/names" || fail "the textfile has no peripheral counters"
grep -qw ppfd_events_dropped_total "$T/names" || fail "the textfile has no ppfd counters"
grep -q ppfd_libvirt_connected "$prom" && fail "ppfd_libvirt_connected with --no-libvirt"
up1=$(value ppf_uptime_seconds "$prom")
uptime_grew() { awk -v a="$up1" -v b="$(value ppf_uptime_seconds "$prom")" 'BEGIN { exit !(b > a) }'; }
wait_for 5 uptime_grew || fail "$prom was not refreshed"
check_prom "$prom"

# the peripheral goes away: only ppfd's own metrics, up 0; ppfd goes on
kill_pidfile "$T/ppf0.pid"
wait_for 10 grep -q '^ppfd_peripheral_up 0$' "$prom" || { cat "$prom" >&2; fail "ppfd_peripheral_up did not drop to 0"; }
check_prom "$prom"
grep -q '^ppf_' "$prom" && fail "stale peripheral counters in $prom"
kill -0 $ppfd_pid || fail "ppfd died with the peripheral"
# and comes back
start_peripheral ppf0
wait_for 10 grep -q '^ppfd_peripheral_up 1$' "$prom" || { cat "$T/ppfd.log" >&2; fail "ppfd did not read the restarted peripheral"; }

kill $ppfd_pid; wait $ppfd_pid || fail "ppfd exit status $? on SIGTERM"
[ ! -e "$prom.tmp" ] || fail "$prom.tmp left behind"
ls "$T/textfile" | grep -qvx ppf.prom && fail "stray files beside $prom: $(ls "$T/textfile")"

# an unwritable path is reported once, and ppfd goes on
ppfd --policy "$T/no-policy.yaml" --device "$PPF_DEVICE" --no-libvirt --exit-with-parent \
    --prometheus-file "$T/no/such/dir/ppf.prom" --prometheus-interval 1 2>"$T/ppfd2.log" &
ppfd_pid=$!
cleanup_fn "kill $ppfd_pid 2>/dev/null; wait $ppfd_pid 2>/dev/null"
wait_for 10 grep -q "prometheus: .*no/such/dir" "$T/ppfd2.log" || { cat "$T/ppfd2.log" >&2; fail "unwritable file not reported"; }
sleep 2.2
[ "$(grep -c "prometheus: .*no/such/dir" "$T/ppfd2.log")" = 1 ] || fail "the write failure was reported more than once"
kill -0 $ppfd_pid || fail "ppfd died on an unwritable Prometheus file"
kill $ppfd_pid; wait $ppfd_pid || fail "ppfd exit status $? on SIGTERM"

# usage errors
ppfd --prometheus-interval 0 2>/dev/null; [ $? = 2 ] || fail "--prometheus-interval 0: exit 2"
ppfd --prometheus-file '' 2>/dev/null; [ $? = 2 ] || fail "--prometheus-file '': exit 2"
ppfd --help | grep -q -- "--prometheus-file" || fail "ppfd --help does not show --prometheus-file"
echo ok
