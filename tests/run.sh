#!/usr/bin/env bash
# tests/run.sh — meshbroker's test runner (what `make test` calls once the
# binaries are built):
#   0. the call-graph check of every program (scripts/callgraph.sh over the
#      normal build's objects): a call cycle not in scripts/callgraph.allow
#      fails the run,
#   1. the Check unit tests of the ASan+UBSan build,
#   2. each libFuzzer target briefly,
#   3. the integration tests (pytest) against the normal build,
#   4. the integration tests again against the ASan+UBSan binaries — at the
#      same time as 3 (IT_PARALLEL=1, the default; IT_PARALLEL=0 runs them
#      one after the other), which keeps the suite under 20 minutes on 2 cores.
# Its last line is always "N passed, M failed" (", K skipped" where any) over
# all four; the exit status is non-zero when anything failed, crashed, hung,
# or ran fewer tests than tests/floors says it must.
#
# A part is green only when its runner said so in a way this script can read
# and check: a Check binary must print its summary and exit 0; pytest must
# exit 0 and leave a JUnit report whose counts agree; a runner that exits
# non-zero without a failure it can name is a failure of its own.
#
# Environment: MESHBROKER_BIN (binaries, default build/bin), ASAN_BIN (the
# sanitizer binaries, default build/asan/bin; "none" skips part 4 and fails
# the floor), UNIT_DIR (unit test binaries, default build/asan/tests),
# UNIT_TIMEOUT (seconds per unit binary, default 300), UNIT_JOBS (unit
# binaries run at once, default 2), IT_TIMEOUT (seconds per
# integration run, default 2700: the last resort against a hang outside a
# test, which kills pytest and every result with it; a test phase that hangs
# fails on its own after IT_TEST_TIMEOUT, default 600, conftest.py), PYTEST_ARGS (extra pytest arguments for both
# runs; with it the floors are not checked), FUZZ_SECONDS (default 5), PARTS
# (default "callgraph unit fuzz integration asan"; each part that runs is held
# to its floor), CALLGRAPH_BUILD (default build).
#
# Repeat mode (`make test-repeat N=200 IT=2`, issue 25): REPEAT_UNIT=N runs
# the unit part N times, then REPEAT_IT=M runs the integration part(s) M
# times (PARTS picks them; default "unit integration"), stopping at the first
# round with a failure; each round is held to its floor, passing binaries are
# not listed, and the last line is the usual summary over all rounds.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)

passed=0
failed=0
skipped=0
logdir=$(mktemp -d /tmp/meshbroker-tests.XXXXXX)
trap 'rm -rf "$logdir"' EXIT
parts=" ${PARTS:-callgraph unit fuzz integration asan} "
# PYTEST_ARGS naming test files or directories runs those alone; otherwise
# (say -k or -x) it narrows or changes the run of the whole directory
itdir=tests/integration
for a in ${PYTEST_ARGS:-}; do
	case "$a" in tests/*|*.py|*.py::*) itdir= ;; esac
done
partial=0 # a run of a subset of tests (-k, a path) does not check the floors
[ -n "${PYTEST_ARGS:-}" ] && partial=1

say() { printf '%s\n' "$*"; }
bad() { # count one failure of the runner itself, with its reason
	failed=$((failed + 1))
	say "   FAILED: $*"
}

# floors: "name number" lines in tests/floors
floor() {
	local v
	v=$(sed -nE "s/^$1[[:space:]]+([0-9]+).*/\\1/p" tests/floors 2>/dev/null | head -1)
	printf '%s\n' "${v:-0}"
}
check_floor() { # what ran floor-name
	[ $partial -eq 1 ] && return 0
	local want
	want=$(floor "$2")
	if [ "$1" -lt "$want" ]; then
		bad "$2: $1 passed, tests/floors expects $want (a test skipped, lost, or not collected?)"
	fi
}

# ---------------------------------------------------------------- call graph
# one check: no call cycle in any program, but the allow-listed ones
run_callgraph() {
	local log="$logdir/callgraph.log"
	say "== call graph (scripts/callgraph.sh, every program)"
	if sh scripts/callgraph.sh "${CALLGRAPH_BUILD:-build}" >"$log" 2>&1; then
		passed=$((passed + 1))
		grep -E 'allowed cycle|allow-list' "$log" | sed 's/^/   /'
		say "   callgraph: $(grep -c 'no cycle' "$log") program views without a cycle"
	else
		failed=$((failed + 1))
		say "   callgraph: FAILED"
		grep -vE 'no cycle' "$log" | sed 's/^/     /'
	fi
}

