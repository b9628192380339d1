"""Student edition of a library package: ``@exercise`` function bodies become stubs.

A copy of the package where every function decorated with ``@exercise(notebook, section)``
keeps its decorators, signature and docstring, and its body becomes
``raise NotImplementedError("not implemented yet: write your code in <function> (notebook
<notebook>, section <section>); ...")`` (the message put in the kernel's language by
``cs231n_lib.i18n.stub_text`` when raised). Everything else is kept.
"""

from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
I18N_MODULE = "cs231n_lib.i18n"  # makes the stub's message in the kernel's language


@dataclass(frozen=True)
class Exercise:
    """One ``@exercise`` function found in a library file."""

    qualname: str
    notebook: str
    section: str
    node: ast.FunctionDef | ast.AsyncFunctionDef


def _exercise_tag(node, path) -> tuple[str, str] | None:
    """(notebook, section) of an ``@exercise`` decorator on ``node``, else None."""
    for dec in node.decorator_list:
        if not isinstance(dec, ast.Call):
            continue
        func = dec.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name != "exercise":
            continue
        args = [a.value for a in dec.args if isinstance(a, ast.Constant)]
        if len(args) != 2 or len(dec.args) != 2 or not all(isinstance(a, str) for a in args):
            raise ValueError(f"{path}:{dec.lineno}: @exercise needs two string literals "
                             "(notebook, section)")
        return args[0], args[1]
    return None


def find_exercises(source: str, path: str | Path = "<string>") -> list[Exercise]:
    """All ``@exercise`` functions of a module source, outermost first, with qualified names."""
    found: list[Exercise] = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = f"{prefix}{child.name}"
                tag = (None if isinstance(child, ast.ClassDef)
                       else _exercise_tag(child, path))
                if tag:
                    found.append(Exercise(qual, tag[0], tag[1], child))
                else:
                    visit(child, qual + ".")

    visit(ast.parse(source, filename=str(path)), "")
    return found


def stub_message(ex: Exercise, lang: str | None = "en") -> str:
    """The NotImplementedError message of an exercise's stub (in ``lang``; None: the current
    language)."""
    from cs231n_lib.i18n import stub_message as message

    return message(ex.qualname.rsplit(".", 1)[-1], ex.notebook, ex.section, lang)


def stub_statement(ex: Exercise) -> str:
    """The stub's ``raise``: the English message, which ``cs231n_lib.i18n.stub_text`` turns
    into the kernel's language (``set_language``) when it is raised."""
    return (f"raise NotImplementedError(__import__({I18N_MODULE!r}, fromlist=['_'])"
            f".stub_text({stub_message(ex)!r}))")


def docstring_stmt(node) -> ast.stmt | None:
    """The docstring statement of a function node, or None."""
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
            first.value.value, str):
        return first
    return None


def stub_source(source: str, path: str | Path = "<string>") -> tuple[str, list[Exercise]]:
    """Return ``source`` with every exercise body replaced by a NotImplementedError stub."""
    exercises = find_exercises(source, path)
    lines = source.splitlines(keepends=True)
    for ex in sorted(exercises, key=lambda e: e.node.lineno, reverse=True):
        node = ex.node
        doc = docstring_stmt(node)
        body = node.body[1:] if doc else node.body
        header_end = (doc.end_lineno if doc else node.body[0].lineno - 1)  # 1-based, inclusive
        first_body_line = node.body[0].lineno
        if first_body_line == node.lineno or (doc and doc.lineno == node.lineno):
            raise ValueError(f"{path}:{node.lineno}: write the body of exercise {ex.qualname} "
                             "on its own lines so it can be stubbed")
        indent = " " * node.body[0].col_offset
        stub = f"{indent}{stub_statement(ex)}\n"
        end = body[-1].end_lineno if body else header_end
        lines[header_end:end] = [stub]
    return "".join(lines), exercises


def build_student_edition(package: Path, dest_parent: Path) -> list[Exercise]:
    """Copy ``package`` into ``dest_parent/<name>`` with exercise bodies stubbed."""
    package = Path(package)
    if not (package / "__init__.py").is_file():
        raise ValueError(f"{package} is not a Python package (no __init__.py)")
    dest = Path(dest_parent) / package.name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(package, dest, ignore=IGNORE)
    stubbed: list[Exercise] = []
    for py in sorted(dest.rglob("*.py")):
        text = py.read_text(encoding="utf-8")
        if "exercise" not in text:
            continue
        new, found = stub_source(text, py)
        if found:
            py.write_text(new, encoding="utf-8")
            stubbed.extend(found)
    return stubbed
