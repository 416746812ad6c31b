#!/usr/bin/env bash
# The README's test command: installs what ppf needs (Debian 12, as root),
# builds ppf twice -- warnings as errors, then AddressSanitizer +
# UndefinedBehaviorSanitizer -- runs the whole suite on both builds, then
# `make distcheck`, and ends with the test runners' summaries.  Exits
# non-zero if anything failed.
#
# Environment: PPF_SKIP_DEPS=1 skips the package install, PPF_SKIP_DISTCHECK=1
# skips distcheck, PPF_JOBS=N sets make's parallelism (default: nproc).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
src=$PWD
jobs=${PPF_JOBS:-$(nproc)}
say() { printf '\n==== ppf test: %s ====\n' "$*"; }
failed_steps=()

if [ "${PPF_SKIP_DEPS:-0}" != 1 ]; then
    say "installing build and test dependencies"
    bash scripts/install-deps.sh || { echo "ppf: installing dependencies failed" >&2; exit 1; }
fi

say "autogen"
./autogen.sh >/dev/null || { echo "ppf: autogen.sh failed" >&2; exit 1; }

# build NAME CONFIGURE-FLAGS...: configure, make, make check in build-NAME.
build() {
    local name=$1 dir=$src/build-$1
    shift
    say "build $name: configure $*"
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && "$src/configure" -q "$@") || { failed_steps+=("$name: configure"); return 1; }
    say "build $name: make"
    make -C "$dir" -j"$jobs" >"$dir/make.log" 2>&1 ||
        { tail -50 "$dir/make.log"; failed_steps+=("$name: make"); return 1; }
    say "build $name: make check"
    if ! make -C "$dir" -j"$jobs" check >"$dir/check.log" 2>&1; then
        failed_steps+=("$name: make check")
        # show every failing test's log, or the build error if none ran
        local shown=0
        for log in $(grep -lE '^:test-result: (FAIL|ERROR|XPASS)' $(find "$dir/tests" -name '*.trs') 2>/dev/null); do
            echo "---- ${log%.trs}.log ----"
            tail -60 "${log%.trs}.log"
            shown=1
        done
        [ "$shown" = 1 ] || tail -40 "$dir/check.log"
        return 1
    fi
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

build werror --enable-gcc-warnings
build asan --enable-gcc-warnings --enable-sanitizers

if [ "${PPF_SKIP_DISTCHECK:-0}" != 1 ]; then
    say "make distcheck"
    if ! make -C "$src/build-werror" -j"$jobs" distcheck \
            DISTCHECK_CONFIGURE_FLAGS=--enable-gcc-warnings >"$src/build-werror/distcheck.log" 2>&1; then
        tail -60 "$src/build-werror/distcheck.log"
        failed_steps+=("distcheck")
    fi
fi

# --- summaries: last thing printed ------------------------------------------
pass=0 fail=0 skip=0
for name in werror asan; do
    log=$src/build-$name/test-suite.log
    [ -f "$log" ] || continue
    echo
    echo "== $name build: test suite summary =="
    sed -n '/^# TOTAL/,/^# ERROR/p' "$log"
    p=$(sed -n 's/^# PASS: *//p' "$log"); f=$(sed -n 's/^# FAIL: *//p' "$log")
    e=$(sed -n 's/^# ERROR: *//p' "$log"); x=$(sed -n 's/^# XPASS: *//p' "$log")
    s=$(sed -n 's/^# SKIP: *//p' "$log")
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${e:-0} + ${x:-0})); skip=$((skip + ${s:-0}))
done
echo
for st in "${failed_steps[@]}"; do echo "FAILED: $st"; done
echo "ppf: $pass passed, $fail failed, $skip skipped (builds: werror, asan)"
[ ${#failed_steps[@]} -eq 0 ] && [ "$fail" -eq 0 ]
