"""Name the exercise in each released solution stub (an nbgrader preprocessor).

nbgrader's ``ClearSolutions`` replaces every ``### BEGIN SOLUTION`` ... ``### END SOLUTION``
region by one fixed ``code_stub`` (``raise NotImplementedError()``), which knows neither the
function nor the part. :class:`NameSolutionStubs` runs right after it in
``generate_assignment`` and rewrites that line, in solution cells only, into::

    raise NotImplementedError("not implemented yet: write your code in conv_param_counts "
                              "(notebook 01_convolution, part 1)")

(the function whose body holds the stub, the notebook's name, the part from the last
``## N. title (P points)`` heading above the cell, as the grader's rules count parts). It runs
before nbgrader's checksums are computed, so the gradebook, Validate and the grader's restore
all see the named stub. Enable it in the nbgrader config with::

    c.GenerateAssignment.preprocessors = generate_assignment_preprocessors()
"""

from __future__ import annotations

import ast
import json

from nbgrader.preprocessors import ClearSolutions, NbGraderPreprocessor

from cs231n_grading.editions import edition_stem, notebook_language
from cs231n_grading.locale import tr
from cs231n_grading.restore import nbg
from cs231n_grading.rules import part_of_cells

STUB_LINE = "raise NotImplementedError()"  # nbgrader's default python stub ends with it


def stub_message(function: str | None, notebook: str, part: str | None,
                 lang: str | None = None) -> str:
    """The friendly text of an unsolved exercise's NotImplementedError, in ``lang`` (default:
    the current language)."""
    target = function if function else tr("this cell", lang)
    if part:
        return tr("not implemented yet: write your code in {target} (notebook {notebook}, "
                  "part {part})", lang, target=target, notebook=notebook, part=part)
    return tr("not implemented yet: write your code in {target} (notebook {notebook})", lang,
              target=target, notebook=notebook)


def _enclosing_function(tree: ast.Module, lineno: int) -> str | None:
    """Name of the innermost function whose body holds line ``lineno`` (1-based)."""
    best = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                node.lineno < lineno <= node.end_lineno):
            if best is None or node.lineno > best.lineno:
                best = node
    return best.name if best else None


def name_stubs(source: str, notebook: str, part: str | None, stub_line: str = STUB_LINE,
               lang: str | None = None) -> str:
    """``source`` with each bare ``stub_line`` replaced by a raise that names its function
    (message in ``lang``, default the current language)."""
    lines = source.split("\n")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for k, line in enumerate(lines):
        if line.strip() != stub_line:
            continue
        indent = line[:len(line) - len(line.lstrip())]
        message = stub_message(_enclosing_function(tree, k + 1), notebook, part, lang)
        lines[k] = f"{indent}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})"
    return "\n".join(lines)


class NameSolutionStubs(NbGraderPreprocessor):
    """Rewrite ClearSolutions' bare stubs so they name the exercise, notebook and part."""

    def preprocess(self, nb, resources):
        """Rewrite the solution cells of ``nb`` (``resources['unique_key']``: notebook name;
        a Chinese edition, ``<name>.zh``, gets Chinese messages naming ``<name>``)."""
        lang = notebook_language(nb)
        notebook = edition_stem(str(resources.get("unique_key") or "this notebook"))
        parts = part_of_cells(nb)  # numbered parts only (unheaded notebooks get negatives)
        stub = ClearSolutions(config=self.config).code_stub.get(resources.get("language"), "")
        stub_line = stub.strip().splitlines()[-1].strip() if stub.strip() else STUB_LINE
        for cell in nb.cells:
            if cell.cell_type == "code" and nbg(cell).get("solution"):
                part = parts.get(nbg(cell).get("grade_id"))
                cell.source = name_stubs(cell.source, notebook,
                                         str(part) if part and part > 0 else None, stub_line,
                                         lang)
        return nb, resources


def generate_assignment_preprocessors() -> list:
    """nbgrader's ``GenerateAssignment`` preprocessors with NameSolutionStubs after
    ClearSolutions (for ``c.GenerateAssignment.preprocessors`` in the course config)."""
    from nbgrader.converters import GenerateAssignment

    default = list(GenerateAssignment.class_traits()["preprocessors"].default())
    k = default.index(ClearSolutions)
    return default[:k + 1] + [NameSolutionStubs] + default[k + 1:]
