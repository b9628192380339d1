"""cs231n_grading.rules: the grader-side "how" rules, checked on the submitted source (pure
functions)."""

from __future__ import annotations

import copy
import re

import nbformat
import notebook_utils as nbu
import pytest

from cs231n_grading import rules
from cs231n_grading.restore import nbg
from cs231n_grading.samples import WARN_PREFIX

NAMES = ["01_convolution", "02_padding_stride", "03_pooling", "04_memory", "05_architectures",
         "06_training"]
_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$",
                       re.S | re.M)


def source(name: str):
    """The instructor's source notebook (solutions, hidden tests and rules)."""
    return nbformat.read(nbu.notebook_path(name), as_version=4)


def stubbed(nb):
    """The notebook as released: every solution region replaced by nbgrader's stub."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if nbg(cell).get("solution") and cell.cell_type == "code":
            cell.source = _SOLUTION.sub(
                lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()",
                cell.source)
    return nb


def submit(name: str, answers: dict[str, str] | None = None, added: dict[str, str] | None = None):
    """The source notebook with some solution cells replaced and cells added after others."""
    nb = copy.deepcopy(source(name))
    answers, added = answers or {}, added or {}
    cells = []
    for cell in nb.cells:
        gid = nbg(cell).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
        cells.append(cell)
        if gid in added:
            cells.append(nbformat.v4.new_code_cell(added[gid]))
    nb.cells = cells
    return nb


def found(name: str, answers=None, added=None) -> list[rules.Violation]:
    return rules.violations(submit(name, answers, added), source(name))


def messages(vs) -> str:
    return "\n".join(v.message() for v in vs)


# --- honest work never trips a rule -------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_reference_solutions_trip_no_rule(name):
    nb = source(name)
    assert rules.violations(nb, nb) == []


@pytest.mark.parametrize("name", NAMES)
def test_release_stubs_trip_no_rule(name):
    nb = source(name)
    assert rules.violations(stubbed(nb), nb) == []


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("name", NAMES)
def test_partly_solved_notebooks_trip_no_rule(name, fraction):
    """A student who solved the first exercises: a stub's leftover names (``return r`` after
    nbgrader's ``raise``) are not uses of another exercise's local variables (a function binds
    only its own name in the notebook)."""
    from cs231n_grading.samples import fill
    nb = source(name)
    partial = fill(stubbed(nb), nb, fraction=fraction)
    assert rules.violations(partial, nb) == []


def test_a_function_binds_only_its_name_and_its_globals():
    stmts = rules.top_level_statements(
        "def f(x):\n    global G\n    r = 1\n    G = [k for k in x]\n"
        "for i in range(3):\n    y = [k for k in range(i)]\n"
        "import numpy as np\nclass A:\n    z = 1\n")
    assert [names for _, names in stmts] == [{"f", "G"}, {"i", "y"}, {"np"}, {"A"}]


@pytest.mark.parametrize("name", NAMES)
def test_reference_with_noisy_prefix_and_scratch_cells_trips_no_rule(name):
    nb = copy.deepcopy(source(name))
    for cell in nb.cells:
        if nbg(cell).get("solution") and cell.cell_type == "code":
            cell.source = WARN_PREFIX + cell.source
    nb.cells.insert(3, nbformat.v4.new_code_cell(
        "%matplotlib inline\nimport math\nimport numpy as np\nfrom numpy import linalg\n"
        "print(math.pi, np.zeros(3).shape)\nnp.zeros?\n%timeit -n 2 -r 1 np.ones(4)\n"
        "checks = shapes = [1, 2]\ndisplay(checks)\nprint(np.__version__, type(shapes).__name__)"))
    assert rules.violations(nb, source(name)) == []


NAIVE_ROWS = '''
import numpy as np
import math


def _window(x_pad, r, c, h, w, d):
    return x_pad[:, :, r:r + h:d, c:c + w:d]


def conv_forward_naive(x, w, b, conv_param):
    """Rows in a loop, columns vectorised with a comprehension."""
    stride, pad, dilation, H_out, W_out = shapes.conv_geometry(x.shape, w.shape, conv_param)
    F, _, HH, WW = w.shape
    signal = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # a local named like scipy's
    span = (dilation * (HH - 1) + 1, dilation * (WW - 1) + 1)
    out = np.zeros((x.shape[0], F, H_out, W_out), dtype=np.result_type(x, w, b))
    for i in range(H_out):
        row = np.stack([_window(signal, i * stride, j * stride, *span, dilation)
                        for j in range(W_out)], axis=-1)  # (N, C, HH, WW, W_out)
        out[:, :, i, :] = np.einsum("nchwj,fchw->nfj", row, w) + b[:, None]
    assert math.isfinite(float(out.sum()))
    return out, (x, w, b, conv_param)
'''


def test_honest_styles_trip_no_rule():
    assert found("01_convolution", {"conv_forward_naive": NAIVE_ROWS}) == []
    own_shapes = ('def conv_output_size(W, F, S=1, P=0):\n'
                  '    shapes = [W, F, S, P]  # a local, not cs231n_lib.shapes\n'
                  '    if any(v < 0 for v in shapes) or (W - F + 2 * P) % S:\n'
                  '        raise ValueError(f"(W - F + 2P) / S + 1 invalid for {shapes}")\n'
                  '    return (W - F + 2 * P) // S + 1\n')
    assert found("02_padding_stride", {"conv_output_size": own_shapes}) == []
    lenet = ('from cs231n_lib.architectures import FC, Activation, Conv, Flatten, Pool, Spec\n'
             'def lenet_spec():\n    s = Activation("sigmoid", inplace=False)\n'
             '    return Spec("mine", (1, 28, 28), (Conv(6, 5, pad=2), s, Pool("avg", 2), '
             'Conv(16, 5), s, Pool("avg", 2), Flatten(), FC(120), s, FC(84), s, FC(10)))\n')
    assert found("05_architectures", {"lenet_spec": lenet}) == []
    scratch = ("x = np.ones((1, 1, 4, 4)); w = np.ones((1, 1, 3, 3))\n"
               "mine, _ = conv_forward_naive(x, w, np.zeros(1), {})\n"
               "ref, _ = conv_forward_fast(x, w, np.zeros(1), {})\n"
               "assert_array('mine', mine, ref)\nprint(type(mine).__name__)")
    assert found("01_convolution", added={"conv_forward_naive": scratch}) == []


def test_ipython_display_tools_at_the_top_level_are_honest():
    """Showing an image or a table in an added cell is honest; the same tools inside a function
    (which a test cell could call) or IPython's other parts are not."""
    shown = ("from IPython.display import HTML, Markdown, display\n"
             "display(Markdown('**my result**'))\nHTML('<b>ok</b>')")
    assert found("01_convolution", added={"conv_forward_naive": shown}) == []
    hidden_call = ("from IPython.display import display\n\ndef show(x):\n"
                   "    display(x)\n    return x")
    assert found("01_convolution", added={"conv_forward_naive": hidden_call})
    assert found("01_convolution", added={
        "conv_forward_naive": "from IPython import get_ipython\nget_ipython()"})
    assert found("01_convolution", added={
        "conv_forward_naive": "import IPython.display\nIPython.display.display(1)"})


