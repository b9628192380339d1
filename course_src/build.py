"""Build the nbgrader source notebooks in ``assignments/`` from their text form in ``course_src/``.

Each notebook is written as a Python file in the percent format (``# %%`` starts a cell), which
diffs and reviews like code and is kept outside nbgrader's assignment folders (nbgrader would copy
a ``.py`` file there to students unchanged). A cell header carries the cell's nbgrader role::

    # %% [markdown]                              read-only explanation
    # %%                                         read-only code (setup, demonstrations)
    # %% solution: conv_forward_naive            the student writes this cell
    # %% tests: test_conv_forward (4 points)     autograded test cell (locked)
    # %% [markdown] answer: q_pooling (2 points) manually graded written answer

A solution header may be followed directly by one rules line, the grader's "how" rules for that
exercise (see ``grading/cs231n_grading/rules.py``), e.g.::

    # %% solution: conv_forward_naive
    # rules: forbid scipy, cs231n_lib; allow cs231n_lib.shapes; require loop

A solution that the library also holds as an ``@exercise`` is written once, in the library: the
lines under the header (and its rules line) import the functions, so the source is valid Python
that linters read as the notebook behaves, and the build replaces them by the functions' source
(without the decorator), each body after its docstring between the solution markers, below the
cell's other lines (the rules line stays first)::

    # %% solution: activation_bytes
    # rules: forbid cs231n_lib
    from cs231n_lib.memory import activation_bytes  # solution from the library

The build stores rules in the cell's ``metadata.cs231n.rules`` (nbgrader's own metadata rejects
unknown keys) and replaces the line by a comment that tells students the same rules; the
grader reads them from the instructor's source notebook only.

Markdown lines are written as comments (``# text``). The build writes each cell with exact nbgrader
metadata (schema v3), deterministic cell ids (the grade ids), and no outputs or execution counts.

Test cells get one line from the build: a test cell that runs visible tests ends with
``print("✓ <grade_id> passed (visible tests; ...)")`` (``cs231n_lib.checks.pass_message``), so it
ends with that line or with its first failure; a cell that holds only hidden tests has its
docstring written as a comment, so the student's placeholder (nbgrader strips the hidden region)
runs silently instead of echoing the docstring as ``Out[n]``.

nbgrader replaces a whole written-answer cell by "YOUR ANSWER HERE" in the student version, so
the question must not live in it: when an answer cell's text has a question above a line
starting with ``**Reference answer`` the build puts the question in a read-only markdown cell of
its own, just before the answer cell.

    python course_src/build.py           # rewrite assignments/NN_name/NN_name.ipynb
    python course_src/build.py --check   # exit 1 if a committed notebook is out of sync
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat

from cs231n_grading.markers import (
    BEGIN_HIDDEN_TESTS,
    BEGIN_SOLUTION,
    END_HIDDEN_TESTS,
    END_SOLUTION,
    HIDDEN_TESTS,
    REGION,
)
from cs231n_grading.rules import META_KEY, RULES_LINE, RulesError, parse_rules
from cs231n_grading.student_edition import docstring_stmt, find_exercises
from cs231n_lib.checks import pass_message

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = Path(__file__).resolve().parent
ASSIGNMENTS = ROOT / "assignments"
SOURCE_GLOB = "[0-9][0-9]_*.py"

HEADER = re.compile(
    r"^# %%(?P<md> \[markdown\])?"
    r"(?: (?P<role>solution|tests|answer): (?P<id>[A-Za-z0-9_-]+)"
    r"(?: \((?P<points>\d+) points?\))?)?\s*$")
MARKER = "  # solution from the library"
FROM_LINE = re.compile(r"^from (?P<module>[A-Za-z_][\w.]*) import (?P<names>\(|\w+(?:, \w+)*)"
                       + re.escape(MARKER) + r"\s*$")
ANSWER_MARKER = "**Reference answer"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
ROLES = {  # role -> (grade, solution, locked)
    None: (False, False, True),
    "solution": (False, True, False),
    "tests": (True, False, True),
    "answer": (True, True, False),
}


def _strip_blank(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _markdown_text(lines: list[str], where: str) -> str:
    out = []
    for line in lines:
        if line == "#":
            out.append("")
        elif line.startswith("# "):
            out.append(line[2:])
        elif not line.strip():
            out.append("")
        else:
            raise ValueError(f"{where}: markdown line must start with '# ': {line!r}")
    return "\n".join(out)


def _solution_rules(lines: list[str], where: str) -> tuple[list[str], dict | None]:
    """Split a solution cell's ``# rules:`` line off its body: (body lines with the rules
    rendered as a comment for students, rules metadata or None)."""
    if not lines or not lines[0].startswith(RULES_LINE):
        return lines, None
    try:
        rules = parse_rules(lines[0][len(RULES_LINE):])
    except RulesError as err:
        raise ValueError(f"{where}: {err}") from None
    return rules.comment("en").splitlines() + lines[1:], rules.to_metadata()


def _docstring(tree: ast.Module) -> ast.Expr | None:
    """The leading string statement of a module, or None."""
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
            first.value.value, str):
        return first
    return None


def _runs_visible_tests(text: str, where: str) -> bool:
    """Whether a test cell runs anything besides its docstring once its hidden region is cut."""
    try:
        tree = ast.parse(REGION.sub(
            lambda m: "" if m.group(1) == HIDDEN_TESTS else m.group(0), text))
    except SyntaxError as err:
        raise ValueError(f"{where} is not valid Python: {err}") from None
    doc = _docstring(tree)
    return any(stmt is not doc for stmt in tree.body)


def _finish_test_cell(text: str, grade_id: str, where: str) -> str:
    """A test cell as built: the pass line appended when it runs visible tests, else (hidden
    tests only) its docstring written as a comment so the released placeholder is silent."""
    if _runs_visible_tests(text, f"{where}: test cell {grade_id}"):
        line = json.dumps(pass_message(grade_id, "en"), ensure_ascii=False)
        return f"{text}\nprint({line})"
    doc = _docstring(ast.parse(text))
    if doc is None:
        return text
    lines = text.split("\n")
    comment = [f"# {ln}".rstrip() for ln in doc.value.value.strip().split("\n")]
    return "\n".join(lines[:doc.lineno - 1] + comment + lines[doc.end_lineno:])


def module_source(module: str) -> tuple[str, Path]:
    """The source text and file of an importable module (found, not imported)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"solution source: no Python module {module!r}")
    path = Path(spec.origin)
    return path.read_text(encoding="utf-8"), path


