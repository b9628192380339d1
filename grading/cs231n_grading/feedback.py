"""``cs231n-course feedback``: per-student HTML pages built from what cannot leak hidden tests.

A page shows only (a) the student's own notebook as submitted (``course/submitted/...``, read
without following links, with the outputs the student saved in it), in which every instructor
test cell is shown as released (hidden-test regions replaced by a placeholder, no outputs), and
(b) the status, notes and the judge's verdict and message per test from the status store, with
points from nbgrader's gradebook (manual grades and overrides included). Nothing the kernel
printed during grading is shown: a hook that captured hidden-test source while the grader ran
has no way onto the page. Every HTML fragment from the notebook is sanitised by nbconvert
(bleach): no student ``<script>``, event handler or ``javascript:`` link runs when the page is
opened; the header's parts are escaped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path, PurePath

import nbformat
from nbformat import NotebookNode

from cs231n_grading.config import CourseConfig
from cs231n_grading.editions import edition_name, shown_note
from cs231n_grading.gradebook import NotebookScores, graded_score, notebook_scores, open_gradebook
from cs231n_grading.locale import tr
from cs231n_grading.markers import has_hidden_tests
from cs231n_grading.outcome import Status
from cs231n_grading.restore import InvalidSubmission, is_test, load_notebook_text, nbg
from cs231n_grading.safe_files import RefusedFile, read_file, submission_root
from cs231n_grading.sanitize import sanitizer
from cs231n_grading.status import StatusStore

PLACEHOLDER = "# (hidden tests: not shown)"
# what a student's saved output may show (nbconvert's SanitizeHTML drops other kinds anyway)
SHOWN_MIME = ("text/plain", "text/html", "text/markdown", "text/latex", "image/png",
              "image/jpeg")


# --------------------------------------------------------------------------- the notebook shown

def _text(value) -> str | None:
    """A notebook text field (a string or a list of strings) as one string, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return None


def _student_output(raw) -> NotebookNode | None:
    """A clean copy of one saved output of the student's (known kinds and fields only)."""
    if not isinstance(raw, dict):
        return None
    kind = raw.get("output_type")
    if kind == "stream":
        text = _text(raw.get("text"))
        name = raw.get("name") if raw.get("name") in ("stdout", "stderr") else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=text) if text else None
    if kind == "error":
        trace = raw.get("traceback") if isinstance(raw.get("traceback"), list) else []
        return nbformat.v4.new_output("error", ename=str(raw.get("ename", "Error")),
                                      evalue=str(raw.get("evalue", "")),
                                      traceback=[t for t in trace if isinstance(t, str)])
    if kind in ("display_data", "execute_result"):
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        data = {k: _text(data[k]) for k in SHOWN_MIME if _text(data.get(k)) is not None}
        return nbformat.v4.new_output("display_data", data=data) if data else None
    return None


def _released_test(gid: str, source: dict[str, NotebookNode],
                   release: dict[str, NotebookNode]) -> NotebookNode:
    """Instructor test cell ``gid`` as students were given it, hidden tests as a placeholder."""
    text = release[gid].source if gid in release else ""
    if has_hidden_tests(source[gid].source) or gid not in release:
        text = (text.rstrip() + "\n" if text.strip() else "") + PLACEHOLDER
    return nbformat.v4.new_code_cell(text)


def submitted_view(data: bytes, source: NotebookNode,
                   release: NotebookNode | None) -> NotebookNode:
    """The notebook a feedback page shows, from the submitted file's bytes (see module
    docstring); InvalidSubmission when they are not a notebook."""
    parsed = load_notebook_text(data)  # validates every cell (no outputs kept)
    raw_cells = json.loads(data)["cells"]
    tests = {nbg(c)["grade_id"]: c for c in source.cells if is_test(c) and nbg(c).get("grade_id")}
    given = {nbg(c).get("grade_id"): c for c in (release.cells if release else [])}
    cells = []
    for cell, raw in zip(parsed.cells, raw_cells, strict=True):
        gid = nbg(cell).get("grade_id")
        if isinstance(gid, str) and gid in tests:
            cells.append(_released_test(gid, tests, given))
            continue
        if cell.cell_type == "raw":
            continue  # raw cells are not rendered for students; nothing to show
        shown = (nbformat.v4.new_markdown_cell(cell.source) if cell.cell_type == "markdown"
                 else nbformat.v4.new_code_cell(cell.source))
        if cell.cell_type == "code":
            outs = raw.get("outputs") if isinstance(raw.get("outputs"), list) else []
            shown.outputs = [o for o in map(_student_output, outs) if o is not None]
            count = raw.get("execution_count")
            shown.execution_count = count if isinstance(count, int) else None
        cells.append(shown)
    return nbformat.v4.new_notebook(cells=cells, metadata={"language_info": {"name": "python"}})


