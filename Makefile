# Mirrors .ci/run. `make test` is the README's test command.
EVENT ?= events/pre-annotation/image-line.json
JOB ?= events/labeling-job/street-scenes.json

# The Python tools the tests drive (moto's S3 server, cargo-lambda, cfn-lint, botocore, numpy,
# Pillow) live in a project virtual environment: nothing is installed globally, and Debian's
# externally managed system Python is fine. Every recipe finds them first on the PATH.
PYTHON ?= python3
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)

FUZZ_TARGETS = consolidation_event worker_answer mask_png
FUZZ_SECONDS ?= 60

.PHONY: test tools build replay lint doc ci fuzz-seed fuzz dist

$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

tools: $(VENV)/.installed

build:
	cargo build --workspace --all-targets

# The integration tests run the built gtseg and Lambda binaries, so build them first. The
# README's marked command blocks run last, once cargo's build lock is free (they call cargo).
test: tools build
	cargo test --workspace
	$(VENV)/bin/python tests/readme_blocks.py

replay:
	cargo run -p gtseg-cli -- replay $(EVENT) --store events/store --labeling-job $(JOB)

doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

lint: tools doc
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --workspace --all-targets -- -D warnings
	cfn-lint template.yaml

ci: test lint fuzz

# Seeds shared/gtseg-fuzz/corpus/<target>/ from the sample events (the corpora are not committed).
fuzz-seed:
	cargo run -q -p gtseg-tests --bin fuzz-seeds

# Each target for FUZZ_SECONDS (CI: 60 s smoke runs). Needs nightly and `cargo install cargo-fuzz`.
fuzz: fuzz-seed
	for t in $(FUZZ_TARGETS); do \
	  cargo +nightly fuzz run --fuzz-dir shared/gtseg-fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

# The two Lambda functions, built for arm64 (cargo-lambda and its zig from .venv/), as zips
# with their SHA-256 sums, and dist/template.yaml: template.yaml with each function's code
# taken from its zip, so that `sam deploy --template-file dist/template.yaml --guided`
# deploys them on a machine without Rust or zig.
FUNCTIONS = pre-semantic-segmentation acs-semantic-segmentation
# Where cargo builds (CARGO_TARGET_DIR or a cargo config may move it from target/): cargo-lambda
# puts its zips under it.
TARGET_DIR = $(shell cargo metadata --format-version 1 --no-deps | $(VENV)/bin/python -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
dist: tools
	cargo lambda build --release --arm64 --output-format zip $(addprefix --bin ,$(FUNCTIONS))
	mkdir -p dist
	for f in $(FUNCTIONS); do cp "$(TARGET_DIR)/lambda/$$f/bootstrap.zip" dist/$$f.zip; done
	cd dist && sha256sum $(addsuffix .zip,$(FUNCTIONS)) > SHA256SUMS
	awk '/^    Metadata:$$/ { drop = 1; next } \
	     drop && /^        Binary: / { zip = $$2 ".zip"; next } \
	     drop && /^      (BuildMethod|BuildProperties):/ { next } \
	     /^      CodeUri: \.$$/ { if (zip == "") exit 1; print "      CodeUri: " zip; zip = ""; drop = 0; next } \
	     { drop = 0; print }' template.yaml > dist/template.yaml
	cfn-lint dist/template.yaml
	@echo "dist/: $$(cat dist/SHA256SUMS | tr '\n' ' ')"
