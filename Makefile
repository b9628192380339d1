# Two commands for a fresh machine:  make demo   and   make test
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench setup clean notebooks

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap (grading sandbox)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	  else \
	    echo "NOTE: bubblewrap (bwrap) is missing; the grading sandbox and its tests need it:" \
	         "install the 'bubblewrap' package as root (apt/dnf/pacman)." >&2; \
	  fi; }
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m cs231n_lib.demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

# Rebuild assignments/NN_name/NN_name.ipynb from course_src/NN_name.py (a test checks the sync).
notebooks: $(STAMP)
	$(PY) course_src/build.py

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/conv.py

clean:
	rm -rf $(VENV) build *.egg-info
