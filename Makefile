# Two commands for a fresh machine:  make demo   and   make test
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo train test lint bench setup sysdeps clean notebooks

setup: sysdeps $(STAMP)

# System packages: bubblewrap isolates each submission's kernel when grading.
sysdeps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap (grading sandbox)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	  else \
	    echo "NOTE: bubblewrap (bwrap) is missing; the grading sandbox and its tests need it:" \
	         "install the 'bubblewrap' package as root (apt/dnf/pacman)." >&2; \
	  fi; }

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The main job: release the course, grade a sample class in parallel, write feedback and grades.
demo: setup
	$(PY) -m grading demo

# Train the small ConvNet on the embedded Fashion-MNIST subset; prints accuracy and time.
train: setup
	$(PY) -m cs231n_lib.demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

# Rebuild assignments/NN_name/NN_name.ipynb from course_src/NN_name.py (a test checks the sync).
notebooks: $(STAMP)
	$(PY) course_src/build.py

# With OpenBLAS's own choice of kernel for this CPU (see bench/conv.py; tests and CI keep the
# machine's settings).
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) bench/conv.py

clean:
	rm -rf $(VENV) build *.egg-info
