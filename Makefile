# vxmon: the two commands in the README are `make demo` and `make test`.
# Each installs what it needs (scripts/setup.sh demo|test) and builds what it needs: the demo builds the
# vxmon executable alone (no gRPC), in debug: a cold build of vxmon alone measured 26-50 s in debug and
# 47-91 s in release on 2 cores shared with other builds (2026-12-05), and debug shares .build/debug with
# `make test`. `make hubble` adds the Hubble observer servers (gRPC: ~3.5 min more, cold).

SWIFT ?= swift
CONFIG ?= release
BIN := .build/$(CONFIG)/vxmon
# What `make demo` and `make hubble` build (vxmon-hubble must sit beside vxmon for `vxmon lab up`).
DEMO_CONFIG ?= debug
DEMO_BIN := .build/$(DEMO_CONFIG)/vxmon
# Arguments for swift test, e.g. make test TEST_ARGS='--filter VxrecTests'
TEST_ARGS ?=
BENCH_EVENTS ?= 1000000
BENCH_FILE := .build/bench/bulk-$(BENCH_EVENTS).vxrec
# A million events of a million distinct flows: `vxmon stats` at its worst (counters, top flows).
DISTINCT_FILE := .build/bench/distinct-1000000.vxrec
# A million events of cross-node pings (five traces per packet, 64 in flight): `vxmon journey`.
JOURNEY_FILE := .build/bench/journeys-1000000.vxrec

.PHONY: all build bpf setup setup-demo setup-test vxmon hubble demo test bench fuzz asan tsan soak clean

all: build

# Everything (the test suite's tools included).
setup: setup-test

setup-demo:
	@scripts/setup.sh demo

setup-test:
	@scripts/setup.sh test

bpf:
	$(MAKE) -C bpf

# One build command for the datapath and all of the Swift code (gRPC included).
build: bpf
	$(SWIFT) build -c $(CONFIG)

# The vxmon executable alone: no gRPC, NIO or BoringSSL.
vxmon: bpf
	$(SWIFT) build -c $(DEMO_CONFIG) --product vxmon

# The Hubble observer servers (vxmon-hubble, gRPC), beside the demo's vxmon; `vxmon lab up` starts
# them, also on a lab that is already up.
hubble: setup-demo bpf
	$(SWIFT) build -c $(DEMO_CONFIG) --product vxmon
	$(SWIFT) build -c $(DEMO_CONFIG) --product vxmon-hubble

# Main job: bring the lab up, drive cross-node traffic, show `vxmon -vv` live, tear the lab down.
demo: setup-demo vxmon
	@scripts/demo.sh $(DEMO_BIN)

# The whole test suite (privileged lab tests included when run as root), every target built; ends with
# one total line (scripts/test.sh).
test: setup-test bpf
	@SWIFT=$(SWIFT) scripts/test.sh $(TEST_ARGS)

# Replay throughput and peak RSS per output mode on a generated 1M-event recording, `vxmon stats` on
# a million distinct flows, `vxmon journey` on a million events of pings, and the Hubble servers'
# ingestion rate (one thread) on the bulk file.
bench: build
	@mkdir -p .build/bench
	@test -f $(BENCH_FILE) || python3 tools/gen_bulk.py $(BENCH_EVENTS) $(BENCH_FILE) --seed 1
	.build/$(CONFIG)/vxmon-bench $(BENCH_FILE)
	@test -f $(DISTINCT_FILE) || python3 tools/gen_distinct_flows.py 1000000 $(DISTINCT_FILE)
	.build/$(CONFIG)/vxmon-bench $(DISTINCT_FILE) --stats
	@test -f $(JOURNEY_FILE) || python3 tools/gen_journeys.py 1000000 $(JOURNEY_FILE)
	.build/$(CONFIG)/vxmon-bench $(JOURNEY_FILE) --journey
	.build/$(CONFIG)/vxmon-hubble --bench-ingest $(BENCH_FILE) --rounds 3

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