def library_solution(module: str, name: str) -> str:
    """The source of the ``@exercise`` function ``name`` of ``module`` as a solution, without its
    decorators: its own solution markers kept (they must enclose statements, so that the student
    edition's stub removes them), or else its whole body after the docstring between markers."""
    source, path = module_source(module)
    found = {ex.qualname: ex.node for ex in find_exercises(source, path)}
    if name not in found:
        raise ValueError(f"solution source: {module}.{name} is not an @exercise function "
                         f"(the exercises there: {', '.join(sorted(found)) or 'none'})")
    node = found[name]
    lines = source.splitlines()
    own = lines[node.lineno - 1:node.end_lineno]
    marked = "\n".join(own)
    if BEGIN_SOLUTION in marked or END_SOLUTION in marked:
        if marked.count(BEGIN_SOLUTION) != 1 or marked.count(END_SOLUTION) != 1:
            raise ValueError(f"solution source: {module}.{name} needs one {BEGIN_SOLUTION} and "
                             f"one {END_SOLUTION}, both before its last statement ends")
        return marked
    doc = docstring_stmt(node)
    split = doc.end_lineno if doc else node.body[0].lineno - 1
    indent = " " * node.body[0].col_offset
    return "\n".join(lines[node.lineno - 1:split] + [f"{indent}{BEGIN_SOLUTION}"]
                     + lines[split:node.end_lineno] + [f"{indent}{END_SOLUTION}"])


def _definition_order(pair: tuple[str, str]) -> tuple[str, int]:
    """(module, line of the definition) of a library exercise function."""
    module, name = pair
    source, path = module_source(module)
    lines = {ex.qualname: ex.node.lineno for ex in find_exercises(source, path)}
    return module, lines.get(name, 0)


def _library_imports(lines: list[str]) -> tuple[list[re.Match], list[str]]:
    """The library imports of a solution cell (after its rules line, if any), one line or
    parenthesised over several as ruff formats them, and the cell's lines without them."""
    head = 1 if lines and lines[0].startswith(RULES_LINE) else 0
    sources = []
    while len(lines) > head:
        match = FROM_LINE.match(lines[head])
        if match is None:
            break
        end = head + 1
        if match["names"] == "(":  # names one per line up to ")"
            while end < len(lines) and lines[end].strip() != ")":
                end += 1
            names = ", ".join(n.strip().rstrip(",") for n in lines[head + 1:end])
            match = FROM_LINE.match(f"from {match['module']} import {names}{MARKER}")
            end += 1
        sources.append(match)
        lines = lines[:head] + lines[end:]
    return sources, lines


def _generated_solution(lines: list[str], sources: list[re.Match]) -> list[str]:
    """A solution cell's own lines followed by the library functions it is generated from
    (``sources``: the matches of its import lines, one or more)."""
    out = list(lines)
    pairs = [(m["module"], name) for m in sources for name in m["names"].split(", ")]
    pairs.sort(key=_definition_order)  # as the library defines them, whatever the import order
    for k, (module, name) in enumerate(pairs):
        out += ["", ""] if k else []
        out += library_solution(module, name).split("\n")
    return out