# ---------------------------------------------------------------- unit tests
run_units() {
	local unitdir=${UNIT_DIR:-build/asan/tests}
	local srcs=(tests/unit/test_*.c)
	[ -n "${quiet_pass:-}" ] || say "== unit tests (${#srcs[@]} sources in tests/unit, binaries in $unitdir)"
	if [ ! -e "${srcs[0]}" ]; then
		bad "no unit test sources in tests/unit"
		return
	fi
	# LeakSanitizer needs ptrace-like access that some containers forbid; it
	# is on wherever it works and switched off (with a note) where it cannot.
	lsan_broken() { grep -qE 'LeakSanitizer has encountered a fatal error|LeakSanitizer does not work under ptrace' "$1"; }
	run_unit() { # bin log detect_leaks
		ASAN_OPTIONS="detect_leaks=$3:abort_on_error=0:halt_on_error=1:${ASAN_EXTRA:-}" \
			UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
			CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-60}" CK_FORK=yes \
			timeout --kill-after=10 "${UNIT_TIMEOUT:-300}" "$1" >"$2" 2>&1
	}
	run_unit_rc() { # bin log: runs it, leaks detected where LSan works; exit code in log.rc
		local r
		run_unit "$1" "$2" 1
		r=$?
		if [ $r -ne 0 ] && lsan_broken "$2"; then
			echo "LeakSanitizer cannot run here; running without leak detection" >"$2.lsan"
			run_unit "$1" "$2" 0
			r=$?
		fi
		echo $r >"$2.rc"
	}
	local checks=0 src name bin log rc n f e seen p nbad note running=0
	# The binaries run UNIT_JOBS at a time (default 2: test_db's private
	# PostgreSQL takes as long as all the rest); each is judged in source order.
	for src in "${srcs[@]}"; do
		name=$(basename "$src" .c)
		bin="$unitdir/$name"
		log="$logdir/$name.log"
		rm -f "$log.rc" "$log.lsan"
		[ -x "$bin" ] || continue
		if [ $running -ge "${UNIT_JOBS:-2}" ]; then
			wait -n
			running=$((running - 1))
		fi
		run_unit_rc "$bin" "$log" &
		running=$((running + 1))
	done
	wait
	for src in "${srcs[@]}"; do
		name=$(basename "$src" .c)
		bin="$unitdir/$name"
		log="$logdir/$name.log"
		if [ ! -x "$bin" ]; then
			bad "$name: no binary $bin for $src (not built?)"
			continue
		fi
		[ -e "$log.lsan" ] && say "   $name: $(cat "$log.lsan")"
		rc=$(cat "$log.rc" 2>/dev/null || echo 125)
		# Check prints "NN%: Checks: N, Failures: F, Errors: E" per runner
		n=0 f=0 e=0 seen=0
		while read -r cn cf ce; do
			n=$((n + cn)) f=$((f + cf)) e=$((e + ce)) seen=1
		done < <(sed -nE 's/.*[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' "$log")
		p=$((n - f - e))
		nbad=$((f + e))
		note=""
		if [ $seen -eq 0 ]; then
			nbad=$((nbad + 1))
			note=" — no Check summary (exit $rc): crashed or hung"
		elif [ "$n" -eq 0 ]; then
			nbad=$((nbad + 1))
			note=" — ran 0 checks"
		elif [ $rc -ne 0 ] && [ $nbad -eq 0 ]; then
			# all checks passed but the binary failed: a sanitizer report at exit
			nbad=1
			note=" — exit $rc after its checks (sanitizer report?)"
		elif [ $rc -ge 124 ]; then
			note=" — exit $rc"
		fi
		checks=$((checks + n))
		passed=$((passed + p))
		failed=$((failed + nbad))
		[ $nbad -ne 0 ] || [ -z "${quiet_pass:-}" ] && say "   $name: $p passed, $nbad failed$note"
		if [ $nbad -ne 0 ]; then
			grep -E ':[EF]:|ERROR: |runtime error: |SUMMARY: |Assertion|timeout' "$log" | head -40 | sed 's/^/     /'
			[ $seen -eq 0 ] && tail -20 "$log" | sed 's/^/     /'
		fi
	done
	# a binary left over from a test source that is gone is not counted
	check_floor "$checks" unit-checks
}

