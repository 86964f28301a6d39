# regwatch — build, test, benchmark and demo. Every target installs the Debian packages it needs first.
SHELL := /bin/bash
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Build: libzmq (transport), libcurl (probes), SQLite (store).
# Tests: socat (a relay to freeze; a fake web page), docker-registry + apache2-utils + openssl + curl (real registries,
# htpasswd, certificates, pushing a test image), python3 (the fault-injecting proxy in front of a registry; its tomllib
# and python3-yaml are the reference readers the YAML and TOML parsers are checked against),
# iproute2 + nftables + dnsmasq-base (test hosts in network namespaces: firewall DROP, NXDOMAIN), docker.io (a real
# dockerd in a namespace: its effective mirrors and pulls), containerd + skopeo (real clients of the containerd
# certs.d and registries.conf that failover writes), prometheus (promtool checks the /metrics text),
# prometheus-alertmanager (a real receiver of outage alerts).
# Bench: prometheus-blackbox-exporter (the peer measured side by side).
DEB_PACKAGES := libzmq3-dev libcurl4-openssl-dev libsqlite3-dev socat docker-registry apache2-utils openssl curl python3 python3-yaml \
  iproute2 nftables dnsmasq-base docker.io containerd skopeo umoci binutils prometheus prometheus-alertmanager prometheus-blackbox-exporter \
  dpkg-dev chrpath lintian systemd systemd-container debootstrap
# Kubernetes manifests: python3-venv (kubernetes-validate and checkov from PyPI, in a venv).
DEB_PACKAGES += python3-venv
# The dashboard in a real browser: chromium (headless screenshots and --dump-dom), a font for its text;
# python3-websocket (websocket-client) is how Tests/EndToEndTests/browser.py drives that Chromium over the DevTools
# protocol: one process for every shot, full-page screenshots, the DOM it built and layout facts.
DEB_PACKAGES += chromium fonts-dejavu-core python3-websocket
# PostgreSQL, the store several aggregators share: tests start throwaway clusters of Debian's server.
DEB_PACKAGES += postgresql
# make bench-fleet: python3-zmq (the connect storm's DEALER sockets); sqlite3 (the crash series checks the
# database's integrity after every kill, in make test and make bench-fleet).
DEB_PACKAGES += python3-zmq sqlite3

# Release binaries carry the Swift runtime linked in (no Swift libraries needed on the host or in an image);
# the agent then loads no Foundation beyond FoundationEssentials, and no ICU. Linked by lld with: the agent's
# hot functions first (Sources/regwatch-agent/hot-functions.order, scripts/agent-order.sh; function sections
# make each one movable), so the code it runs shares few pages; relative relocations packed (DT_RELR, glibc
# 2.36+); no dynamic symbol export (nothing loads code into these programs). Measured in `make bench`.
RELEASE_FLAGS := --static-swift-stdlib -Xswiftc -Xfrontend -Xswiftc -function-sections -Xswiftc -use-ld=lld \
  -Xlinker --symbol-ordering-file=$(CURDIR)/Sources/regwatch-agent/hot-functions.order -Xlinker --no-warn-symbol-ordering \
  -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic
RELEASE := $(SWIFT) build -c release $(RELEASE_FLAGS)

.PHONY: deps build release image agent-order test test-unprivileged bench demo demo-ha clean

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else echo "deps: all present"; fi

build: deps
	$(SWIFT) build

release: deps
	$(RELEASE)

# OCI image archives in dist/, built without a container engine (scripts/build-image.sh; docs/install.md).
image: deps
	$(RELEASE) --product regwatch-agent
	$(RELEASE) --product regwatch-aggregator
	bash scripts/build-image.sh .build/release dist

# The end-to-end suites tagged `.root` make network namespaces, nftables rules and bind mounts, and run
# dockerd: they need root. `make test-unprivileged` runs everything else (docs/development.md).
ROOT_SUITES := CorrelationEndToEndTests|DashboardBrowserTests|ZeroConfigTests|ImageTests|DockerEngineTests|DockerPullEventsTests|FailoverEndToEndTests|FailoverSafetyTests|FailoverConvergenceTests|NetworkFaultTests|HAFailureTests

