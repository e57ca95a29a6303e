# The two set-up commands of the README. Both create .venv with the package installed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow system-deps clean

demo: $(VENV)/.installed
	$(BIN)/worldsim demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

test-slow: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m slow

# open3d's wheel loads libusb-1.0 at import time.
system-deps:
	@if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
	  echo "installing libusb-1.0-0 (needed by open3d)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null; \
	else \
	  echo "open3d needs the system library libusb-1.0-0. Run:"; \
	  echo "    sudo apt-get install -y libusb-1.0-0"; \
	  exit 1; \
	fi

$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

clean:
	rm -rf $(VENV) *.egg-info
