# Makefile - a thin wrapper: the commands a user types, each delegating to CMake and
# the scripts in scripts/ and tests/. Every target installs what it needs first.
#
#   make demo     servers under load in C, Python and Lua (scripts/demo.sh)
#   make test     the whole suite: format, header, plain, ASan+UBSan, TSan builds
#   make bench    the benchmarks side by side with their peers (bench/run.sh)
#   make stress   the stress tests at their full counts (not part of make test)
#   make fuzz     the codec fuzz targets, 10 minutes each (FUZZ_SECONDS), long mode
#
# Variables: BUILD (build directory, default build; the sanitizer builds go to
# $(BUILD)-asan and $(BUILD)-tsan), JOBS (default 2), STAGES (a subset of the
# test stages, see tests/run_all.sh).

BUILD ?= build
JOBS ?= 2
export BUILD JOBS

.PHONY: all deps build demo test test-plain test-asan test-tsan check-format format fuzz \
	check-header check-readme bench stress clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@scripts/build.sh $(BUILD)

demo: deps
	@scripts/demo.sh

test: deps
	@tests/run_all.sh

test-plain: deps
	@STAGES=plain tests/run_all.sh

test-asan: deps
	@STAGES=asan tests/run_all.sh

test-tsan: deps
	@STAGES=tsan tests/run_all.sh

check-format: deps
	@scripts/check-format.sh

format: deps
	@scripts/check-format.sh --fix

check-header: deps
	@scripts/check-header.sh

check-readme:
	@scripts/check-readme.sh

bench: deps
	@test -x bench/run.sh || { echo "bench/run.sh is not written yet"; exit 1; }
	@bench/run.sh

stress: deps
	@scripts/build.sh $(BUILD) "" -- --target stress

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan

# The codec fuzz targets, long (FUZZ_SECONDS per target, default 600), built for
# speed on a corpus kept between runs, then replayed under ASan; prints the
# executions of each and their total over every run (tests/fuzz/run.sh).
fuzz: deps
	@tests/fuzz/run.sh $${FUZZ_SECONDS:-600} long