# --- exercise rules ------------------------------------------------------------------------------

STUB = "def conv_forward_naive(x, w, b, conv_param):\n    for i in range(9):\n        pass\n"


@pytest.mark.parametrize("body, rule", [
    ("    return conv_forward_fast(x, w, b, conv_param)", "cs231n_lib"),
    ("    from cs231n_lib import fast_layers as f\n    return f.conv_forward_fast(x, w, b, {})",
     "cs231n_lib"),
    ("    import scipy.signal as s\n    return s.correlate(x, w)", "scipy"),
    ("    from scipy import signal\n    return signal.correlate(x, w)", "scipy"),
    ("    return sig.correlate(x, w)", "correlate"),  # whatever `sig` is
    ("    import scipy.signal as sig\n    return sig.correlate(x, w)", "scipy"),
    ("    from numpy.lib import stride_tricks\n    return stride_tricks.as_strided(x)",
     "stride_tricks"),
    ("    return np.lib.stride_tricks.sliding_window_view(x, (3, 3))", "stride_tricks"),
    ("    from numpy.lib._stride_tricks_impl import as_strided\n    return as_strided(x)",
     "as_strided"),
    ("    return getattr(np.lib, 'stride_tricks').as_strided(x)", "stride_tricks"),
    ("    return np.convolve(x.ravel(), w.ravel())", "convolve"),
    ("    return np.fft.fft2(x)", "numpy.fft"),
])
def test_conv_forward_shortcuts_are_forbidden(body, rule):
    vs = found("01_convolution", {"conv_forward_naive": STUB + body})
    assert vs and all(v.part == 2 for v in vs), messages(vs)
    assert any(f"must not use {rule}" in v.rule for v in vs), messages(vs)
    assert "solution cell conv_forward_naive" in vs[0].message()


