"""``cs231n-course feedback``: per-student HTML with each test's result, never hidden tests.

The page is a header (status, notes, a table of test verdicts and messages) followed by the
executed notebook, in which hidden-test regions are replaced by a placeholder line, outputs of
cells with hidden tests are cut to their error line, and any hidden-test line that surfaces in
any output (e.g. printed by student code) is blanked.
"""

from __future__ import annotations

import html
import re

import nbformat

from grading.config import CourseConfig
from grading.leakscan import hidden_test_lines
from grading.status import StatusStore

PLACEHOLDER = "# (hidden tests: not shown)"
REDACTED = "[hidden test line removed]"
_HIDDEN = re.compile(r"^([ \t]*)#+[ \t]*BEGIN HIDDEN TESTS.*?^[ \t]*#+[ \t]*END HIDDEN TESTS[^\n]*",
                     re.S | re.M)


def _scrub(value, lines: list[str]):
    """``value`` with every hidden-test line replaced (recursively)."""
    if isinstance(value, str):
        for ln in lines:
            if ln in value:
                value = value.replace(ln, REDACTED)
        return value
    if isinstance(value, list):
        return [_scrub(v, lines) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, lines) for k, v in value.items()}
    return value


def redact(nb, hidden_lines: list[str]):
    """A copy of ``nb`` with no hidden-test source left anywhere (sources or outputs)."""
    nb = nbformat.from_dict(nbformat.v4.upgrade(nb) if nb.get("nbformat") != 4 else nb)
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)
    for cell in nb.cells:
        had_hidden = bool(_HIDDEN.search(cell.source))
        cell.source = _HIDDEN.sub(lambda m: m.group(1) + PLACEHOLDER, cell.source)
        if cell.cell_type != "code":
            continue
        outs = []
        for o in cell.outputs:
            if had_hidden and o.output_type != "error":
                continue
            if o.output_type == "error" and had_hidden:
                o = nbformat.v4.new_output("stream", name="stderr",
                                           text=f"{o.ename}: {o.evalue}\n")
            if o.get("data"):
                o.data = {k: v for k, v in o.data.items() if not k.startswith("application/vnd")}
                if not o.data:
                    continue
            outs.append(o)
        cell.outputs = _scrub(outs, hidden_lines)
        cell.outputs = [nbformat.from_dict(o) for o in cell.outputs]
    return nb


def header_html(student: str, assignment: str, result: dict | None) -> str:
    """The page header: status, score, notes and the table of test verdicts."""
    if result is None:
        return (f"<h1>{html.escape(assignment)}: {html.escape(student)}</h1>"
                "<p><b>Status:</b> not submitted</p>")
    rows = "".join(
        f"<tr><td>{html.escape(t['grade_id'])}</td><td>{t['points']:g} / {t['max_points']:g}"
        f"</td><td>{'passed' if t['passed'] else 'failed'}</td>"
        f"<td>{html.escape(t['message'])}</td></tr>" for t in result["tests"])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result["notes"] if "\n" not in n)
    return (f"<h1>{html.escape(assignment)} / {html.escape(result['notebook'])}: "
            f"{html.escape(student)}</h1>"
            f"<p><b>Status:</b> {html.escape(result['status'])}</p>"
            f"<p><b>Autograded score:</b> {result['score']:g} / {result['max_score']:g}</p>"
            + (f"<p><b>Notes:</b></p><ul>{notes}</ul>" if notes else "")
            + ("<table border='1' cellpadding='4'><tr><th>test</th><th>points</th>"
               f"<th>result</th><th>message</th></tr>{rows}</table><hr>" if rows else "<hr>"))


def render(nb, header: str) -> str:
    """HTML of ``nb`` (nbconvert, classic template) with ``header`` on top."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    return body.replace("<body>", "<body>\n" + header, 1) if "<body>" in body else header + body


def feedback(cfg: CourseConfig, assignment: str | None = None, students=None, log=print):
    """Write ``<course>/feedback/<student>/<assignment>/<notebook>.html``; returns the paths."""
    cfg.released()
    store = StatusStore(cfg.course_dir)
    results = store.query(**({"assignment": assignment} if assignment else {}))
    store.close()
    hidden = {}
    written = []
    for r in results:
        if students and r["student"] not in students:
            continue
        a, nbname = r["assignment"], r["notebook"]
        if (a, nbname) not in hidden:
            src = next(p for p in cfg.graded_notebooks(a) if p.stem == nbname)
            text = "\n".join(c.source for c in nbformat.read(src, as_version=4).cells)
            hidden[(a, nbname)] = sorted(set(hidden_test_lines(text)), key=len, reverse=True)
        executed = cfg.course_dir / "autograded" / r["student"] / a / f"{nbname}.ipynb"
        head = header_html(r["student"], a, r)
        if executed.is_file() and r["status"] != "" and r["tests"]:
            page = render(redact(nbformat.read(executed, as_version=4), hidden[(a, nbname)]),
                          head)
        else:
            page = f"<html><body>{head}</body></html>"
        out = cfg.course_dir / "feedback" / r["student"] / a / f"{nbname}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
        written.append(out)
    log(f"wrote {len(written)} feedback page(s) under {cfg.course_dir / 'feedback'}")
    return written
