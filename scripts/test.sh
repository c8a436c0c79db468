#!/usr/bin/env bash
# Runs the test suite (`make test`): swift test with its output streaming as is, then one total line
# as the very last line. The exit status is swift test's.
#   scripts/test.sh [SWIFT-TEST-ARGUMENTS...]     e.g. scripts/test.sh --filter VxrecTests
# The tests use Swift Testing only (no XCTest), so XCTest's "Executed 0 tests" is switched off.
set -uo pipefail

swift=${SWIFT:-swift}
log=$(mktemp "${TMPDIR:-/tmp}/vxmon-test.XXXXXX")
trap 'rm -f "$log"' EXIT

start=$(date +%s.%N)
# Swift Testing reports on stdout (kept in $log to count); the build's progress goes to stderr, untouched.
"$swift" test --disable-xctest "$@" | tee "$log"
status=${PIPESTATUS[0]}
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

# Swift Testing's lines on Linux (colour codes removed, if any):
#   ✔ Test name() passed after 0.001 seconds.          ➜ Test name() skipped: "reason"
#   ✘ Test name() failed after 0.001 seconds with 1 issue.
#   ✔ Test run with 242 tests in 51 suites passed after 88.3 seconds.   (the closing line)
# Tests of a skipped suite are each reported skipped; a parameterized test is one test.
sed -E $'s/\x1b\\[[0-9;]*m//g' "$log" | awk -v status="$status" -v elapsed="$elapsed" '
	/^[^ ]+ Test run with [0-9]+ tests? in [0-9]+ suites? (passed|failed) after / {
		total = $5; suites = $8; ran = 1
		for (i = 1; i <= NF; i++) if ($i == "after") seconds = $(i + 1)
		next
	}
	/^[^ ]+ Test run with [0-9]+ tests? (passed|failed) after / {   # no suites
		total = $5; suites = 0; ran = 1
		for (i = 1; i <= NF; i++) if ($i == "after") seconds = $(i + 1)
		next
	}
	# By the leading symbol too: a display name may hold "skipped" or "passed after" (◇ is "started").
	/^✔ Test case / || /^✘ Test case / { next }
	/^✔ Test .* passed after [0-9.]+ seconds?/ { passed++; next }
	/^✘ Test .* failed after [0-9.]+ seconds?/ { failed++; next }
	/^➜ Test .* skipped/ { skipped++; next }
	END {
		if (!ran) {
			printf "make test: no test results to count (swift test exited %d before its closing line: build failure or crash; see above) (%s s)\n", status, elapsed
			exit
		}
		line = sprintf("make test: %d test%s in %d suite%s: %d passed, %d failed, %d skipped", total, total == 1 ? "" : "s", suites, suites == 1 ? "" : "s", passed, failed, skipped)
		if (passed + failed + skipped != total)
			line = line sprintf(" (%d tests not accounted for by per-test lines)", total - passed - failed - skipped)
		if (status != 0 && failed == 0) line = line sprintf(", swift test exited %d", status)
		sub(/\.$/, "", seconds)
		printf "%s (tests %s s, build and tests %s s)\n", line, seconds, elapsed
	}'
exit "$status"