# ---------------------------------------------------------------- fuzzing
# each libFuzzer target runs briefly over its seed corpus; a crash fails it
run_fuzz() {
	local fuzz_s=${FUZZ_SECONDS:-5} t ran=0
	say "== fuzz targets (${fuzz_s}s each, make -C fuzz)"
	if ! make --no-print-directory -C fuzz >"$logdir/fuzz-build.log" 2>&1; then
		bad "fuzz build"
		tail -20 "$logdir/fuzz-build.log" | sed 's/^/     /'
		return
	fi
	for t in $(sed -nE 's/^TARGETS[[:space:]]*[:?]?=[[:space:]]*//p' fuzz/Makefile); do
		ran=$((ran + 1))
		if make --no-print-directory -C fuzz "run-$t" FUZZ_SECONDS="$fuzz_s" >"$logdir/fuzz-$t.log" 2>&1 &&
			grep -qE 'Done [0-9]+ runs' "$logdir/fuzz-$t.log"; then
			passed=$((passed + 1))
			say "   fuzz_$t: ok ($(grep -oE 'Done [0-9]+ runs' "$logdir/fuzz-$t.log" | tail -1))"
		else
			failed=$((failed + 1))
			say "   fuzz_$t: FAILED"
			grep -E 'ERROR|SUMMARY|crash-|runtime error' "$logdir/fuzz-$t.log" | head -20 | sed 's/^/     /'
		fi
	done
	check_floor "$ran" fuzz-targets
}

# ---------------------------------------------------------------- integration
# One pytest run: JUnit XML is the record (pytest's own summary line is for
# people).  Verdicts: no report, or a report that disagrees with the exit
# status, is a failure of the run itself.
# pytest_exec label bindir show extra-args...: one pytest run, its output in
# $logdir/label.log (and on stdout when show is 1), its exit status in
# $logdir/label.rc
pytest_exec() {
	local label=$1 bindir=$2 show=$3
	shift 3
	local py=/usr/bin/python3 xml="$logdir/$label.xml" itlog="$logdir/$label.log" rc
	# Debian's python3 with Debian's packages: nothing from another interpreter's setup
	set -- env -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP -u BROKER_PORT -u DATABASE_URL \
		PYTHONDONTWRITEBYTECODE=1 MESHBROKER_BIN="$bindir" \
		timeout --kill-after=15 "${IT_TIMEOUT:-2700}" \
		"$py" -m pytest -q -p no:cacheprovider -rfEs --durations=5 --color=no \
		--junitxml="$xml" -o junit_family=xunit2 "$@" ${PYTEST_ARGS:-} $itdir
	if [ "$show" = 1 ]; then
		"$@" 2>&1 | tee "$itlog"
		rc=${PIPESTATUS[0]}
	else
		"$@" >"$itlog" 2>&1
		rc=$?
	fi
	echo "$rc" >"$logdir/$label.rc"
}

# pytest_verdict label floor-name: count what pytest_exec left
pytest_verdict() {
	local label=$1 fl=$2
	local py=/usr/bin/python3 xml="$logdir/$label.xml" itlog="$logdir/$label.log"
	local rc
	rc=$(cat "$logdir/$label.rc" 2>/dev/null || echo 255)
	local counts
	counts=$("$py" - "$xml" <<-'EOF' 2>/dev/null
		import sys, xml.etree.ElementTree as ET
		root = ET.parse(sys.argv[1]).getroot()
		suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
		t = sum(int(s.get("tests", 0)) for s in suites)
		f = sum(int(s.get("failures", 0)) for s in suites)
		e = sum(int(s.get("errors", 0)) for s in suites)
		k = sum(int(s.get("skipped", 0)) for s in suites)
		print(t, f, e, k)
	EOF
	)
	if [ -z "$counts" ]; then
		bad "$label: pytest exited $rc and left no JUnit report (killed, timed out, or a test ended the process)"
		return
	fi
	local t f e k
	read -r t f e k <<<"$counts"
	local p=$((t - f - e - k))
	[ $p -lt 0 ] && p=0
	local nbad=$((f + e))
	passed=$((passed + p))
	failed=$((failed + nbad))
	skipped=$((skipped + k))
	local desel
	desel=$(grep -oE '[0-9]+ deselected' "$itlog" | tail -1)
	say "   $label: $p passed, $nbad failed, $k skipped${desel:+, $desel} (pytest exit $rc)"
	case $rc in
	0) [ $nbad -eq 0 ] || bad "$label: pytest exited 0 but its report has $nbad failures" ;;
	1) [ $nbad -gt 0 ] || bad "$label: pytest exited 1 without a failure in its report" ;;
	*) bad "$label: pytest exited $rc (interrupted, internal error, usage error, no tests, or timeout)" ;;
	esac
	check_floor "$p" "$fl"
}

