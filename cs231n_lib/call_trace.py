"""How a function computes its result: for tests of exercises that are about *how*.

Some exercises are about the method, not only the value: "write it with loops", "vectorise it
(no Python loop over output positions)", "do not call a library convolution". ``trace_call``
runs a function once and reports

* ``lines``: how many Python lines ran in *notebook* code (code not from the standard library,
  site-packages or cs231n_lib): a loop over every output pixel shows up as thousands of lines, a
  vectorised implementation as a few dozen;
* ``modules``: the modules whose Python functions were called, directly or through helpers
  (e.g. ``scipy.signal._signaltools``), so a test can forbid a library shortcut.

Test cells record these numbers with ``checks.record(..., kind="at_most"/"at_least"/"equal")``.
"""

from __future__ import annotations

import inspect
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def defining_module(fn) -> str:
    """The module a function's code really lives in: the ``__name__`` of its globals, which is
    what the tracer sees (numpy 2 sets ``__module__`` to public names such as
    ``numpy.lib.stride_tricks`` while the code lives in ``numpy.lib._stride_tricks_impl``)."""
    fn = inspect.unwrap(fn)
    module = getattr(fn, "__globals__", {}).get("__name__") or getattr(fn, "__module__", None)
    if not isinstance(module, str) or not module:
        raise ValueError(f"cannot tell which module defines {fn!r}: no __globals__ or __module__")
    return module


def qualified_name(fn) -> str:
    """``module.qualname`` of a function as ``CallTrace.functions`` lists it."""
    return f"{defining_module(fn)}.{inspect.unwrap(fn).__qualname__}"


# Library shortcuts that a "write it yourself" exercise must not call (module.qualname prefixes,
# resolved from the functions themselves so that they follow numpy's internal module names),
# and what it may call anyway: the shape rules.
SHORTCUTS = tuple(dict.fromkeys((
    "scipy.", f"{defining_module(np.lib.stride_tricks.sliding_window_view)}.",
    f"{defining_module(np.lib.stride_tricks.as_strided)}.", qualified_name(np.convolve),
    qualified_name(np.correlate), f"{defining_module(np.fft.fft)}.", "cs231n_lib.")))
ALLOWED = ("cs231n_lib.shapes.",)


@dataclass
class CallTrace:
    """What one call ran: notebook lines, and modules and functions called (``module.qualname``)."""

    lines: int = 0
    modules: set = field(default_factory=set)
    functions: set = field(default_factory=set)

    def used(self, prefixes, allowed=()) -> list[str]:
        """Sorted called functions whose ``module.qualname`` starts with one of ``prefixes`` and
        with none of ``allowed``."""
        prefixes, allowed = tuple(prefixes), tuple(allowed)
        return sorted(f for f in self.functions
                      if f.startswith(prefixes) and not (allowed and f.startswith(allowed)))

    def shortcuts(self) -> list[str]:
        """Sorted library shortcuts (``SHORTCUTS`` minus ``ALLOWED``) that the call used."""
        return self.used(SHORTCUTS, ALLOWED)


def _library_dirs() -> tuple[str, ...]:
    import cs231n_lib

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(cs231n_lib.__file__).parent)}
    dirs.update(p for p in sysconfig.get_paths().values())
    resolved = (Path(d).resolve() for d in dirs)
    # a prefix of "/" (a system Python) would swallow the notebook's own files
    return tuple(str(d) for d in resolved if len(d.parts) > 1)


def trace_call(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` under a tracer; return ``(result, CallTrace)``."""
    trace = CallTrace()
    library = _library_dirs()
    own: dict[str, bool] = {}

    def is_notebook_code(filename: str) -> bool:
        if filename not in own:
            own[filename] = not (filename.startswith("<frozen") or str(
                Path(filename).resolve()).startswith(library))
        return own[filename]

    def local(frame, event, arg):
        if event == "line":
            trace.lines += 1
        return local

    def tracer(frame, event, arg):
        module = frame.f_globals.get("__name__", "?")
        trace.modules.add(module)
        trace.functions.add(f"{module}.{frame.f_code.co_qualname}")
        return local if is_notebook_code(frame.f_code.co_filename) else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.settrace(previous)
    return result, trace
