# Thin wrapper around CMake so that a fresh Debian 12 clone needs one command.
#   make          build into build/ (binary build/lqs-hookd)
#   make test     install missing packages, build, run every test (plain + ASan/UBSan)
#   make demo     run the main job end to end against the bundled mock LogQS
#   make demo-objects  the step before LogQS: S3 object events to a log and a workflow
#   make install  install (honours PREFIX and DESTDIR)

PREFIX   ?= /usr/local
BUILD    ?= build
ASAN     ?= build-asan
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

# Debian packages needed to build, test and demo. Checked one by one so that a
# machine that already has them never needs root.
DEB_PACKAGES = build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev \
	libcurl4-openssl-dev uuid-dev libsqlite3-dev libpq-dev postgresql libinih-dev check libsubunit-dev \
	libsystemd-dev libssl-dev libgnutls28-dev openssl curl jq sqlite3 procps iproute2 clang libclang-rt-14-dev systemd dpkg-dev file lintian binutils util-linux

CLANG    ?= build-clang
FUZZ     ?= build-fuzz
# Seconds each fuzzer runs: 50 s in CI (six fuzzers), a short smoke run elsewhere.
FUZZ_SECONDS ?= $(if $(CI),50,10)

.PHONY: all build deps promtool pydeps package fuzz bench test test-plain test-asan test-clang demo demo-objects install clean

all: build

# promtool (for the metrics test) comes out of Debian's prometheus package,
# unpacked into .tools/ rather than installed: installing it would also set
# up and start a Prometheus server on the machine.
PROMTOOL_DIR = .tools

deps: promtool pydeps
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

# moto's server mode (a real SQS for the tests) and boto3 (to set its queues
# up): there on these machines; where they are not, pip installs them, or
# Debian's packages when pip cannot.
pydeps:
	@if ! python3 -c 'import moto.server, boto3' 2>/dev/null; then \
	  echo "installing moto and boto3 for the SQS tests"; \
	  python3 -m pip install --quiet 'moto[server]' boto3 2>/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      --no-install-recommends python3-moto python3-boto3 python3-flask python3-flask-cors >/dev/null; }; \
	  python3 -c 'import moto.server, boto3' || { echo "moto and boto3 could not be installed"; exit 1; }; \
	fi
	@# the TLS tests make their certificates with it (moto depends on it too)
	@python3 -c 'import cryptography' 2>/dev/null || { \
	  python3 -m pip install --quiet cryptography 2>/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      --no-install-recommends python3-cryptography >/dev/null; }; \
	  python3 -c 'import cryptography' || { echo "python3-cryptography could not be installed"; exit 1; }; }

promtool:
	@if ! command -v promtool >/dev/null && [ ! -x $(PROMTOOL_DIR)/usr/bin/promtool ]; then \
	  echo "fetching promtool from Debian's prometheus package into $(PROMTOOL_DIR)/"; \
	  mkdir -p $(PROMTOOL_DIR) && cd $(PROMTOOL_DIR) && \
	  { apt-get download prometheus >/dev/null 2>&1 || \
	    { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; $$SUDO apt-get update -qq && apt-get download prometheus >/dev/null; }; } && \
	  dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb usr/bin/prometheus; \
	fi

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

test: deps
	$(MAKE) test-plain
	$(MAKE) test-asan
	$(MAKE) test-clang
	@$(MAKE) fuzz; ./scripts/test-summary.sh $$? $(BUILD) $(ASAN) $(CLANG)

test-plain:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	./scripts/check-test-output.sh $(BUILD)

test-asan:
	cmake -S . -B $(ASAN) -DLQS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build $(ASAN) -j $(JOBS)
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)
	./scripts/check-test-output.sh $(ASAN)

# The warning set is enforced on clang too; its unit tests run as a smoke check.
test-clang:
	CC=clang cmake -S . -B $(CLANG) $(CMAKE_FLAGS)
	cmake --build $(CLANG) -j $(JOBS)
	cd $(CLANG) && ctest --output-on-failure -R '^unit$$'

# libFuzzer harnesses (clang, ASan+UBSan), each for FUZZ_SECONDS.
fuzz:
	CC=clang cmake -S . -B $(FUZZ) -DLQS_FUZZ=ON -DLQS_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(FUZZ) -j $(JOBS)
	./scripts/fuzz.sh $(FUZZ) $(FUZZ_SECONDS)

demo: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)
	./scripts/demo.sh $(BUILD)
	@printf '\nNext, the step before LogQS (S3 object events to a LogQS log and a REST workflow): make demo-objects\n'

demo-objects: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)
	./scripts/demo-objects.sh $(BUILD)

# A .deb for /usr (configuration under /etc), built in its own tree.
PKG ?= build-pkg
package: deps
	cmake -S . -B $(PKG) -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=Release -DLQS_BUILD_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(PKG) -j $(JOBS)
	cd $(PKG) && cpack -G DEB
	@ls -1 $(PKG)/*.deb

# Benchmarks (not part of make test): a Release build, wrk and Debian's
# Python packages for the baselines; results appended to bench/RESULTS.md.
BENCH_BUILD ?= build-bench
BENCH_PACKAGES = wrk python3-fastapi python3-uvicorn python3-requests linux-perf
bench: deps
	@missing=""; for p in $(BENCH_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release -DLQS_BUILD_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(BENCH_BUILD) -j $(JOBS)
	./bench/run.sh $(BENCH_BUILD)

install: deps
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN) $(CLANG) $(PKG) $(FUZZ) $(BENCH_BUILD)
