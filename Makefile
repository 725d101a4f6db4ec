# podid: the two commands a fresh machine needs are `make demo` and `make test`.
.PHONY: demo test deps lint unit bench

# The main job: podid's whole flow on one machine (demo/): the Azure stand-in, the
# webhook over TLS, the controller's PATCH, and as root a pod with podid-init,
# podid-proxy and an Azure SDK. The same build as the test suite's, so neither
# rebuilds the other's programs.
demo:
	cargo build --quiet --workspace --all-features --bins
	$${CARGO_TARGET_DIR:-target}/debug/podid-demo

# Everything CI runs: installs what the suite needs, then lint and every test.
test: deps lint unit

deps:
	scripts/install-test-deps.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings

unit:
	scripts/run-tests.sh

# Benchmarks print tables; see docs/BENCHMARKS.md.
bench:
	cargo run --release -p podid-bench --bin webhook-bench