def test_loops_are_required_where_the_exercise_asks_for_them():
    vectorised = ("def conv_forward_naive(x, w, b, conv_param):\n"
                  "    return np.einsum('nchw,fchw->nf', x, w)[:, :, None, None] + b, None\n")
    vs = found("01_convolution", {"conv_forward_naive": vectorised})
    assert [v.rule for v in vs] == [f"must use {rules.REQUIREMENTS['loop']}"]


def test_delegation_exercises_are_closed():
    cases = [
        ("01_convolution", "conv1x1", "def conv1x1(x, w, b):\n"
         "    return conv_forward_fast(x, w, b, {})[0]", 6),
        ("05_architectures", "lenet_spec", "def lenet_spec():\n    return arch.lenet()", 1),
        ("05_architectures", "lenet_spec", "def lenet_spec():\n    return arch.get('lenet')", 1),
        ("05_architectures", "lenet_spec",
         "from cs231n_lib.architectures import lenet\ndef lenet_spec():\n    return lenet()", 1),
        ("06_training", "spatial_batchnorm_forward",
         "def spatial_batchnorm_forward(x, gamma, beta, bn_param):\n"
         "    return layers.spatial_batchnorm_forward(x, gamma, beta, bn_param)\n"
         "def spatial_batchnorm_backward(dout, cache):\n"
         "    return layers.spatial_batchnorm_backward(dout, cache)", 5),
        ("02_padding_stride", "influence_map", "def influence_map(H, W, F, num_layers, pad):\n"
         "    return measured_influence(H, W, F, num_layers, pad)", 3),
        ("02_padding_stride", "conv_output_size", "from cs231n_lib.shapes import output_size\n"
         "def conv_output_size(W, F, S=1, P=0):\n    return output_size(W, F, S, P)", 1),
        ("03_pooling", "max_pool_forward", "def max_pool_forward_naive(x, pool_param):\n"
         "    for _ in range(3):\n        pass\n"
         "    from cs231n_lib.fast_layers import max_pool_forward_fast\n"
         "    return max_pool_forward_fast(x, pool_param)", 1),
    ]
    for name, gid, code, part in cases:
        vs = found(name, {gid: code})
        assert vs and {v.part for v in vs} == {part}, (gid, messages(vs))


def test_names_the_test_cells_record_with_cannot_be_rebound():
    fake = "import types\nmemory = types.SimpleNamespace()"
    vs = found("05_architectures", added={"lenet_spec": fake})
    assert vs and vs[0].part is None and "must not rebind memory" in vs[0].rule
    assert found("05_architectures", added={"lenet_spec": "from cs231n_lib import memory"}) == []


def test_test_cell_helpers_are_not_solutions():
    vs = found("05_architectures", {"residual_block_forward":
                                    "def residual_block_forward(x, w1, b1, w2, b2):\n"
                                    "    return library_block(x, w1, b1, w2, b2), None\n"})
    assert vs and "library_block" in messages(vs)


def test_code_used_from_added_cells_is_held_to_the_exercise_rules():
    answer = {"lenet_spec": "def lenet_spec():\n    return helper()"}
    for added in ("def helper():\n    return arch.lenet()", "a = arch\nhelper = a.lenet",
                  "def helper():\n    return inner()\ndef inner():\n    return arch.lenet()"):
        vs = found("05_architectures", answer, {"readonly_01": added})
        assert vs and all(v.part == 1 for v in vs), messages(vs)
        assert "used by solution cell lenet_spec" in vs[0].message()


