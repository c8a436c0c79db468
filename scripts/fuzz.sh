#!/usr/bin/env bash
# Fuzzes every parser of outside bytes with libFuzzer + AddressSanitizer (see Sources/vxmon-fuzz).
#   scripts/fuzz.sh [TARGET...]        targets: decoder vxrec agent filter journey (default: all)
#   FUZZ_SECONDS=N (default 60) per target; FUZZ_JOBS=N parallel jobs per target (default 1).
# Corpora start from the test fixtures and grow in .build-fuzz/corpus/<target>/; a crash is written to
# fuzz/crashes/ and fails the run (turn it into a regression input in fuzz/regressions/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
targets=("$@")
((${#targets[@]})) || targets=(decoder vxrec agent filter journey)
rt=$(dirname "$(command -v swift)")/../lib/clang
rt=$(ls -d "$rt"/*/lib/linux | head -n1)
swift build --scratch-path .build-fuzz -c release --product vxmon-fuzz \
	-Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
	-Xswiftc -DFUZZING -Xlinker "$rt/libclang_rt.fuzzer_no_main-x86_64.a" -Xlinker -lstdc++ >&2
bin=.build-fuzz/release/vxmon-fuzz
mkdir -p fuzz/crashes
python3 scripts/fuzz_seeds.py .build-fuzz/corpus
status=0
passed=0
failed=0
for t in "${targets[@]}"; do
	mkdir -p ".build-fuzz/corpus/$t"
	log=".build-fuzz/$t.log"
	echo "fuzz: $t for ${seconds}s" >&2
	set +e
	parallel=()
	((jobs > 1)) && parallel=(-fork="$jobs")
	VXMON_FUZZ_TARGET=$t "$bin" ".build-fuzz/corpus/$t" "fuzz/regressions/$t" -max_total_time="$seconds" \
		"${parallel[@]}" -artifact_prefix="fuzz/crashes/$t-" -max_len=65536 -rss_limit_mb=2048 \
		-print_final_stats=1 >"$log" 2>&1
	rc=$?
	set -e
	execs=$(grep -h "stat::number_of_executed_units" "$log" | awk '{s+=$2} END{print s+0}')
	((execs > 0)) || execs=$(grep -ho "fuzz: [0-9]* execs\|#[0-9]*" "$log" | tail -n1 | tr -dc 0-9)
	echo "fuzz: $t: exit $rc, $execs executions, corpus $(ls ".build-fuzz/corpus/$t" | wc -l) inputs" >&2
	if ((rc != 0)); then
		grep -E "ERROR|SUMMARY|Test unit written" "$log" >&2 || tail -20 "$log" >&2
		status=1
		failed=$((failed + 1))
	else
		passed=$((passed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
exit $status
