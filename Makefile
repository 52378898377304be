# The two commands: `make demo` runs tapmirror on a bundled capture and
# `make check` runs every test. Both install missing system packages
# first (scripts/deps.sh says what it installs); `make` only builds, and
# names what is missing and `make deps` instead of installing it. The
# build itself is CMake with presets; this file only drives it.

PRESET ?= $(if $(filter true,$(CI)),ci,default)
BUILD := build/$(PRESET)
JOBS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
CTEST_ARGS ?=

.PHONY: all build deps check demo install memcheck asan fuzz bench load soak \
	cluster-test clean

VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full \
	--show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect

all: build

# The build packages (compiler, CMake, pkg-config, libuv, libpcap, cJSON).
deps:
	@scripts/deps.sh build

# Configures and builds a preset: $(1) the preset, $(2) cache settings.
# The default build configures the tests only when cmocka and Python 3 are
# there (TAPMIRROR_TESTS=AUTO); targets that run tests ask for them (ON),
# so a missing test package fails loudly at configure time.
define cmake_build
	@cmake --preset $(1) $(2) >/dev/null
	@cmake --build --preset $(1) -j $(JOBS)
endef
TESTS_ON := -DTAPMIRROR_TESTS=ON

# Building never runs the package manager: a missing build package is
# reported with the command that installs it.
build:
	@scripts/deps.sh build --check-only
	$(call cmake_build,$(PRESET))

# Every test: unit tests of the pure modules, fuzz regression corpora and
# end-to-end tests of the real binary.
check:
	@scripts/deps.sh check
	$(call cmake_build,$(PRESET),$(TESTS_ON))
	@ctest --preset $(PRESET) -j $(JOBS) $(CTEST_ARGS)

# The whole suite built with AddressSanitizer and UBSan (clang).
asan:
	@scripts/deps.sh check
	@cmake --preset asan $(TESTS_ON) >/dev/null
	@cmake --build --preset asan -j $(JOBS)
	@ctest --preset asan -j $(JOBS) $(CTEST_ARGS)

# The end-to-end tests with tapmirror under valgrind memcheck: any error
# or leak makes tapmirror exit 99 and its test fail.
memcheck:
	@scripts/deps.sh check
	@cmake --preset valgrind $(TESTS_ON) >/dev/null
	@cmake --build --preset valgrind -j $(JOBS)
	@TAPMIRROR_WRAPPER="$(VALGRIND)" ctest --preset valgrind -L "e2e|kube" \
		-E kube.fakekube $(CTEST_ARGS)

# Each libFuzzer target for FUZZ_SECONDS (clang, ASan + UBSan); new inputs
# stay in build/fuzz-work. FUZZ_JOBS=2 runs two at a time.
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh check
	@fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The benchmark suite (docs/BENCHMARKS.md): W1-W4 replays against the bare
# libpcap read loop and tcpflow, live latency, a stuck target and idle-flow
# memory. BENCH_ARGS="--quick" for a short run, "--only W1,W3" for a subset.
BENCH_ARGS ?=
bench:
	@scripts/deps.sh bench
	$(call cmake_build,$(PRESET),$(TESTS_ON))
	@python3 bench/run.py --tapmirror $(BUILD)/tapmirror \
		--tmgen $(BUILD)/tools/tmgen --tmsink $(BUILD)/tools/tmsink \
		--pcapread $(BUILD)/bench/bench_pcapread $(BENCH_ARGS)

# 100,000 concurrent flows and 1,000,000 flows in one run: memory flat.
load:
	@scripts/deps.sh check
	$(call cmake_build,$(PRESET),$(TESTS_ON))
	@python3 bench/load.py --tapmirror $(BUILD)/tapmirror \
		--tmgen $(BUILD)/tools/tmgen --tmsink $(BUILD)/tools/tmsink

# A steady-rate soak (default 30 minutes): RSS and descriptors must not grow.
SOAK_MINUTES ?= 30
soak:
	@scripts/deps.sh check
	$(call cmake_build,$(PRESET),$(TESTS_ON))
	@python3 bench/soak.py --tapmirror $(BUILD)/tapmirror \
		--tmsink $(BUILD)/tools/tmsink --minutes $(SOAK_MINUTES)

# The build packages and python3 (the demo service), installed if missing.
demo:
	@scripts/deps.sh demo
	$(call cmake_build,$(PRESET))
	@scripts/demo.sh $(BUILD)/tapmirror

# A smoke test against a real cluster (tests/cluster/smoke.py): an HTTP
# Deployment in a namespace of its own, mirrored with --all-pods to a local
# receiver while a client pod sends requests through its Service; the
# namespace is deleted on every exit path. CONTEXT names the kubeconfig
# context and is taken from the command line only: an exported CONTEXT
# (or the current context, which may be production) is never used. No
# CONTEXT, or a cluster that does not answer: skipped with the reason
# (smoke.py exits 77; make reports success).
CLUSTER_ARGS ?=
cluster-test: build
	$(if $(filter environment%,$(origin CONTEXT)),@echo "cluster-test: CONTEXT from the environment is ignored; name it: make cluster-test CONTEXT=...")
	@python3 tests/cluster/smoke.py --tapmirror $(BUILD)/tapmirror \
		$(if $(filter command line,$(origin CONTEXT)),--context '$(CONTEXT)') \
		$(if $(KUBECTL),--kubectl '$(KUBECTL)') \
		$(if $(SERVER_IMAGE),--server-image '$(SERVER_IMAGE)') \
		$(if $(SERVER_PORT),--server-port '$(SERVER_PORT)') \
		$(if $(SERVER_COMMAND),--server-command '$(SERVER_COMMAND)') \
		$(if $(CLIENT_IMAGE),--client-image '$(CLIENT_IMAGE)') \
		$(if $(TAP_IMAGE),--tap-image '$(TAP_IMAGE)') \
		$(if $(CLUSTER_TIMEOUT),--timeout '$(CLUSTER_TIMEOUT)') \
		$(CLUSTER_ARGS); rc=$$?; [ $$rc -eq 77 ] && exit 0; exit $$rc

install: build
	@cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX))

clean:
	rm -rf build
