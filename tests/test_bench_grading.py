"""bench/grading.py: its smoke run on the fixture course (both graders grade the same two
students and agree on their points; the reference records are cached) and its helpers. Not a
test of speed: the benchmark prints that."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "grading.py"


@pytest.fixture(scope="module")
def bench():
    """bench/grading.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_grading", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_run_grades_the_same_class_with_both_graders(tmp_path):
    out_json = tmp_path / "out.json"
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-profile",
                           "--json", str(out_json)],
                          capture_output=True, text=True, timeout=600, check=True)
    rows = {line[:31].strip(): line[31:].split() for line in done.stdout.splitlines()}
    for label in ("cs231n-course autograde, cold", "cs231n-course autograde, warm",
                  "nbgrader autograde", "plain nbclient execution"):
        assert label in rows, done.stdout
        assert rows[label][0] == "2"  # notebooks graded (one assignment, two students)
    out = json.loads(out_json.read_text())
    scores = out["scores"]
    assert set(scores) == {"alice01", "carol01"}  # correct, half done
    for s in scores.values():  # the real check: the two gradebooks give the same points
        assert s["notebooks_compared"] == 1 and s["ours"] == s["nbgrader"]
    assert out["nbgrader_failed"] == []
    assert scores["alice01"]["ours"] > scores["carol01"]["ours"] > 0
    ref = out["reference"]
    assert ref["runs_cold"] == 1 and ref["started_in_cold_run"]
    assert not ref["started_in_warm_run"] and ref["files_untouched_by_warm_run"]
    assert ref["key_changes_with_source"]
    for name in ("ours_cold", "ours_warm", "nbgrader"):
        run = out["runs"][name]
        assert run["per_notebook"]["n"] == 2 and run["core_s"] > 0


def test_class_list_copies_the_demo_class_in_order(bench):
    students = bench.class_list(7)
    assert list(students) == ["alice01", "carol01", "dave01", "bob01", "erin01", "alice02",
                              "carol02"]
    assert students["alice02"] == "correct" and students["erin01"] == "broken"
    with pytest.raises(ValueError, match="--students must be at least 1, got 0"):
        bench.class_list(0)


def test_summary_median_and_p90(bench):
    s = bench.summary([float(x) for x in range(1, 11)])
    assert s["median"] == 5.5 and s["p90"] == pytest.approx(9.1) and s["n"] == 10
    assert bench.summary([]) == {"median": None, "p90": None, "n": 0}


def test_timers_add_up_calls_and_put_everything_back(bench):

    class Thing:
        def work(self, x):
            return x + 1

    times = {}
    with bench.timers(times, [(Thing, "work", "w")]):
        assert Thing().work(1) == 2 and Thing().work(2) == 3
        assert "work" in vars(Thing)
    assert set(times) == {"w"} and times["w"] >= 0
    assert Thing().work(5) == 6 and Thing.work.__name__ == "work"


def test_nbgrader_spans_pair_pre_and_post_hooks(bench, tmp_path):
    nb = str(tmp_path / "submitted" / "alice01" / "01_a" / "01_a.ipynb")
    bad = str(tmp_path / "submitted" / "erin01" / "01_a" / "01_a.ipynb")
    events = [{"event": "pre", "t": 10.0, "notebooks": [nb]},
              {"event": "pre", "t": 11.0, "notebooks": [bad]},  # failed: no post hook
              {"event": "post", "t": 13.5, "notebooks": [nb]}]
    (tmp_path / "hooks.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    assert bench.nbgrader_spans([tmp_path]) == {("alice01", "01_a", "01_a"): 3.5}


def test_compare_scores_counts_only_notebooks_both_graded(bench):
    students = {"alice01": "correct", "dave01": "warnings"}
    ours = {("alice01", "a", "a"): 3.0, ("alice01", "b", "b"): 2.0, ("dave01", "a", "a"): 3.0}
    theirs = {("alice01", "a", "a"): 3.0, ("alice01", "b", "b"): 0.0, ("dave01", "a", "a"): 1.0}
    both = {("alice01", "a", "a"), ("dave01", "a", "a")}  # nbgrader failed on alice01's b
    out = bench.compare_scores(students, ours, theirs, both)
    assert out["alice01"]["agree"] and out["alice01"]["ours"] == 3.0
    assert out["alice01"]["not_graded_by_both"] == ["b/b"]
    assert not out["dave01"]["agree"] and out["dave01"]["nbgrader"] == 1.0


def test_targets_line_shows_each_ratio_beside_what_it_divides(bench):
    def runs(ours, theirs):
        return {"ours_warm": {"overhead": {"median": ours}},
                "nbgrader": {"overhead": {"median": theirs}}}

    t = bench.targets({"ours_warm": {"overhead": {"median": -0.19}, "wall_s": 160.0,
                                     "core_s": 280.0},
                       "ours_cold": {"wall_s": 202.0},
                       "nbgrader": {"overhead": {"median": 0.37}, "wall_s": 200.0,
                                    "core_s": 335.0}})
    line = bench.targets_line(runs(-0.19, 0.37), t)
    assert "ours -0.19 s (below 0: faster than plain execution), nbgrader 0.37 s" in line
    assert "ours/nbgrader -0.51 (<= 1.2)" in line and "warm 0.80 cold 1.01 (<= 1.0)" in line
    t["overhead_ratio_median"] = 0.5
    line = bench.targets_line(runs(0.12, 0.24), t)
    assert "ours 0.12 s, nbgrader 0.24 s: ours/nbgrader 0.50" in line and "below 0" not in line
