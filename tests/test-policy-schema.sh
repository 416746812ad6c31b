#!/usr/bin/env bash
# Every examples/*.yaml is a valid policy for ppf's parser and for the JSON
# Schema (schemas/policy.schema.json, checked with Python's jsonschema);
# the canonical forms round-trip: emit YAML -> parse -> emit is identical,
# the device blob decodes to the same policy, and the emitted YAML and JSON
# validate against the schema.  Files in tests/policy-data/bad-*.yaml are
# rejected by both.  Exit 77 (skip) only when no Python has jsonschema, and
# only after the ppf checks have passed.
. "${top_builddir:-..}/tests/functions.sh" || exit 99

check=$top_builddir/tests/policy-check
schema=$top_srcdir/schemas/policy.schema.json
[ -x "$check" ] || fail "$check is not built (make check builds it)"

shopt -s nullglob
examples=("$top_srcdir"/examples/*.yaml "$top_srcdir"/tests/policy-data/empty.yaml)
bad=("$top_srcdir"/tests/policy-data/bad-*.yaml)
[ ${#examples[@]} -ge 2 ] || fail "no examples/*.yaml found"

# --- ppf's own parser ---------------------------------------------------
n=0
for f in "${examples[@]}"; do
    n=$((n + 1))
    $check --no-file-checks "$f" || fail "$f: ppf rejects it"
    $check --no-file-checks --emit yaml "$f" > "$tmpdir/$n.a.yaml" || fail "$f: emit yaml"
    $check --no-file-checks --emit yaml "$tmpdir/$n.a.yaml" > "$tmpdir/$n.b.yaml" ||
        fail "$f: the emitted YAML does not validate (in $tmpdir/$n.a.yaml)"
    cmp "$tmpdir/$n.a.yaml" "$tmpdir/$n.b.yaml" ||
        { diff -u "$tmpdir/$n.a.yaml" "$tmpdir/$n.b.yaml"; fail "$f: round trip differs"; }
    $check --no-file-checks --emit blob "$f" > "$tmpdir/$n.blob.yaml" || fail "$f: blob"
    cmp "$tmpdir/$n.a.yaml" "$tmpdir/$n.blob.yaml" ||
        { diff -u "$tmpdir/$n.a.yaml" "$tmpdir/$n.blob.yaml"; fail "$f: device blob differs"; }
    $check --no-file-checks --emit json "$f" > "$tmpdir/$n.json" || fail "$f: emit json"
    echo "ok: $f (ppf, round trip, blob)"
done
for f in "${bad[@]}"; do
    if $check --no-file-checks "$f" 2> "$tmpdir/err"; then
        fail "$f: ppf accepts a bad policy"
    fi
    grep -q "^$f:[0-9]*:[0-9]*: " "$tmpdir/err" || { cat "$tmpdir/err"; fail "$f: no FILE:LINE:COLUMN"; }
    echo "ok: $f rejected: $(head -1 "$tmpdir/err")"
done

# --- the JSON Schema, with Python's jsonschema ----------------------------
py=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml, jsonschema' 2>/dev/null; then
        py=$p
        break
    fi
done
if [ -z "$py" ]; then
    echo "$0: skipped schema checks: requires python3 with yaml and jsonschema" \
         "(python3-yaml, python3-jsonschema)"
    exit 77
fi

cat > "$tmpdir/validate.py" <<'PY'
import json, sys, yaml, jsonschema

schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
validator = cls(schema)
expect = sys.argv[2]            # "good" or "bad"
status = 0
for path in sys.argv[3:]:
    with open(path) as f:
        doc = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
    if doc is None:
        doc = {}
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    if expect == "good" and errors:
        status = 1
        for e in errors:
            print("%s: %s: %s" % (path, "/".join(map(str, e.path)) or "(root)", e.message))
    elif expect == "bad" and not errors:
        status = 1
        print("%s: the schema accepts a bad policy" % path)
    else:
        print("ok: %s (schema, %s)" % (path, expect))
sys.exit(status)
PY
$py "$tmpdir/validate.py" "$schema" good "${examples[@]}" \
    "$tmpdir"/*.a.yaml "$tmpdir"/*.json || fail "schema validation of good policies"
$py "$tmpdir/validate.py" "$schema" bad "${bad[@]}" || fail "schema accepts bad policies"
echo "ok"
