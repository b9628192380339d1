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
