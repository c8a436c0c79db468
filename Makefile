# vxmon: the two commands in the README are `make demo` and `make test`.
# Both install what they need (scripts/setup.sh) and build what they need.

SWIFT ?= swift
CONFIG ?= release
BIN := .build/$(CONFIG)/vxmon
BENCH_EVENTS ?= 1000000
BENCH_FILE := .build/bench/bulk-$(BENCH_EVENTS).vxrec

.PHONY: all build bpf setup demo test bench fuzz asan tsan soak clean

all: build

setup:
	@scripts/setup.sh

bpf:
	$(MAKE) -C bpf

# One build command for the datapath and the Swift code.
build: bpf
	$(SWIFT) build -c $(CONFIG)

# Main job: bring the lab up, drive cross-node traffic, show `vxmon -vv` live, tear the lab down.
demo: setup build
	@scripts/demo.sh $(BIN)

# The whole test suite (privileged lab tests included when run as root).
test: setup bpf
	$(SWIFT) test

# Replay throughput and peak RSS per output mode on a generated 1M-event recording.
bench: build
	@mkdir -p .build/bench
	@test -f $(BENCH_FILE) || python3 tools/gen_bulk.py $(BENCH_EVENTS) $(BENCH_FILE) --seed 1
	.build/$(CONFIG)/vxmon-bench $(BENCH_FILE)

# libFuzzer + ASan over every parser of outside bytes, FUZZ_SECONDS (default 60) per target;
# `FUZZ_SECONDS=3600 FUZZ_JOBS=2 make fuzz` runs longer and in parallel (see README "Hostile input").
fuzz: setup
	@scripts/fuzz.sh

# The lab under a UDP flood for SOAK_SECONDS (default 60) with the monitor rendering -vv to a file:
# exact accounting (written = received, not reserved = lost) and peak RSS under 64 MB, or exit 1.
SOAK_SECONDS ?= 60
soak: setup bpf
	$(SWIFT) build --product vxmon
	.build/debug/vxmon lab soak --lab vxsoak --seconds $(SOAK_SECONDS)

# The test suite under AddressSanitizer / ThreadSanitizer (own build folders).
asan: setup bpf
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --scratch-path .build-asan --sanitize=address

tsan: setup bpf
	$(SWIFT) test --scratch-path .build-tsan --sanitize=thread

clean:
	$(MAKE) -C bpf clean
	$(SWIFT) package clean