test: deps
	@[ "$$(id -u)" = 0 ] || { echo "make test: needs root (network namespaces, nftables, mounts, dockerd); run it as root, or 'make test-unprivileged' for the rest (docs/development.md)" >&2; exit 2; }
	$(SWIFT) build --build-tests
	$(MAKE) image
	$(SWIFT) test --skip-build
	$(MAKE) test-kubernetes test-packages test-prometheus fuzz-smoke

test-unprivileged: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip '$(ROOT_SUITES)'

bench: deps
	$(RELEASE) --product regwatch-bench
	$(RELEASE) --product regwatch-probe-bench
	$(RELEASE) --product regwatch-agent
	$(RELEASE) --product regwatch-aggregator
	$(RELEASE) --product regwatch-correlation-bench
	$(RELEASE) --product regwatch-ingest-bench
	$(RELEASE) --product regwatch-ha-bench
	$(RELEASE) --product regwatch-fleetsim
	.build/release/regwatch-bench
	.build/release/regwatch-probe-bench
	bash Benchmarks/agent-footprint.sh .build/release/regwatch-agent .build/release/regwatch-aggregator
	.build/release/regwatch-correlation-bench
	.build/release/regwatch-ingest-bench --aggregator .build/release/regwatch-aggregator
	.build/release/regwatch-ha-bench --aggregator .build/release/regwatch-aggregator --fleetsim .build/release/regwatch-fleetsim

# Fuzzing with libFuzzer and ASan, both shipped in the Swift toolchain (Fuzz/, scripts/fuzz.sh, docs/development.md):
# `make fuzz` runs every target for FUZZ_SECONDS (default 10 minutes each, one at a time); `fuzz-smoke`, part
# of `make test`, runs them all within 60 s (8 targets x 5 s plus start-up, the build not counted). Exits non-zero on a crash.
FUZZ_SECONDS ?= 600
.PHONY: fuzz fuzz-smoke
fuzz: deps
	SWIFT=$(SWIFT) bash scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz-smoke: deps
	SWIFT=$(SWIFT) bash scripts/fuzz.sh 5

# Fleet scale: a mass first connect against a real aggregator, with libzmq's default accept backlog as the
# reference (Benchmarks/connect-storm/run.sh; python3-zmq drives the DEALERs); then regwatch-fleetsim's
# scenarios with 10,000 emulated agents: enrollment, steady state, failover fan-out, reconnect storm, the largest
# fleet under half a core and the 200-kill crash series (Benchmarks/fleet/run.sh; figures in docs/benchmarks.md).
.PHONY: bench-fleet
bench-fleet: deps
	$(RELEASE) --product regwatch-aggregator
	$(RELEASE) --product regwatch-fleetsim
	bash Benchmarks/connect-storm/run.sh .build/release/regwatch-aggregator 1000 3000
	bash Benchmarks/fleet/run.sh .build/release/regwatch-aggregator .build/release/regwatch-fleetsim 10000

# Regenerate the agent's hot-function order (needs valgrind); commit the result.
agent-order: release
	bash scripts/agent-order.sh

demo: deps build
	bash scripts/demo.sh

# Three aggregators on a throwaway PostgreSQL cluster, the leader killed during a failover (docs/ha.md).
demo-ha: deps build
	bash scripts/demo-ha.sh

# deploy/kubernetes rendered with kubectl kustomize (kubectl 1.32+, preinstalled on this machine kind) and
# checked offline: kubernetes-validate --strict, checkov, configs against mounts (scripts/test-kubernetes.sh).
.PHONY: test-kubernetes
test-kubernetes: deps
	bash scripts/test-kubernetes.sh

# Prometheus alerting rules in deploy/prometheus: promtool check rules and the promtool unit tests in
# deploy/prometheus/tests, plus the metric names the rules use (scripts/test-prometheus.sh [FILE] lists them).
.PHONY: test-prometheus
test-prometheus: deps
	bash scripts/test-prometheus.sh

# Debian packages of the release binaries in dist/ (scripts/build-deb.sh: dpkg-dev, binutils, chrpath), and
# their test (scripts/test-packages.sh, as root: systemd-analyze from systemd, lintian, install and purge in a
# clean Debian 12 root made by debootstrap, booted with systemd-nspawn from systemd-container).
.PHONY: package test-packages
package: deps
	$(RELEASE) --product regwatch-agent
	$(RELEASE) --product regwatch-aggregator
	bash scripts/build-deb.sh

test-packages: package
	bash scripts/test-packages.sh

clean:
	rm -rf .build demo-run