def test_redefining_an_exercise_function_elsewhere_costs_that_exercise():
    vs = found("02_padding_stride", added={"test_influence_map": (
        "def influence_map(H, W, F, num_layers, pad):\n    return 0")})
    assert [v.part for v in vs] == [3]
    assert "only solution cell influence_map" in vs[0].rule


# --- process rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("code, what", [
    ("import sys\nsys.settrace(None)", "sys.settrace"),
    ("import sys as s\nt = s.gettrace()", "sys.gettrace"),
    ("from sys import settrace\nsettrace(None)", "sys.settrace"),
    ("import sys\nsys.modules['numpy'].x = 1", "sys.modules"),
    ("import sys\nsys.path.insert(0, '/tmp')", "sys.path"),
    ("import threading\nthreading.settrace(print)", "threading.settrace"),
    ("get_ipython().events.register('post_run_cell', print)", "get_ipython"),
    ("ip = get_ipython()\nip.input_transformers_post.append(str)", "get_ipython"),
    ("from IPython import get_ipython as g\ng()", "IPython"),
    ("import importlib\nimportlib.import_module('scipy')", "importlib"),
    ("import ctypes", "ctypes"),
    ("import builtins\nbuiltins.print = len", "builtins"),
    ("__builtins__.print = len", "__builtins__"),
    ("exec('x = 1')", "exec"),
    ("eval('1')", "eval"),
    ("compile('1', 'f', 'eval')", "compile"),
    ("m = __import__('scipy')", "__import__"),
    ("globals()['record'] = print", "globals"),
    ("vars()['x'] = 1", "vars"),
    ("import gc\ngc.get_objects()", "gc"),
    ("import inspect\ninspect.currentframe()", "inspect"),
    ("setattr(np, 'pad', len)", "setattr"),
    ("def f():\n    pass\nf.__globals__['record'] = print", "__globals__"),
    ("().__class__.__base__.__subclasses__()", "dunder"),
    ("np.testing.assert_allclose = lambda *a, **k: None", "numpy.testing.assert_allclose"),
    ("import numpy\ndel numpy.pad", "numpy.pad"),
    ("record = print", "record"),
    ("def assert_array(*a, **k):\n    pass", "assert_array"),
    ("_old = record\ndef record(*a, **k):\n    _old(*a, **k)", "record"),
    ("def patch():\n    global assert_value\n    assert_value = print", "assert_value"),
    ("import cs231n_lib.checks", "cs231n_lib.checks"),
    ("from cs231n_lib.call_trace import trace_call", "cs231n_lib.call_trace"),
    ("from cs231n_lib import checks\nchecks.record('x', 1)", "cs231n_lib.checks"),
    ("np = None", "rebind np"),
    ("open('../01_convolution.ipynb').read()", ".ipynb"),
    ("from pathlib import Path\nPath('x.ipynb').read_text()", ".ipynb"),
    ("display({'application/vnd.cs231n.record+json': {}}, raw=True)", "vnd.cs231n"),
    ("def show(v):\n    display(v)", "display"),
    ("show = display", "display"),
    ("def conv_forward_fast(x, w, b, p):\n    return x, None", "rebind conv_forward_fast"),
    ("import operator\noperator.attrgetter('lib.stride_tricks')(np)", "operator.attrgetter"),
    ("name = 'pad'\ngetattr(np, name)", "getattr"),
    ("%load_ext autoreload", "%load_ext"),
    ("!cat /etc/passwd", "shell command"),
    ("%%time\nimport sys\nsys.settrace(None)", "sys.settrace"),
    ("%timeit sys.settrace(None)", "sys.settrace"),
    ("import pickle\npickle.loads(b'')", "pickle"),
    ("def f():\n    import sys as s\n    s.settrace(None)", "sys.settrace"),
    ("def f(*, x: __import__('os') = 1):\n    pass", "__import__"),
    ("class C(metaclass=type('M', (type,), {'__init__': exec})):\n    pass", "exec"),
])
def test_process_tricks_in_added_cells_cost_the_notebook(code, what):
    vs = found("01_convolution", added={"conv_param_counts": code})
    assert vs, f"not caught: {code!r}"
    assert all(v.part is None and v.cell == "added cell 1" for v in vs), messages(vs)
    assert what in messages(vs), messages(vs)