def _check_cell(role, cell_type, grade_id, points, text, where):
    """Raise ValueError for a cell whose role and content disagree."""
    if role in ("tests", "answer") and points is None:
        raise ValueError(f"{where}: a {role} cell needs '(N points)' in its header")
    if role not in ("tests", "answer") and points is not None:
        raise ValueError(f"{where}: only tests and answer cells carry points")
    if role == "answer" and cell_type != "markdown":
        raise ValueError(f"{where}: answer cells are markdown")
    if role in ("solution", "tests") and cell_type != "code":
        raise ValueError(f"{where}: {role} cells are code")
    has_solution = BEGIN_SOLUTION in text
    if role == "solution" and (not has_solution or text.count(BEGIN_SOLUTION)
                               != text.count(END_SOLUTION)):
        raise ValueError(f"{where}: solution cell {grade_id} needs balanced BEGIN/END SOLUTION")
    if role != "solution" and has_solution:
        raise ValueError(f"{where}: solution markers outside a solution cell")
    hidden = text.count(BEGIN_HIDDEN_TESTS), text.count(END_HIDDEN_TESTS)
    if hidden[0] != hidden[1] or (role != "tests" and hidden[0]):
        raise ValueError(f"{where}: hidden-test markers only in tests cells, balanced")
    if not text.strip():
        raise ValueError(f"{where}: empty cell")


def _chunks(text: str, name: str) -> list[tuple[re.Match, list[str], int]]:
    """(header match, body lines, line number) of every cell; questions split off answers."""
    chunks: list[tuple[re.Match, list[str], int]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.startswith("# %%"):
            match = HEADER.match(line)
            if match is None:
                raise ValueError(f"{name}:{lineno}: malformed cell header {line!r}")
            chunks.append((match, [], lineno))
        elif chunks:
            chunks[-1][1].append(line)
    out = []
    for match, lines, lineno in chunks:
        lines = _strip_blank(lines)
        marker = [k for k, ln in enumerate(lines) if ln.startswith(f"# {ANSWER_MARKER}")]
        question = lines[:marker[0]] if marker else []
        while question and question[-1].strip() in ("", "#"):
            question = question[:-1]
        if match["role"] == "answer" and question:
            out.append((HEADER.match("# %% [markdown]"), question, lineno))
            lines = lines[marker[0]:]
        out.append((match, lines, lineno))
    return out


def parse_cells(text: str, name: str = "<source>") -> list[nbformat.NotebookNode]:
    """Parse a percent-format source into notebook cells with nbgrader metadata."""
    cells, seen, n_readonly = [], set(), 0
    for match, lines, lineno in _chunks(text, name):
        where = f"{name}:{lineno}"
        cell_type = "markdown" if match["md"] else "code"
        role = match["role"]
        rules = None
        sources, lines = _library_imports(lines) if role == "solution" else ([], lines)
        if sources:
            lines = _generated_solution(lines, sources)
        if role == "solution":
            lines, rules = _solution_rules(lines, where)
        elif lines and lines[0].startswith(RULES_LINE):
            raise ValueError(f"{where}: a rules line belongs under a solution header")
        body = _markdown_text(lines, where) if cell_type == "markdown" else "\n".join(lines)
        if role is None:
            n_readonly += 1
            grade_id = f"readonly_{n_readonly:02d}"
        else:
            grade_id = match["id"]
        points = None if match["points"] is None else int(match["points"])
        _check_cell(role, cell_type, grade_id, points, body, where)
        if role == "tests":
            body = _finish_test_cell(body, grade_id, where)
        if grade_id in seen:
            raise ValueError(f"{where}: duplicate grade id {grade_id!r}")
        seen.add(grade_id)
        grade, solution, locked = ROLES[role]
        meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
                "schema_version": 3, "solution": solution}
        if grade:
            meta["points"] = points
        new = nbformat.v4.new_markdown_cell if cell_type == "markdown" else \
            nbformat.v4.new_code_cell
        metadata = {"nbgrader": meta} | ({META_KEY: {"rules": rules}} if rules else {})
        cell = new(source=body, metadata=metadata, id=grade_id)
        cells.append(cell)
    if not cells:
        raise ValueError(f"{name}: no cells")
    return cells


def build_notebook(source: Path) -> nbformat.NotebookNode:
    """The nbgrader source notebook for one ``course_src/NN_name.py`` file."""
    source = Path(source)
    nb = nbformat.v4.new_notebook()
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    nb.cells = parse_cells(source.read_text(encoding="utf-8"), source.name)
    nbformat.validate(nb)
    return nb


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """The exact text committed for a notebook (nbformat's layout plus a final newline)."""
    return nbformat.writes(nb) + "\n"


def sources() -> list[Path]:
    """The notebook sources, in course order."""
    return sorted(SOURCE_DIR.glob(SOURCE_GLOB))


def target_for(source: Path) -> Path:
    """``course_src/NN_name.py`` -> ``assignments/NN_name/NN_name.ipynb``."""
    return ASSIGNMENTS / source.stem / f"{source.stem}.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only report notebooks that differ from their source")
    args = parser.parse_args(argv)
    stale = []
    for source in sources():
        target, text = target_for(source), notebook_text(build_notebook(source))
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        stale.append(target)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    verb = "out of sync" if args.check else "written"
    for target in stale:
        print(f"{verb}: {target.relative_to(ROOT)}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
