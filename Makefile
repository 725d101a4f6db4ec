# podid: the two commands a fresh machine needs are `make demo` and `make test`.
.PHONY: demo test deps lint unit bench

# The main job: inject the example pod as the webhook would admit it.
demo:
	cargo run --quiet -p podid-webhook --bin podid -- inject -f examples/pod.yaml --identities-file examples/identities.yaml

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
