"""End-to-end grading of the REAL assignments with the demo's sample class, in the sandbox.

One module fixture releases the course into a temporary folder, writes the sample class of
``cs231n_grading.class_demo`` (alice correct, bob untouched, carol half done, dave correct with
warnings and stderr, erin a cut-off notebook), runs the reference notebooks and autogrades the
class with two workers, then autogrades again (resume: everything skipped), exports the CSV and
writes feedback.
Every expected score is computed from the source notebooks' nbgrader metadata; carol's from
the cells ``cs231n_grading.samples`` fills for a "partial" submission and the names each test
cell reads.
"""

import csv
import html
import os
import re
import subprocess
import symtable
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from cs231n_grading.autograde import autograde, load_references
from cs231n_grading.class_demo import CLASS
from cs231n_grading.config import load_config
from cs231n_grading.export import COLUMNS, export
from cs231n_grading.feedback import feedback, render
from cs231n_grading.leakscan import regions
from cs231n_grading.release import release
from cs231n_grading.restore import is_test, nbg
from cs231n_grading.samples import KINDS, write_submission
from cs231n_grading.selfcheck import _has_code
from cs231n_grading.status import StatusStore

pytestmark = pytest.mark.slow
CHECKED = "02_padding_stride"  # a quick notebook for `check` and `verify`
TIMINGS: dict[str, object] = {}  # printed by the fixture (pytest -s)


def quiet(*_):
    pass


# ---------------------------------------------------------------- expected scores (no numbers)

def graded_cells(nb) -> dict[str, float]:
    """{grade_id: points} of the autograded test cells of a source notebook."""
    return {nbg(c)["grade_id"]: float(nbg(c)["points"]) for c in nb.cells if is_test(c)}


def bound_names(source: str) -> set[str]:
    """Module-level names a code cell binds (defs, classes, imports, assignments)."""
    return {s.get_name() for s in symtable.symtable(source, "<cell>", "exec").get_symbols()
            if s.is_assigned() or s.is_imported() or s.is_namespace()}


def free_names(source: str) -> set[str]:
    """Global names a code cell reads (at top level or inside its functions) without binding."""
    top = symtable.symtable(source, "<cell>", "exec")
    own = bound_names(source)
    out = set()

    def walk(table):
        for s in table.get_symbols():
            if s.is_referenced() and (s.is_global() or table is top) and s.get_name() not in own:
                out.add(s.get_name())
        for child in table.get_children():
            walk(child)

    walk(top)
    return out


