# Mirrors .ci/run. `make test` is the README's test command.
LABELS ?= s3://gt-example-bucket/config/labels.json
EVENT ?= events/pre-annotation/image-line.json
PIP ?= python3 -m pip

FUZZ_TARGETS = consolidation_event worker_answer mask_png
FUZZ_SECONDS ?= 60

.PHONY: test tools build replay lint ci fuzz-seed fuzz

tools:
	$(PIP) install --quiet --disable-pip-version-check -r tests/requirements.txt

build:
	cargo build --workspace --all-targets

# The integration tests run the built gtseg and Lambda binaries, so build them first.
test: tools build
	cargo test --workspace

replay:
	LABEL_CATEGORY_CONFIG=$(LABELS) cargo run -q -p gtseg-cli -- replay $(EVENT) --store events/store

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace
	cfn-lint template.yaml

ci: test lint fuzz

# Seeds tests/fuzz/corpus/<target>/ from the sample events (the corpora are not committed).
fuzz-seed:
	cargo run -q -p gtseg-tests --bin fuzz-seeds

# Each target for FUZZ_SECONDS (CI: 60 s smoke runs). Needs nightly and `cargo install cargo-fuzz`.
fuzz: fuzz-seed
	for t in $(FUZZ_TARGETS); do \
	  cargo +nightly fuzz run --fuzz-dir tests/fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done
