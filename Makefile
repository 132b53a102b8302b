# amct-pipe: `make demo` and `make test` are the two commands a fresh machine needs.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: deps build release demo test test-swift test-python bench fixtures fuzz clean

deps:
	@scripts/install-deps

build: deps
	swift build

release: deps
	swift build -c release

## Runs the main job on a bundled example model and config, and prints what it did.
demo: release
	@scripts/demo

## Builds, then runs every test: Swift (XCTest) and the Python interop suite (onnx, onnxruntime).
test: build
	swift test
	$(PY) -m pytest -q tests/python
	Fuzz/run.sh --smoke

## libFuzzer on the ONNX loader, the config reader, the npz/npy reader and plan: FUZZ_SECONDS (default 60) each.
fuzz: deps
	Fuzz/run.sh

bench: release
	$(PY) bench/bench.py

## Re-makes the fixture models (needs scikit-learn in the venv for the digits model).
fixtures: deps
	.venv/bin/pip install -q scikit-learn
	$(PY) fixtures/make_fixtures.py

clean:
	rm -rf .build
