"""cs231n_lib.call_trace: counting notebook lines and spotting library shortcuts."""

import sys

import numpy as np
from scipy import signal

from cs231n_lib.call_trace import trace_call
from cs231n_lib.shapes import output_size


def loop_sum(x):
    total = 0.0
    for value in x:
        total += value
    return total


def vector_sum(x):
    return float(np.sum(x))


def via_scipy(x):
    return signal.correlate(x, x[:3], mode="valid")


def via_shapes(n):
    return output_size(n, 3, 1, 1)


def test_result_is_returned_and_tracing_stops():
    before = sys.gettrace()
    result, _ = trace_call(loop_sum, np.arange(10.0))
    assert result == 45.0
    assert sys.gettrace() is before


def test_loops_run_many_lines_vectorised_code_few():
    _, loops = trace_call(loop_sum, np.arange(500.0))
    _, vector = trace_call(vector_sum, np.arange(500.0))
    assert loops.lines >= 1000  # two lines per element
    assert vector.lines <= 3


def test_library_lines_are_not_counted_but_calls_are_seen():
    _, trace = trace_call(via_scipy, np.arange(50.0))
    assert trace.lines <= 3  # scipy's own lines are library code
    assert "scipy.signal._signaltools.correlate" in trace.used(["scipy."])
    assert trace.used(["numpy.lib.stride_tricks"]) == []


def test_allowed_prefixes_are_filtered():
    _, trace = trace_call(via_shapes, 7)
    assert "cs231n_lib.shapes.output_size" in trace.used(["cs231n_lib."])
    assert trace.used(["cs231n_lib."], allowed=["cs231n_lib.shapes."]) == []
    assert trace.shortcuts() == []
    _, trace = trace_call(via_scipy, np.arange(50.0))
    assert "scipy.signal._signaltools.correlate" in trace.shortcuts()
    _, trace = trace_call(np.convolve, np.arange(5.0), np.ones(2))
    assert trace.shortcuts() == ["numpy._core.numeric.convolve"]


def test_exceptions_propagate_and_restore_the_tracer():
    before = sys.gettrace()

    def boom():
        raise KeyError("x")

    try:
        trace_call(boom)
    except KeyError:
        pass
    else:
        raise AssertionError("trace_call swallowed the exception")
    assert sys.gettrace() is before


def im2col_by_windows(x, HH, WW):
    """An im2col written with numpy's sliding windows (a shortcut the exercises forbid)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (HH, WW), axis=(2, 3))
    N, C, H_out, W_out = windows.shape[:4]
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * HH * WW, N * H_out * W_out)


def im2col_by_strides(x, HH, WW):
    """The same with as_strided."""
    N, C, H, W = x.shape
    s = x.strides
    view = np.lib.stride_tricks.as_strided(
        x, (N, C, H - HH + 1, W - WW + 1, HH, WW), s + s[2:], writeable=False)
    return view.transpose(1, 4, 5, 0, 2, 3).reshape(C * HH * WW, -1)


def test_stride_tricks_are_shortcuts_under_their_real_module_names():
    x = np.arange(2 * 3 * 5 * 4, dtype=float).reshape(2, 3, 5, 4)
    for fn in (im2col_by_windows, im2col_by_strides):
        cols, trace = trace_call(fn, x, 3, 2)
        assert cols.shape == (3 * 3 * 2, 2 * 3 * 3)
        assert trace.shortcuts(), f"{fn.__name__}: stride tricks not reported as a shortcut"
        assert any("stride_tricks" in f for f in trace.shortcuts())


def test_qualified_name_follows_the_code_not_the_public_module():
    from cs231n_lib.call_trace import defining_module, qualified_name

    real = np.lib.stride_tricks.as_strided.__globals__["__name__"]
    assert defining_module(np.lib.stride_tricks.as_strided) == real
    _, trace = trace_call(np.correlate, np.arange(5.0), np.ones(2))
    assert qualified_name(np.correlate) in trace.functions