def test_process_tricks_in_a_solution_cell_cost_its_part():
    code = ("import sys\n" + STUB + "    sys.settrace(None)\n"
            "    return conv_forward_fast(x, w, b, conv_param)")
    vs = found("01_convolution", {"conv_forward_naive": code})
    assert vs and {v.part for v in vs} == {2}, messages(vs)
    assert "line 5" in messages(vs)


def test_unparsable_cells_run_nothing_and_break_no_rule():
    assert found("01_convolution", added={"conv_param_counts": "def f(:\n    sys.settrace"}) == []
    assert found("01_convolution", {"conv_forward_naive": "def conv_forward_naive(:"}) == []


def test_deeply_nested_code_is_a_violation_not_a_crash():
    deep = "x = " + "(" * 5000 + "1" + ")" * 5000
    chain = "x = " + " + ".join(["1"] * 20000)
    for code in (deep, chain):
        tests = [{"grade_id": "test_conv_param_counts", "points": 2.0, "max_points": 2.0,
                  "passed": True, "message": ""}]
        out, notes = rules.check(tests, submit("01_convolution",
                                               added={"conv_param_counts": code}),
                                 source("01_convolution"))
        assert out[0]["points"] in (0.0, 2.0)  # no exception either way
        if out[0]["points"] == 0.0:
            assert notes and out[0]["message"].startswith("rule:")


# --- applying violations to verdicts ------------------------------------------------------------

def _verdicts(nb) -> list[dict]:
    return [{"grade_id": nbg(c)["grade_id"], "points": float(nbg(c)["points"]),
             "max_points": float(nbg(c)["points"]), "passed": True, "message": ""}
            for c in nb.cells if nbg(c).get("grade") and c.cell_type == "code"]


def test_apply_zeroes_the_part_and_names_the_rule():
    src = source("01_convolution")
    vs = found("01_convolution", {"conv_forward_naive": STUB + "    import scipy\n"
                                  "    return scipy.signal.x"})
    out = rules.apply(_verdicts(src), vs, src)
    lost = {t["grade_id"] for t in out if t["points"] == 0.0}
    assert lost == {"test_conv_forward_walkthrough", "test_conv_forward_small",
                    "test_conv_forward_hidden"}
    walk = next(t for t in out if t["grade_id"] == "test_conv_forward_walkthrough")
    assert walk["message"] == ("rule: solution cell conv_forward_naive must not use scipy "
                               "(scipy) (line 4); rule: solution cell conv_forward_naive must "
                               "not use scipy (scipy.signal.x) (line 5)")
    assert not walk["passed"]


def test_apply_notebook_wide_violation_zeroes_every_test_and_keeps_failures_visible():
    src = source("01_convolution")
    vs = found("01_convolution", added={"receptive_field": "import sys\nsys.settrace(None)"})
    tests = _verdicts(src)
    tests[0] |= {"passed": False, "points": 0.0, "message": "out: wrong shape"}
    out = rules.apply(tests, vs, src)
    assert all(t["points"] == 0.0 and t["message"].startswith("rule: added cell 1")
               for t in out)
    assert "the test also failed: out: wrong shape" in out[0]["message"]
    assert rules.apply(tests, [], src) == tests


def test_parts_without_headings_are_one_solution_cell_and_its_tests():
    def cell(kind, gid, text=""):
        meta = {"grade_id": gid, "schema_version": 3, "grade": kind == "test",
                "solution": kind == "solution", "locked": kind != "solution"}
        if kind == "test":
            meta["points"] = 1
        return nbformat.v4.new_code_cell(text, metadata={"nbgrader": meta})

    src = nbformat.v4.new_notebook(cells=[
        cell("readonly", "setup", "from cs231n_lib.checks import record"),
        cell("solution", "f_impl", "def f():\n    return 1"), cell("test", "test_f"),
        cell("solution", "g_impl", "def g():\n    return 2"), cell("test", "test_g")])
    assert rules.part_of_cells(src) == {"f_impl": -1, "test_f": -1, "g_impl": -2,
                                        "test_g": -2}
    sub = copy.deepcopy(src)
    sub.cells[3].source = "import sys\nsys.settrace(None)\ndef g():\n    return 2"
    out = rules.apply([{"grade_id": g, "points": 1.0, "max_points": 1.0, "passed": True,
                        "message": ""} for g in ("test_f", "test_g")],
                      rules.violations(sub, src), src)
    assert [t["points"] for t in out] == [1.0, 0.0]