def render(nb: NotebookNode, header: str) -> str:
    """HTML of ``nb`` (nbconvert, classic template) with ``header`` on top, sanitised: the
    outputs by SanitizeHTML (active kinds dropped, HTML cleaned), and every HTML fragment the
    template emits (rendered markdown, HTML outputs, highlighted code) by the exporter's
    ``sanitize_html`` (bleach), after markdown is rendered."""
    from nbconvert import HTMLExporter

    nb = nbformat.from_dict(nb)  # a copy: the caller's notebook is left as it is
    pre = sanitizer()
    for cell in nb.cells:
        if cell.cell_type == "code":  # an output left with no data would render as a warning
            cell.outputs = [o for o in pre.sanitize_code_outputs(cell.outputs)
                            if o.output_type in ("stream", "error") or o.get("data")]
    exporter = HTMLExporter(template_name="classic", sanitize_html=True)
    exporter.register_filter("clean_html", pre.sanitize_html_tags)  # same rules everywhere
    body, _ = exporter.from_notebook_node(nb)
    return body.replace("<body>", "<body>\n" + header, 1) if "<body>" in body else header + body


# --------------------------------------------------------------------------- the header

def _points(score: float | None, max_score: float, lang: str = "en") -> str:
    """``3 / 4``, or ``not graded / 4`` when there is no score (never a 0)."""
    return f"{tr('not graded', lang) if score is None else f'{score:g}'} / {max_score:g}"


def status_text(status: str, lang: str = "en") -> str:
    """A stored status (cs231n_grading.outcome) as the student reads it, in ``lang``."""
    parsed = Status.parse(status)
    if parsed.graded:
        return tr("graded", lang)
    return tr("not graded: {reason}", lang, reason=parsed.reason)


def _test_rows(result: dict, scores: NotebookScores | None, has_score: bool,
               lang: str = "en") -> str:
    """Table rows: one per judged test (points from the gradebook), one per written answer."""
    e = html.escape
    cells = scores.tests if scores else {}
    rows = []
    for t in result["tests"]:
        cell = cells.get(t["grade_id"])
        points = _points((cell.score or 0.0) if cell and has_score else None,
                         cell.max_score if cell else 0.0, lang)
        verdict = tr("passed", lang) if t["passed"] else tr("failed", lang)
        if cell and cell.manual:
            verdict += tr("; score set by the instructor", lang)
        message = tr("passed", lang) if t["message"] == "passed" else str(t["message"])
        rows.append(f"<tr><td>{e(str(t['grade_id']))}</td><td>{points}</td><td>{verdict}</td>"
                    f"<td>{e(message)}</td></tr>")
    for gid, cell in (scores.written.items() if scores else ()):
        state = (tr("not graded yet", lang) if cell.score is None
                 else tr("graded by the instructor", lang))
        rows.append(f"<tr><td>{e(gid)}</td><td>{_points(cell.score, cell.max_score, lang)}</td>"
                    f"<td>{tr('written answer', lang)}</td><td>{state}</td></tr>")
    return "".join(rows)


