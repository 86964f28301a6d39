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
  iproute2 nftables dnsmasq-base docker.io containerd skopeo prometheus prometheus-alertmanager prometheus-blackbox-exporter

.PHONY: deps build release test test-unprivileged bench demo clean

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
	$(SWIFT) build -c release

# The end-to-end suites tagged `.root` make network namespaces, nftables rules and bind mounts, and run
# dockerd: they need root. `make test-unprivileged` runs everything else (docs/development.md).
ROOT_SUITES := CorrelationEndToEndTests|DockerEngineTests|DockerPullEventsTests|FailoverEndToEndTests|FailoverSafetyTests|FailoverConvergenceTests|NetworkFaultTests

test: deps
	@[ "$$(id -u)" = 0 ] || { echo "make test: needs root (network namespaces, nftables, mounts, dockerd); run it as root, or 'make test-unprivileged' for the rest (docs/development.md)" >&2; exit 2; }
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

test-unprivileged: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip '$(ROOT_SUITES)'

bench: deps
	$(SWIFT) build -c release --product regwatch-bench
	$(SWIFT) build -c release --product regwatch-probe-bench
	$(SWIFT) build -c release --product regwatch-agent
	$(SWIFT) build -c release --product regwatch-aggregator
	$(SWIFT) build -c release --product regwatch-correlation-bench
	$(SWIFT) build -c release --product regwatch-ingest-bench
	.build/release/regwatch-bench
	.build/release/regwatch-probe-bench
	bash Benchmarks/agent-footprint.sh .build/release/regwatch-agent .build/release/regwatch-aggregator
	.build/release/regwatch-correlation-bench
	.build/release/regwatch-ingest-bench --aggregator .build/release/regwatch-aggregator

demo: deps build
	bash scripts/demo.sh

clean:
	rm -rf .build demo-run
