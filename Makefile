# Two commands for a fresh machine:  make demo   and   make test
# The environment: .venv (created here), or the active conda environment made from
# environment.yml (`conda activate cs231n-course`), or any VENV=/path/to/env with bin/python.
VENV   ?= $(if $(filter cs231n-course,$(CONDA_DEFAULT_ENV)),$(CONDA_PREFIX),.venv)
PYTHON ?= python3
PY     := $(VENV)/bin/python
# apt waits for another apt/dpkg (e.g. unattended upgrades) to release its locks instead of failing
APT    := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -qq
STAMP  := $(VENV)/.installed

.PHONY: demo train test test-quick lint bench bench-grading setup sysdeps browserdeps clean notebooks lab

setup: sysdeps $(STAMP)

# System packages: Python's venv module (Debian/Ubuntu ship it apart, as python3-venv) and
# bubblewrap, which isolates each submission's kernel when grading. Installed as root with apt;
# otherwise the exact command is printed.
sysdeps:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "ERROR: this course needs Python 3.11 or newer; '$(PYTHON)' is" \
	       "$$($(PYTHON) --version 2>&1 || echo missing). Run make with PYTHON=/path/to/python3.11" \
	       "(or newer)." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  pkg="python$$($(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $$pkg (Python's venv module)"; \
	    $(APT) update && $(APT) install python3-venv $$pkg; \
	  else \
	    echo "ERROR: Python's venv module is missing. Install it as root:" \
	         "sudo apt-get install python3-venv $$pkg   (then run make again)" >&2; exit 1; \
	  fi; }
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap (grading sandbox)"; \
	    $(APT) update && $(APT) install bubblewrap; \
	  else \
	    echo "NOTE: bubblewrap (bwrap) is missing; the grading sandbox and its tests need it:" \
	         "install the 'bubblewrap' package as root (apt/dnf/pacman)." >&2; \
	  fi; }

# The library, the student and instructor tools and the (exactly pinned) test tools, editable.
$(STAMP): pyproject.toml setup.py
	test -x $(PY) || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip; }
	$(PY) -m pip install -q -e '.[course,grading,cluster,test]'
	touch $(STAMP)

# The main job: release the course, grade a sample class in parallel, write feedback and grades.
demo: setup
	$(PY) -m cs231n_grading demo

# JupyterLab on the released notebooks with the student edition of the library (after make demo);
# extra options through ARGS, e.g. make lab ARGS="--port 8890 --no-browser"
lab: $(STAMP)
	$(PY) -m cs231n_grading lab $(ARGS)

# Train the small ConvNet on the embedded Fashion-MNIST subset; prints accuracy and time.
train: setup
	$(PY) -m cs231n_lib.train_demo

# The suite also installs the [bench] extra (torch 2.13.0, CPU): the benchmarks' smoke tests
# compare with it, as the benchmarks do.
test: setup browserdeps $(VENV)/.bench-installed
	$(PY) -m ruff check .
	$(PY) -m pytest

$(VENV)/.bench-installed: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

# Debian's Chromium for the real-browser tests (tests/test_browser.py; Playwright drives it, no
# browser download) and a CJK font, so the glossaries' Chinese terms are not empty boxes in its
# screenshots. Installed as root with apt; otherwise the exact command is printed.
browserdeps:
	@test -x /usr/bin/chromium -a -n "$$(fc-list :lang=zh 2>/dev/null | head -n 1)" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and fonts-noto-cjk (real-browser tests)"; \
	    $(APT) update && $(APT) install chromium fonts-noto-cjk; \
	  else \
	    echo "NOTE: chromium or a CJK font is missing; tests/test_browser.py will be skipped" \
	         "without chromium: sudo apt-get install chromium fonts-noto-cjk" >&2; \
	  fi; }

# The quick loop (a few minutes): everything but the tests marked slow (notebooks executed with
# a kernel, grading end to end, the sandbox, the wheel).
test-quick: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .

# Rebuild assignments/NN_name/NN_name.ipynb from course_src/NN_name.py (a test checks the sync).
notebooks: $(STAMP)
	$(PY) course_src/build.py

# With OpenBLAS's own choice of kernel for this CPU (see bench/conv.py; tests and CI keep the
# machine's settings).
bench: $(VENV)/.bench-installed
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) bench/conv.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) bench/train_step.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) bench/layers.py

# Grading throughput: the demo's sample class scaled to 20 students, graded by cs231n-course
# autograde (sandboxed) and by nbgrader autograde with the same cores, beside plain execution;
# options through ARGS, e.g. make bench-grading ARGS="--students 10 --assignments 01_convolution"
bench-grading: setup
	$(PY) bench/grading.py $(ARGS)

# Removes the environment make created, never a conda environment.
clean:
	$(if $(filter $(CONDA_PREFIX),$(VENV)),,rm -rf $(VENV))
	rm -rf build *.egg-info