def solution_dependencies(nb) -> dict[str, set[str]]:
    """{test grade_id: solution grade_ids it needs}, following every name a cell reads to the
    last earlier code cell binding it, through given cells, transitively."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    binds = [bound_names(c.source) for c in cells]

    def needs(i, seen):
        out = set()
        for name in free_names(cells[i].source):
            j = next((j for j in range(i - 1, -1, -1) if name in binds[j]), None)
            if j is None or j in seen:
                continue
            seen.add(j)
            if nbg(cells[j]).get("solution"):
                out.add(nbg(cells[j])["grade_id"])
            out |= needs(j, seen)
        return out

    return {nbg(c)["grade_id"]: needs(i, set()) for i, c in enumerate(cells) if is_test(c)}


def answered(kind: str, release_nb, source_nb) -> set[str]:
    """grade_ids of the solution cells a sample submission of ``kind`` fills in (by comparing
    what ``cs231n_grading.samples`` makes with the release, not by re-implementing it)."""
    made = KINDS[kind](release_nb, source_nb)
    given = {nbg(c).get("grade_id"): c.source for c in release_nb.cells}
    return {nbg(c)["grade_id"] for c in made.cells
            if nbg(c).get("solution") and c.source != given[nbg(c)["grade_id"]]}


def expected_points(kind: str, release_nb, source_nb) -> dict[str, float]:
    """{test grade_id: points expected} for a sample submission of ``kind``."""
    tests = graded_cells(source_nb)
    if kind == "untouched":
        return dict.fromkeys(tests, 0.0)
    done = answered(kind, release_nb, source_nb)
    deps = solution_dependencies(source_nb)
    return {gid: pts if deps[gid] <= done else 0.0 for gid, pts in tests.items()}


# ---------------------------------------------------------------- the one pipeline run

@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    from cs231n_grading.sandbox import sandbox_available

    ok, why = sandbox_available()
    if not ok:
        pytest.fail(f"the real class must be graded in the sandbox, which is unavailable: {why}")
    cfg = load_config(course_dir=tmp_path_factory.mktemp("real") / "course", sandbox=True)
    t0 = time.monotonic()
    release(cfg, log=quiet)
    assignments = cfg.released()
    assert assignments == cfg.assignments() and len(assignments) >= 6
    for student, kind in CLASS.items():
        for a in assignments:
            write_submission(cfg.course_dir, student, a, kind, cfg.graded_notebooks(a))
    TIMINGS["release + sample class"] = time.monotonic() - t0
    t0 = time.monotonic()
    load_references(cfg, assignments, 2, log=quiet)
    TIMINGS["reference runs (6 notebooks, jobs=2)"] = time.monotonic() - t0
    TIMINGS["load average (1, 5, 15 min) before autograde"] = os.getloadavg()
    t0 = time.monotonic()
    first = autograde(cfg, jobs=2, log=quiet)
    TIMINGS["autograde of the class (jobs=2)"] = time.monotonic() - t0
    store = StatusStore(cfg.course_dir)  # when each outcome was stored by the first run
    stored_first = {(r["student"], r["assignment"], r["notebook"]): r["graded_at"]
                    for r in store.query()}
    store.close()
    worked = [r["duration"] for r in first if r.get("duration")]
    TIMINGS["mean seconds per notebook in a worker"] = sum(worked) / len(worked)
    messages = []
    t0 = time.monotonic()
    again = autograde(cfg, jobs=2, log=messages.append)
    TIMINGS["resume: second autograde (jobs=2)"] = time.monotonic() - t0
    csv_path = export(cfg, log=quiet)
    pages = feedback(cfg, log=quiet)
    TIMINGS["load average (1, 5, 15 min) after"] = os.getloadavg()
    print("\n" + "\n".join(f"  {k}: {v:.1f} s" if isinstance(v, float) else f"  {k}: {v}"
                           for k, v in TIMINGS.items()))
    sources = {(a, p.stem): nbformat.read(p, as_version=4)
               for a in assignments for p in cfg.graded_notebooks(a)}
    releases = {(a, s): nbformat.read(cfg.course_dir / "release" / a / f"{s}.ipynb",
                                      as_version=4) for a, s in sources}
    return {"cfg": cfg, "first": first, "again": again, "messages": messages, "csv": csv_path,
            "stored_first": stored_first,
            "pages": pages, "sources": sources, "releases": releases}


def by_key(results):
    return {(r["student"], r["assignment"], r["notebook"]): r for r in results}


# ---------------------------------------------------------------- the tests

def test_every_submission_of_the_class_was_graded_once(graded):
    results = by_key(graded["first"])
    assert set(results) == {(s, a, n) for s in CLASS for a, n in graded["sources"]}
    assert len(graded["first"]) == len(results)


def test_scores_and_statuses_per_student_and_notebook(graded):
    results = by_key(graded["first"])
    carol_points = 0.0
    for (a, stem), src in graded["sources"].items():
        rel = graded["releases"][(a, stem)]
        top = sum(graded_cells(src).values())
        assert top > 0, (a, stem)
        for student, kind in CLASS.items():
            r = results[(student, a, stem)]
            if kind == "broken":
                assert r["status"].startswith("not graded: ") and "invalid JSON" in r["status"]
                assert r["tests"] == [], (student, stem)
                continue
            assert r["status"] == "graded", (student, stem, r["status"], r["notes"])
            assert r["notes"] == [], (student, stem, r["notes"])  # honest work, no flags
            assert r["max_score"] == top, (student, stem)
            want = expected_points(kind, rel, src)
            got = {t["grade_id"]: t["points"] for t in r["tests"]}
            assert got == want, (student, stem, [t for t in r["tests"]
                                                 if t["points"] != want[t["grade_id"]]])
            assert r["score"] == sum(want.values()), (student, stem)
            if kind in ("correct", "warnings"):
                assert r["score"] == top, (student, stem)
            if kind == "untouched":
                assert r["score"] == 0, (student, stem)
            if kind == "partial":
                assert r["score"] < top, stem  # half the answers never earn full marks
                carol_points += r["score"]
    assert carol_points > 0  # ... but earn something


def test_warnings_and_stderr_cost_dave_nothing(graded):
    """dave's notebooks really warn and write to stderr, and score like alice's."""
    results = by_key(graded["first"])
    for a, stem in graded["sources"]:
        executed = graded["cfg"].course_dir / "autograded" / "dave" / a / f"{stem}.ipynb"
        streams = [o.get("text", "") for c in nbformat.read(executed, as_version=4).cells
                   if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr"]
        assert any("debug output on stderr" in t for t in streams), stem
        assert any("this honest solution emits a warning" in t for t in streams), stem
        assert results[("dave", a, stem)]["score"] == results[("alice", a, stem)]["score"]


def test_partial_submission_fills_half_the_answers(graded):
    """The expected-score derivation stands on what samples actually writes to disk."""
    cfg = graded["cfg"]
    kind = CLASS["carol"]
    for (a, stem), src in graded["sources"].items():
        rel = graded["releases"][(a, stem)]
        on_disk = nbformat.read(cfg.course_dir / "submitted" / "carol" / a / f"{stem}.ipynb", 4)
        slots = [nbg(c)["grade_id"] for c in rel.cells if nbg(c).get("solution")]
        done = answered(kind, rel, src)
        assert done == set(slots[:len(done)]) and 0 < len(done) < len(slots), (stem, done)
        assert {nbg(c)["grade_id"] for c in on_disk.cells if nbg(c).get("solution")
                and c.source != next(r.source for r in rel.cells
                                     if nbg(r).get("grade_id") == nbg(c)["grade_id"])} == done


def test_gradebook_holds_the_same_scores(graded):
    results = by_key(graded["first"])
    with Gradebook(graded["cfg"].gradebook_url) as gb:
        for (a, stem), src in graded["sources"].items():
            nb = gb.find_notebook(stem, a)
            assert nb.max_code_score == sum(graded_cells(src).values()), stem
            for student in CLASS:
                r = results[(student, a, stem)]
                sub = gb.find_submission_notebook(stem, a, student)
                if r["status"] != "graded":
                    assert sub.flagged, (student, stem)
                    assert all(g.auto_score is None for g in sub.grades), (student, stem)
                    continue
                assert not sub.flagged
                assert sub.score == r["score"], (student, stem)
                for t in r["tests"]:
                    grade = gb.find_grade(t["grade_id"], stem, a, student)
                    assert grade.auto_score == t["points"], (student, stem, t["grade_id"])


def test_csv_has_one_row_per_student_and_notebook(graded):
    results = by_key(graded["first"])
    table = list(csv.DictReader(graded["csv"].open(encoding="utf-8")))
    assert set(COLUMNS) <= set(table[0]) and {"score", "max_score", "status"} <= set(table[0])
    per_notebook = {(r["student"], r["assignment"], r["notebook"]): r for r in table
                    if r["notebook"] != "(total)"}
    assert len(per_notebook) == len([r for r in table if r["notebook"] != "(total)"])
    assert set(per_notebook) == set(results)
    for key, row in per_notebook.items():
        a, stem = key[1], key[2]
        src = graded["sources"][(a, stem)]
        assert float(row["max_score"]) == sum(float(nbg(c)["points"]) for c in src.cells
                                              if nbg(c).get("grade")), key
        r = results[key]
        if key[0] == "erin":
            assert row["score"] == "", row  # no score, not a 0
            assert row["status"].startswith("not graded: ") and "invalid JSON" in row["status"]
        else:
            assert float(row["score"]) == r["score"], key
            assert row["status"].startswith("graded"), row
    totals = {r["student"]: r for r in table if r["assignment"] == "(all)"}
    assert set(totals) == set(CLASS)
    assert float(totals["alice"]["score"]) == sum(
        r["score"] for k, r in results.items() if k[0] == "alice")
    assert "not graded" in totals["erin"]["status"]


def test_resume_skips_all_graded_work(graded):
    first, again = by_key(graded["first"]), by_key(graded["again"])
    done = [k for k, r in first.items() if r["status"] == "graded"]
    assert len(done) == len(first) - sum(1 for k in first if k[0] == "erin")
    assert f"skipping {len(done)} notebook(s) already graded and unchanged" in graded["messages"]
    for k in done:  # the stored outcome itself, not a re-run with the same result
        assert again[k]["graded_at"] == graded["stored_first"][k], k
        assert again[k]["score"] == first[k]["score"], k
    for k in set(first) - set(done):  # not graded work is retried, and fails the same way
        assert again[k]["status"] == first[k]["status"], k
    store = StatusStore(graded["cfg"].course_dir)
    try:
        stored = by_key(store.query())
    finally:
        store.close()
    assert all(stored[k]["graded_at"] == graded["stored_first"][k] for k in done)


def hidden_lines(sources) -> set[str]:
    """Every non-trivial line (> 20 characters) of every hidden-test block of the course."""
    return {ln for nb in sources.values() for c in nb.cells
            for block in regions(c.source, "HIDDEN TESTS") for ln in block if len(ln) > 20}


def secrets_for(student_text: str, releases, lines: set[str]) -> set[str]:
    """The hidden-test lines a student has not seen: not in any released notebook (a line a
    visible test shares) and not in the student's own submission (e.g. the solution's code)."""
    known = "\n".join(c.source for nb in releases.values() for c in nb.cells) + student_text
    return {ln for ln in lines if ln not in known}


def as_shown(page: str) -> str:
    """The text of an HTML page as a browser shows it (tags, e.g. highlighting, gone)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_feedback_shows_results_and_no_hidden_test_source(graded):
    cfg, results = graded["cfg"], by_key(graded["first"])
    root = cfg.course_dir / "feedback"
    pages = {(p.parts[-3], p.parts[-2], p.stem): p for p in graded["pages"]}
    assert set(pages) == set(results)
    assert all(p.is_file() and p.parent.parent.parent == root for p in pages.values())
    hidden = hidden_lines(graded["sources"])
    for key, page in pages.items():
        student, a, stem = key
        submitted = cfg.course_dir / "submitted" / student / a / f"{stem}.ipynb"
        secret = secrets_for(submitted.read_text(encoding="utf-8"), graded["releases"], hidden)
        assert len(secret) > 0.9 * len(hidden), (len(secret), len(hidden))
        raw = page.read_text(encoding="utf-8")
        shown = as_shown(raw)
        for line in secret:
            assert line not in shown and html.escape(line) not in raw, (page, line)
        r = results[key]
        if r["status"] != "graded":
            assert "invalid JSON" in shown, page
            continue
        assert f"Autograded score: {r['score']:g} / {r['max_score']:g}" in shown, page
        for t in r["tests"]:
            verdict = "passed" if t["passed"] else "failed"
            assert re.search(rf"{re.escape(t['grade_id'])}\s*{t['points']:g} / "
                             rf"{t['max_points']:g}\s*{verdict}", shown), (page, t["grade_id"])
    bob = as_shown(pages[("bob", CHECKED, CHECKED)].read_text())
    assert "failed" in bob and "hidden tests: not shown" in bob
    # the check can fail: the executed notebook, rendered without redaction, shows the lines
    executed = cfg.course_dir / "autograded" / "alice" / CHECKED / f"{CHECKED}.ipynb"
    unredacted = as_shown(render(nbformat.read(executed, as_version=4), ""))
    submitted = cfg.course_dir / "submitted" / "alice" / CHECKED / f"{CHECKED}.ipynb"
    assert any(line in unredacted for line in secrets_for(
        submitted.read_text(encoding="utf-8"), graded["releases"], hidden))