# One pytest run: JUnit XML is the record (pytest's own summary line is for
# people).  Verdicts: no report, or a report that disagrees with the exit
# status, is a failure of the run itself.
run_pytest() { # label bindir floor-name extra-args...
	local label=$1 bindir=$2 fl=$3
	shift 3
	say "== $label (tests/integration against $bindir)"
	if [ ! -x "$bindir/meshbroker-worker" ]; then
		bad "$label: $bindir/meshbroker-worker is not built"
		return
	fi
	pytest_exec "$label" "$bindir" 1 "$@"
	pytest_verdict "$label" "$fl"
}

# the sanitizer's settings for the asan part: any report ends the process
# with a message in the broker's log, which the fixtures scan
asan_env() {
	ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:log_exe_name=1:${ASAN_EXTRA:-}" \
		UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" MESHBROKER_SANITIZED=1 "$@"
}

# Both integration parts at once (IT_PARALLEL=1, the default when both run):
# each pytest starts its own PostgreSQL and brokers on free ports under its
# own directories, and a broker's fixtures look only at its own processes,
# so the two runs share nothing but the CPU; each one's output is printed
# whole when both are done, then counted as in a serial run.
run_both() {
	local bin=${MESHBROKER_BIN:-$top/build/bin} asan=${ASAN_BIN:-$top/build/asan/bin} l
	say "== integration and asan-integration at once (IT_PARALLEL=1; each one's output follows when both ended)"
	for l in "$bin" "$asan"; do
		if [ ! -x "$l/meshbroker-worker" ]; then
			bad "$l/meshbroker-worker is not built"
			return
		fi
	done
	pytest_exec integration "$bin" 0 &
	local p1=$!
	asan_env pytest_exec asan-integration "$asan" 0 &
	local p2=$!
	wait "$p1" "$p2"
	say "== integration (tests/integration against $bin)"
	cat "$logdir/integration.log"
	pytest_verdict integration integration
	say "== asan-integration (tests/integration against $asan)"
	cat "$logdir/asan-integration.log"
	pytest_verdict asan-integration asan-integration
}

run_integration() {
	run_pytest integration "${MESHBROKER_BIN:-$top/build/bin}" integration
}

run_asan() {
	local asan=${ASAN_BIN:-$top/build/asan/bin}
	if [ "$asan" = none ]; then
		say "== asan-integration: skipped (ASAN_BIN=none)"
		check_floor 0 asan-integration
	else
		# workers, acceptor and meshctl with ASan+UBSan; tests marked
		# unsanitized are reported as skipped (conftest.py)
		asan_env run_pytest asan-integration "$asan" asan-integration
	fi
}

if [ -n "${REPEAT_UNIT:-}${REPEAT_IT:-}" ]; then
	[ -n "${PARTS:-}" ] || parts=" unit integration "
	rounds_unit=${REPEAT_UNIT:-0} rounds_it=${REPEAT_IT:-0}
	case "$rounds_unit$rounds_it" in *[!0-9]*) bad "REPEAT_UNIT/REPEAT_IT must be numbers"; rounds_unit=0 rounds_it=0 ;; esac
	case $parts in *" unit "*) ;; *) rounds_unit=0 ;; esac
	stop=""
	quiet_pass=1
	for ((round = 1; round <= rounds_unit; round++)); do
		before=$failed
		run_units
		if [ $failed -ne $before ]; then
			stop="unit round $round of $rounds_unit"
			break
		fi
		say "== unit tests: round $round of $rounds_unit green"
	done
	quiet_pass=
	for ((round = 1; round <= rounds_it && ${#stop} == 0; round++)); do
		before=$failed
		say "== integration round $round of $rounds_it"
		case $parts in *" integration "*) run_integration ;; esac
		case $parts in *" asan "*) run_asan ;; esac
		[ $failed -ne $before ] && stop="integration round $round of $rounds_it"
	done
	[ -n "$stop" ] && say "stopped at the first failure: $stop"
else
	case $parts in *" callgraph "*) run_callgraph ;; esac
	case $parts in *" unit "*) run_units ;; esac
	case $parts in *" fuzz "*) run_fuzz ;; esac
	it=0 as=0
	case $parts in *" integration "*) it=1 ;; esac
	case $parts in *" asan "*) as=1 ;; esac
	if [ $it = 1 ] && [ $as = 1 ] && [ "${IT_PARALLEL:-1}" = 1 ] && [ "${ASAN_BIN:-}" != none ]; then
		run_both
	else
		[ $it = 1 ] && run_integration
		[ $as = 1 ] && run_asan
	fi
fi

if [ "$skipped" -gt 0 ]; then
	say "$passed passed, $failed failed, $skipped skipped"
else
	say "$passed passed, $failed failed"
fi
[ $failed -eq 0 ]
