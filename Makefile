# Mirrors .ci/run. `make test` is the README's test command.
LABELS ?= s3://gt-example-bucket/config/labels.json
EVENT ?= events/pre-annotation/image-line.json
PIP ?= python3 -m pip

.PHONY: test tools build replay lint ci

tools:
	$(PIP) install --quiet --disable-pip-version-check -r tests/requirements.txt

build:
	cargo build --workspace --all-targets

# The integration tests run the built gtseg and Lambda binaries, so build them first.
test: tools build
	cargo test --workspace

replay:
	LABEL_CATEGORY_CONFIG=$(LABELS) cargo run -q -p gtseg -- replay $(EVENT) --store events/store

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cfn-lint template.yaml

ci: test lint