def header_html(student: str, assignment: str, result: dict | None,
                scores: NotebookScores | None = None, lang: str | None = None) -> str:
    """The page header: status, points (from the gradebook), notes and the verdict table, in
    ``lang`` (default: the language of the graded edition, ``result['lang']``)."""
    e = html.escape
    lang = lang or (result or {}).get("lang") or "en"
    if result is None:
        return (f"<h1>{e(assignment)}: {e(student)}</h1>"
                f"<p><b>{tr('Status:', lang)}</b> {tr('not submitted', lang)}</p>")
    total = graded_score(result, scores)
    has_score = total is not None
    notes = "".join(f"<li>{e(shown_note(n, lang))}</li>" for n in result["notes"]
                    if "\n" not in n)
    parts = [f"<h1>{e(assignment)} / {e(result['notebook'])}: {e(student)}</h1>",
             f"<p><b>{tr('Status:', lang)}</b> {e(status_text(result['status'], lang))}</p>"]
    if scores is not None:
        autograded = _points(scores.test_score if has_score else None, scores.max_test_score,
                             lang)
        parts += [f"<p><b>{tr('Autograded score:', lang)}</b> {autograded}"
                  + (tr(" (includes scores set by the instructor)", lang)
                     if scores.overridden else "") + "</p>",
                  f"<p><b>{tr('Total:', lang)}</b> {_points(total, scores.max_score, lang)}"
                  + (tr("; written answers not graded yet", lang)
                     if scores.ungraded_answers else "") + "</p>"]
    if notes:
        parts.append(f"<p><b>{tr('Notes:', lang)}</b></p><ul>{notes}</ul>")
    rows = _test_rows(result, scores, has_score, lang)
    if rows:
        heads = "".join(f"<th>{h}</th>" for h in (tr("test", lang), tr("points", lang),
                                                     tr("result", lang), tr("message", lang)))
        parts.append(f"<table border='1' cellpadding='4'><tr>{heads}</tr>{rows}</table>")
    return "".join(parts) + "<hr>"


# --------------------------------------------------------------------------- pages

def _instructor_notebooks(cfg: CourseConfig, assignment: str, notebook: str,
                          lang: str = "en"):
    """(source as released, release) notebooks of ``assignment``/``notebook`` in the edition
    ``lang`` (the English ones when that edition was not released)."""
    src = next(p for p in cfg.graded_notebooks(assignment) if p.stem == notebook)
    edition = src.with_name(edition_name(notebook, lang))
    src = edition if edition.is_file() else src
    rel = cfg.course_dir / "release" / assignment / src.name
    return (nbformat.read(src, as_version=4),
            nbformat.read(rel, as_version=4) if rel.is_file() else None)


def page_html(cfg: CourseConfig, result: dict, scores: NotebookScores | None,
              instructor) -> str:
    """The feedback page of one stored result."""
    student, a, name = result["student"], result["assignment"], result["notebook"]
    lang = result.get("lang") or "en"
    head = header_html(student, a, result, scores)
    root, rel = submission_root(cfg.course_dir / "submitted" / student / a)
    try:
        data = read_file(root, PurePath(rel, edition_name(name, lang)),
                         max_bytes=cfg.max_notebook_bytes)
        return render(submitted_view(data, *instructor), head)
    except (RefusedFile, InvalidSubmission, OSError) as err:
        why = html.escape(tr("your submitted notebook cannot be shown: {error}", lang,
                             error=err))
        return f"<html><body>{head}<p>{why}</p></body></html>"


def feedback(cfg: CourseConfig, assignment: str | None = None, students=None,
             log=print) -> list[Path]:
    """Write ``<course>/feedback/<student>/<assignment>/<notebook>.html``; returns the paths."""
    cfg.released()
    store = StatusStore(cfg.course_dir)
    results = store.query(**({"assignment": assignment} if assignment else {}))
    store.close()
    instructor: dict[tuple[str, str], tuple] = {}
    written = []
    with open_gradebook(cfg.gradebook_url) as gb:
        for r in results:
            if students and r["student"] not in students:
                continue
            key = (r["assignment"], r["notebook"])
            edition = (*key, r.get("lang") or "en")
            if edition not in instructor:
                instructor[edition] = _instructor_notebooks(cfg, *edition)
            scores = notebook_scores(gb, r["student"], *key)
            out = cfg.course_dir / "feedback" / r["student"] / key[0] / f"{key[1]}.html"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(page_html(cfg, r, scores, instructor[edition]), encoding="utf-8")
            written.append(out)
    log(f"wrote {len(written)} feedback page(s) under {cfg.course_dir / 'feedback'}")
    return written

