#!/usr/bin/env bash
# tests/run.sh — meshbroker's test runner (what `make test` calls once the
# binaries are built): the Check unit tests of the sanitizer build, then the
# integration tests (pytest, Debian's python3).  Its last line is always
# exactly "N passed, M failed" over both; the exit status is non-zero when
# anything failed or a test binary crashed.
#
# Environment: MESHBROKER_BIN (binaries, default build/bin), UNIT_DIR (unit test
# binaries, default build/asan/tests, else build/tests), UNIT_TIMEOUT
# (seconds per unit binary, default 300), IT_TIMEOUT (seconds for the
# integration run, default 840), PYTEST_ARGS (extra pytest arguments).
set -u
cd "$(dirname "$0")/.."
top=$(pwd)

passed=0
failed=0
crashed=0
logdir=$(mktemp -d /tmp/meshbroker-tests.XXXXXX)
trap 'rm -rf "$logdir"' EXIT

say() { printf '%s\n' "$*"; }

# ---------------------------------------------------------------- unit tests
unitdir=${UNIT_DIR:-build/asan/tests}
[ -d "$unitdir" ] || unitdir=build/tests
bins=()
if [ -d "$unitdir" ]; then
	for f in "$unitdir"/test_*; do
		[ -f "$f" ] && [ -x "$f" ] && bins+=("$f")
	done
fi
say "== unit tests (${#bins[@]} binaries in $unitdir)"

# LeakSanitizer needs ptrace-like access that some containers forbid; it is
# on wherever it works and switched off (with a note) where it cannot run.
lsan_broken() { grep -qE 'LeakSanitizer has encountered a fatal error|LeakSanitizer does not work under ptrace' "$1"; }

run_unit() { # bin log detect_leaks
	ASAN_OPTIONS="detect_leaks=$3:abort_on_error=0:halt_on_error=1:${ASAN_EXTRA:-}" \
		UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
		CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-60}" \
		timeout --kill-after=10 "${UNIT_TIMEOUT:-300}" "$1" >"$2" 2>&1
}

for bin in ${bins[@]+"${bins[@]}"}; do
	name=$(basename "$bin")
	log="$logdir/$name.log"
	run_unit "$bin" "$log" 1
	rc=$?
	if [ $rc -ne 0 ] && lsan_broken "$log"; then
		say "   $name: LeakSanitizer cannot run here; running without leak detection"
		run_unit "$bin" "$log" 0
		rc=$?
	fi
	# Check prints "NN%: Checks: N, Failures: F, Errors: E" per runner
	n=0 f=0 e=0 seen=0
	while read -r cn cf ce; do
		n=$((n + cn)) f=$((f + cf)) e=$((e + ce)) seen=1
	done < <(sed -nE 's/.*[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' "$log")
	p=$((n - f - e))
	bad=$((f + e))
	note=""
	if [ $seen -eq 0 ]; then
		bad=$((bad + 1))
		crashed=1
		note=" — no Check summary (exit $rc): crashed or hung"
	elif [ $rc -ne 0 ] && [ $bad -eq 0 ]; then
		# all checks passed but the binary failed: a sanitizer report at exit
		bad=1
		crashed=1
		note=" — exit $rc after its checks (sanitizer report?)"
	elif [ $rc -ge 124 ]; then
		crashed=1
		note=" — exit $rc"
	fi
	passed=$((passed + p))
	failed=$((failed + bad))
	say "   $name: $p passed, $bad failed$note"
	if [ $bad -ne 0 ]; then
		grep -E ':[EF]:|ERROR: |runtime error: |SUMMARY: |Assertion|timeout' "$log" | head -40 | sed 's/^/     /'
		[ $seen -eq 0 ] && tail -20 "$log" | sed 's/^/     /'
	fi
done

# ---------------------------------------------------------------- fuzzing
# each libFuzzer target runs briefly over its seed corpus; a crash fails it
fuzz_s=${FUZZ_SECONDS:-5}
say "== fuzz targets (${fuzz_s}s each, make -C fuzz)"
if make --no-print-directory -C fuzz >"$logdir/fuzz-build.log" 2>&1; then
	for t in $(sed -nE 's/^TARGETS[[:space:]]*[:?]?=[[:space:]]*//p' fuzz/Makefile); do
		if make --no-print-directory -C fuzz "run-$t" FUZZ_SECONDS="$fuzz_s" >"$logdir/fuzz-$t.log" 2>&1; then
			passed=$((passed + 1))
			say "   fuzz_$t: ok ($(grep -oE 'Done [0-9]+ runs' "$logdir/fuzz-$t.log" | tail -1))"
		else
			failed=$((failed + 1))
			say "   fuzz_$t: FAILED"
			grep -E 'ERROR|SUMMARY|crash-|runtime error' "$logdir/fuzz-$t.log" | head -20 | sed 's/^/     /'
		fi
	done
else
	failed=$((failed + 1))
	say "   fuzz build FAILED"
	tail -20 "$logdir/fuzz-build.log" | sed 's/^/     /'
fi

# ---------------------------------------------------------------- integration
py=/usr/bin/python3
say "== integration tests (tests/integration, $py -m pytest)"
itlog="$logdir/integration.log"
export MESHBROKER_BIN="${MESHBROKER_BIN:-$top/build/bin}"
# Debian's python3 with Debian's packages: nothing from another interpreter's setup
env -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP PYTHONDONTWRITEBYTECODE=1 \
	timeout --kill-after=15 "${IT_TIMEOUT:-840}" \
	"$py" -m pytest -q -p no:cacheprovider -rfE --durations=8 --color=no ${PYTEST_ARGS:-} tests/integration \
	2>&1 | tee "$itlog"
rc=${PIPESTATUS[0]}

# pytest's last line: "== 3 failed, 40 passed, 1 skipped, 2 errors in 9.1s ==" (any order)
summary=$(grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)|no tests ran' "$itlog" | tail -1)
count() { printf '%s\n' "$summary" | grep -oE "[0-9]+ $1" | head -1 | grep -oE '^[0-9]+' || echo 0; }
ip=$(count passed)
ifl=$(count failed)
ie=$(count 'errors?')
ixp=$(count xpassed)
ibad=$((ifl + ie))
if [ $rc -ne 0 ] && [ $rc -ne 1 ] && [ $ibad -eq 0 ]; then
	# interrupted, internal error, timeout, no tests collected (5)
	ibad=1
	crashed=1
	say "   pytest exited $rc without reporting a failure"
fi
[ $rc -ge 124 ] && [ $rc -ne 1 ] && crashed=1
passed=$((passed + ip + ixp))
failed=$((failed + ibad))
say "   integration: $((ip + ixp)) passed, $ibad failed (pytest exit $rc)"

say "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $crashed -eq 0 ]