def test_check_returns_notes_and_applies():
    src = source("01_convolution")
    out, notes = rules.check(_verdicts(src), submit("01_convolution",
                                                    added={"conv1x1": "exec('1')"}), src)
    assert notes == ["rule: added cell 1 must not use exec (line 1)"]
    assert sum(t["points"] for t in out) == 0.0


# --- the rules syntax and the build ------------------------------------------------------------

def test_parse_rules_expands_presets_and_braces():
    r = rules.parse_rules(" forbid @shortcuts, cs231n_lib; allow cs231n_lib.{shapes, layers};"
                          " require loop")
    assert r.forbid == (*rules.PRESETS["shortcuts"], "cs231n_lib")
    assert r.allow == ("cs231n_lib.shapes", "cs231n_lib.layers")
    assert r.require == ("loop",)
    assert rules.Rules.from_metadata({"cs231n": {"rules": r.to_metadata()}}) == r
    assert rules.Rules.from_metadata({}) == rules.Rules()


@pytest.mark.parametrize("text, message", [
    ("ban scipy", "must start with forbid, allow or require"),
    ("forbid", "names nothing"),
    ("require recursion", "unknown requirement 'recursion'"),
    ("forbid sci py", "is not a \\(dotted\\) name"),
    ("forbid @nothing", "unknown rules preset '@nothing'"),
    ("allow cs231n_lib.shapes", "nothing is forbidden or required"),
])
def test_parse_rules_rejects_malformed_specs(text, message):
    with pytest.raises(rules.RulesError, match=message):
        rules.parse_rules(text)


def test_matches_is_component_wise():
    assert rules.matches("scipy.signal.correlate", "scipy")
    assert rules.matches("numpy.lib.stride_tricks.as_strided", "as_strided")
    assert not rules.matches("numpy.lib.stride_tricks_x", "numpy.lib.stride_tricks")
    assert not rules.matches("scipyx.signal", "scipy")
    assert not rules.matches("scipy.signal", "signal", anywhere=False)


def test_build_stores_rules_in_metadata_and_shows_them_to_students():
    build = nbu.load_build()
    cells = build.parse_cells(
        "# %% solution: f\n# rules: forbid scipy; require loop\ndef f():\n"
        "    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n")
    assert cells[0].metadata["cs231n"] == {"rules": {"forbid": ["scipy"], "allow": [],
                                                     "require": ["loop"]}}
    assert cells[0].source.startswith("# Grader rules for this cell (checked on your code): "
                                      "do not use scipy; use a for or while loop")
    assert "# rules:" not in cells[0].source
    assert set(cells[0].metadata["nbgrader"]) == {"grade", "grade_id", "locked",
                                                  "schema_version", "solution"}
    for bad, message in (("# %% solution: f\n# rules: forbid\ndef f():\n    ### BEGIN SOLUTION"
                          "\n    pass\n    ### END SOLUTION\n", "names nothing"),
                         ("# %% tests: t (1 point)\n# rules: forbid scipy\nx\n",
                          "belongs under a solution header")):
        with pytest.raises(ValueError, match=message):
            build.parse_cells(bad)


@pytest.mark.parametrize("name", NAMES)
def test_rules_come_from_the_source_never_from_the_submission(name):
    nb = copy.deepcopy(source(name))
    for cell in nb.cells:  # a submission that strips its rules changes nothing
        cell.metadata.pop("cs231n", None)
    for cell in nb.cells:
        if nbg(cell).get("grade_id") in ("conv_forward_naive", "lenet_spec", "simple_layer_memory",
                                         "conv_output_size", "max_pool_forward",
                                         "spatial_batchnorm_forward"):
            cell.source += "\nimport cs231n_lib.fast_layers as _f\n_x = _f.conv_forward_fast"
    vs = rules.violations(nb, source(name))
    assert vs and all("cs231n_lib" in v.rule for v in vs), messages(vs)