def cli(*args, course_dir: Path) -> subprocess.CompletedProcess:
    """``cs231n-course`` (the installed console script of this interpreter) with ``args``."""
    exe = Path(sys.executable).parent / "cs231n-course"
    assert exe.is_file(), f"{exe} is missing: `pip install -e .` the project"
    return subprocess.run([str(exe), "--course-dir", str(course_dir), *args],
                          capture_output=True, text=True, timeout=600)


def visible_points(release_nb) -> float:
    """Points of the test cells a student can run (not only a docstring + hidden block)."""
    return sum(float(nbg(c)["points"]) for c in release_nb.cells
               if is_test(c) and _has_code(c.source))


def test_check_passes_alice_and_fails_bob(graded):
    cfg = graded["cfg"]
    full = visible_points(graded["releases"][(CHECKED, CHECKED)])
    assert full > 0
    sub = cfg.course_dir / "submitted"
    alice = cli("check", str(sub / "alice" / CHECKED / f"{CHECKED}.ipynb"),
                course_dir=cfg.course_dir)
    assert alice.returncode == 0, alice.stdout + alice.stderr
    assert f"Total: visible tests {full:g} / {full:g}" in alice.stdout
    assert "FAIL" not in alice.stdout and "hidden test, run by the grader only" in alice.stdout
    bob = cli("check", str(sub / "bob" / CHECKED / f"{CHECKED}.ipynb"),
              course_dir=cfg.course_dir)
    assert bob.returncode == 1, bob.stdout + bob.stderr
    assert f"Total: visible tests 0 / {full:g}" in bob.stdout
    failing = re.findall(r"FAIL (\w+)", bob.stdout)
    visible = [nbg(c)["grade_id"] for c in graded["releases"][(CHECKED, CHECKED)].cells
               if is_test(c) and _has_code(c.source)]
    assert failing == visible and "NotImplementedError" in bob.stdout, bob.stdout
    erin = cli("check", str(sub / "erin" / CHECKED / f"{CHECKED}.ipynb"),
               course_dir=cfg.course_dir)
    assert erin.returncode == 2 and "invalid JSON" in erin.stdout, erin.stdout + erin.stderr


def test_verify_passes_on_a_real_assignment(graded, tmp_path):
    out = cli("verify", CHECKED, "--jobs", "1", course_dir=tmp_path / "verify_course")
    assert out.returncode == 0, out.stdout + out.stderr
    total = sum(graded_cells(graded["sources"][(CHECKED, CHECKED)]).values())
    assert re.search(rf"{CHECKED}\s+{total:g} / {total:g}\s+0 / {total:g}\s+OK", out.stdout), \
        out.stdout
    assert "1 of 1 notebook(s) verified" in out.stdout
