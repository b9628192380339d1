"""Grader-side "how" rules, checked on the submitted source outside the student's kernel.

In-kernel checks of *how* a result is computed (``cs231n_lib.call_trace``) can be switched off
by the code they watch, so the grader also reads the submitted source (``ast``, nothing runs):

* **exercise rules** live beside each exercise in ``course_src`` (a ``# rules:`` line under the
  solution header); the build stores them in the source notebook's cell metadata
  (``metadata.cs231n.rules``) and the grader reads them from the instructor's copy only. A rule
  forbids names (``scipy``: any module, attribute or name called so; ``numpy.lib.stride_tricks``:
  that dotted prefix, however it is imported or aliased), allows exceptions to them
  (``cs231n_lib.shapes``), or requires a construct (``loop``). They apply to the solution cell
  and to every statement of another student cell that the solution cell uses (a helper defined
  or an alias bound in a cell the student added).
* **process rules** hold for every cell the student wrote (solution cells and added cells):
  no tracing hooks, no IPython internals, no ``exec``/``eval``/``__import__``, no dunder
  attributes, no assignment to imported modules, no rebinding of the test cells' helpers
  (``record``, ``assert_array`` ...), no calls of functions the notebook's own cells define
  (test helpers) from solution cells, no reading of notebook files.

A violation costs every autograded test of the exercise's part (``## N. title (P points)``);
a process-level violation in a cell the student added costs every test of the notebook.
``violations`` and ``apply`` are pure functions of notebooks and verdicts.

Messages: a violation's cell label and rule are ``cs231n_lib.i18n.Text`` (English strings,
marked ``N_(...)`` for the grader's catalogue); ``Violation.message``, ``apply`` and ``check``
write them in the current language (the graded edition's, set by the grading worker).
"""

from __future__ import annotations

import ast
import functools
import re
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cs231n_grading.locale import MESSAGES, tr
from cs231n_grading.restore import nbg, restore
from cs231n_lib.i18n import Text


def N_(msgid: str, /, **fields) -> Text:  # noqa: N802 - gettext's name for a deferred message
    """A message shown later in the reader's language (see ``cs231n_lib.i18n.Text``)."""
    return MESSAGES.later(msgid, **fields)


META_KEY = "cs231n"  # cell.metadata[META_KEY]["rules"] in the source notebook
RULES_LINE = "# rules:"
REQUIREMENTS = {"loop": N_("a for or while loop (or a comprehension)")}
NOTEBOOK_PREFIX = "<notebook>"  # qualified name of what the notebook's own cells define
COMMENT_WIDTH = {"en": 97, "zh": 56}  # characters per line of Rules.comment (CJK: 2 columns)

# Qualified names (dotted prefixes) that no student cell may use.
PROCESS_FORBIDDEN = (
    "sys.settrace", "sys.gettrace", "sys.setprofile", "sys.getprofile", "sys._getframe",
    "sys._current_frames", "sys.modules", "sys.path", "sys.meta_path", "sys.path_hooks",
    "sys.path_importer_cache", "sys.displayhook", "sys.excepthook", "sys.addaudithook",
    "sys.monitoring",
    "threading.settrace", "threading.setprofile", "threading.settrace_all_threads",
    "threading.setprofile_all_threads", "importlib", "ctypes", "builtins", "gc", "inspect",
    "IPython", "ipykernel", "jupyter_client", "traitlets", "zmq", "nbformat", "nbclient",
    "marshal", "pickle", "dill", "copyreg", "shelve", "runpy", "code", "codeop", "signal",
    "faulthandler", "atexit", "site", "operator.attrgetter", "operator.methodcaller",
    "cs231n_lib.checks", "cs231n_lib.call_trace", "cs231n_grading", "grading",
)
PROCESS_ALLOWED = ("cs231n_lib.checks.assert_array", "cs231n_lib.checks.assert_value")
# Built-in (or IPython-injected) names no student cell may use.
FORBIDDEN_BUILTINS = frozenset({
    "exec", "eval", "compile", "__import__", "globals", "vars", "locals", "setattr", "delattr",
    "get_ipython", "breakpoint", "display", "__builtins__", "record", "trace_call",
})
# Names that test cells use; a student cell must not bind them (at the top level of a cell).
PROTECTED_NAMES = frozenset({"record", "assert_array", "assert_value", "trace_call"})
# Besides these, a name that the test cells use and the instructor's cells import or define
# (np, memory, conv_forward_fast, a test helper ...) may be bound by a student cell only by
# importing the same thing: test cells record values computed with them.
# Forbidden names that are harmless as a direct call at the top level of a cell: ``display``
# there shows its output in that cell; inside a function a test cell could call it.
TOP_LEVEL_CALLS = frozenset({"display"})
# The same for IPython's rich-display tools, imported and used at the top level of a cell (a
# student showing an image or a table); inside a function they are IPython and forbidden.
TOP_LEVEL_DISPLAY = frozenset(f"IPython.display.{n}" for n in (
    "display", "HTML", "Markdown", "Latex", "Math", "Image", "SVG", "clear_output"))
SAFE_DUNDERS = frozenset({"__init__", "__name__", "__qualname__", "__doc__", "__version__",
                          "__module__"})
SAFE_MAGICS = frozenset({"matplotlib", "pinfo", "pinfo2", "psearch", "pdoc", "pdef"})
CODE_MAGICS = frozenset({"time", "timeit"})  # their argument is code, checked like the cell
TIMEIT_VALUE_FLAGS = frozenset({"-n", "-r", "-p"})
# Named lists for rules lines (``forbid @shortcuts``): library routines that do an exercise's
# work (convolution, windowing, pooling) outside the student's code.
PRESETS = {
    "shortcuts": ("scipy", "skimage", "torch", "numpy.fft", "convolve", "correlate",
                  "stride_tricks", "as_strided", "sliding_window_view"),
}
STRING_MARKERS = (".ipynb", "vnd.cs231n", "cs231n.record")


class RulesError(ValueError):
    """A malformed ``# rules:`` specification."""


@dataclass(frozen=True)
class Rules:
    """One exercise's rules: forbidden names, allowed exceptions, required constructs."""

    forbid: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    require: tuple[str, ...] = ()

    def to_metadata(self) -> dict:
        """JSON-able form stored in ``cell.metadata["cs231n"]["rules"]``."""
        return {"forbid": list(self.forbid), "allow": list(self.allow),
                "require": list(self.require)}

    @classmethod
    def from_metadata(cls, meta) -> Rules:
        """Rules from a cell's metadata (empty rules when absent)."""
        ours = meta.get(META_KEY) if isinstance(meta, dict) else None
        rules = ours.get("rules") if isinstance(ours, dict) else None
        if not isinstance(rules, dict):
            return cls()
        return cls(*(tuple(str(v) for v in rules.get(k, ())) for k in
                     ("forbid", "allow", "require")))

    def describe(self, lang: str = "en") -> str:
        """The rules as a sentence for students, in ``lang`` (the course build: English)."""
        parts = []
        if self.forbid:
            parts.append(tr("do not use {names}", lang, names=", ".join(self.forbid)))
        if self.allow:
            parts.append(tr("allowed: {names}", lang, names=", ".join(self.allow)))
        parts += [tr("use {what}", lang, what=REQUIREMENTS[r].shown(lang)) for r in self.require]
        return tr("; ", lang).join(parts) + tr(".", lang)

    def comment(self, lang: str = "en") -> str:
        """The comment on top of the exercise's solution cell that tells students the rules
        (written by the course build in English, by ``cs231n_grading.translation`` in the
        other editions)."""
        text = tr("Grader rules for this cell (checked on your code): {rules}", lang,
                  rules=self.describe(lang))
        return "\n".join(f"# {line}" for line in textwrap.wrap(
            text, width=COMMENT_WIDTH.get(lang, COMMENT_WIDTH["en"])))


_NAME = re.compile(r"^[A-Za-z_<>][A-Za-z0-9_<>]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _expand(item: str) -> list[str]:
    """``a.{b,c}`` -> ``["a.b", "a.c"]``; ``@name`` -> ``PRESETS[name]``; other items unchanged
    (an empty item: [])."""
    if item.startswith("@"):
        if item[1:] not in PRESETS:
            raise RulesError(f"unknown rules preset {item!r} (known: "
                             f"{', '.join('@' + k for k in PRESETS)})")
        return list(PRESETS[item[1:]])
    m = re.fullmatch(r"([^{}]*)\{([^{}]*)\}", item)
    if m is None:
        return [item] if item else []
    return [m[1] + v.strip() for v in m[2].split(",") if v.strip()]


def parse_rules(text: str) -> Rules:
    """Parse ``forbid a, b.c; allow b.c.{d,e}; require loop`` (the text after ``# rules:``)."""
    found: dict[str, list[str]] = {"forbid": [], "allow": [], "require": []}
    for clause in filter(None, (c.strip() for c in text.split(";"))):
        key, _, rest = clause.partition(" ")
        if key not in found:
            raise RulesError(f"rules clause {clause!r}: must start with forbid, allow or require")
        items = [v for item in re.split(r",(?![^{]*})", rest) for v in _expand(item.strip())]
        if not items:
            raise RulesError(f"rules clause {clause!r}: names nothing")
        for item in items:
            if key == "require" and item not in REQUIREMENTS:
                raise RulesError(f"rules clause {clause!r}: unknown requirement {item!r} "
                                 f"(known: {', '.join(REQUIREMENTS)})")
            if key != "require" and not _NAME.match(item):
                raise RulesError(f"rules clause {clause!r}: {item!r} is not a (dotted) name")
        found[key] += items
    if not found["forbid"] and not found["require"]:
        raise RulesError(f"rules {text!r}: nothing is forbidden or required")
    return Rules(tuple(found["forbid"]), tuple(found["allow"]), tuple(found["require"]))


def matches(qualified: str, entry: str, anywhere: bool = True) -> bool:
    """Whether ``qualified`` falls under a rule entry: a dotted entry is a prefix (whole
    components); a bare entry matches any component (``scipy``, ``as_strided``), or only the
    first one when not ``anywhere`` (a module such as ``signal`` in the process rules)."""
    parts = qualified.split(".")
    if "." in entry or not anywhere:
        n = entry.count(".") + 1
        return parts[:n] == entry.split(".")
    return entry in parts


def _forbidden(qualified: str, forbid: Iterable[str], allow: Iterable[str],
               anywhere: bool = True) -> str | None:
    """The first entry of ``forbid`` that ``qualified`` falls under, unless it is allowed."""
    if any(matches(qualified, a) and "." in a for a in allow):
        return None
    return next((e for e in forbid if matches(qualified, e, anywhere)), None)


# ---------------------------------------------------------------------------------------------
# Facts about one cell's source


@dataclass
class Facts:
    """What a cell's source does, as the rules need it (lines are 1-based in the cell)."""

    refs: list[tuple[int, str]] = field(default_factory=list)  # resolved qualified names
    idents: list[tuple[int, str]] = field(default_factory=list)  # attrs, global names, imports
    builtins: list[tuple[int, str]] = field(default_factory=list)  # forbidden global names
    dunders: list[tuple[int, str]] = field(default_factory=list)
    stores: list[tuple[int, str]] = field(default_factory=list)  # attribute stores on imports
    strings: list[tuple[int, str]] = field(default_factory=list)
    dynamic: list[int] = field(default_factory=list)  # getattr with a computed name
    magics: list[tuple[int, str]] = field(default_factory=list)
    free: set[str] = field(default_factory=set)  # global names loaded
    bound: dict[str, list[int]] = field(default_factory=dict)  # top-level bindings
    imported: dict[str, set[str]] = field(default_factory=dict)  # top-level import bindings
    loops: bool = False

    def extend(self, other: Facts, offset: int = 0) -> None:
        """Add ``other`` (from code embedded at line ``offset + 1``)."""
        for name in ("refs", "idents", "builtins", "dunders", "stores", "strings", "magics"):
            getattr(self, name).extend((ln + offset, v) for ln, v in getattr(other, name))
        self.dynamic.extend(ln + offset for ln in other.dynamic)
        self.free |= other.free
        for k, lines in other.bound.items():
            self.bound.setdefault(k, []).extend(ln + offset for ln in lines)
        self.loops = self.loops or other.loops


def _targets(node: ast.AST) -> Iterator[str]:
    """Names bound by an assignment target."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            yield sub.id


def _scope_locals(node: ast.AST) -> set[str]:
    """Names local to a function or lambda (parameters and bindings, minus ``global``)."""
    args = node.args
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    declared: set[str] = set()
    body = node.body if isinstance(node.body, list) else [node.body]
    stack = list(body)
    while stack:
        sub = stack.pop()
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
            stack.extend(sub.decorator_list)
            continue  # its body is another scope
        if isinstance(sub, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                            ast.GeneratorExp)):
            continue
        if isinstance(sub, (ast.Global, ast.Nonlocal)):
            declared.update(sub.names)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in sub.names)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            names.add(sub.name)
        elif isinstance(sub, (ast.MatchAs, ast.MatchStar)) and sub.name:
            names.add(sub.name)
        stack.extend(ast.iter_child_nodes(sub))
    return names - declared


def _is_magic_call(node: ast.AST) -> str | None:
    """The method of ``get_ipython().<method>(<constants>)`` as IPython's transformer writes
    magics and shell escapes, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Call) and not node.func.value.args
            and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "get_ipython"
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)):
        return node.func.attr
    return None


def _timeit_code(line: str) -> str:
    """The statement of a ``%timeit``/``%time`` line, without its options."""
    tokens = line.split()
    k = 0
    while k < len(tokens) and tokens[k].startswith("-"):
        k += 2 if tokens[k] in TIMEIT_VALUE_FLAGS else 1
    return " ".join(tokens[k:])


class _Collector(ast.NodeVisitor):
    """Walks one cell and fills a ``Facts`` (see ``cell_facts``)."""

    def __init__(self, aliases: dict[str, set[str]]):
        self.aliases = aliases
        self.facts = Facts()
        self.scopes: list[set[str]] = []  # locals of enclosing function/comprehension scopes
        self.local_imports: dict[str, set[str]] = {}  # names imported inside functions
        self.harmless: set[int] = set()  # ids of Name nodes exempt from FORBIDDEN_BUILTINS

    def visit_Module(self, node: ast.Module) -> None:
        inner, stack = [], [(sub, False) for sub in ast.iter_child_nodes(node)]
        while stack:  # imports inside function bodies (each node visited once)
            sub, in_function = stack.pop()
            if in_function and isinstance(sub, (ast.Import, ast.ImportFrom)):
                inner.append(sub)
            in_function = in_function or isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef))
            stack.extend((child, in_function) for child in ast.iter_child_nodes(sub))
        self.local_imports = _imports_in(inner)
        self.generic_visit(node)

    # --- names and references
    def _is_global(self, name: str) -> bool:
        return not any(name in s for s in self.scopes)

    def _resolve(self, node: ast.AST) -> list[str]:
        """Qualified names an expression may denote (imports and notebook definitions)."""
        if isinstance(node, ast.Name):  # an unknown global is taken for the module so named
            if not self._is_global(node.id):  # a local: only an import makes it a module
                return sorted(self.local_imports.get(node.id, ()))
            return sorted(self.aliases[node.id]) if node.id in self.aliases else [node.id]
        if isinstance(node, ast.Attribute):
            return [f"{q}.{node.attr}" for q in self._resolve(node.value)]
        name = self._getattr_name(node)
        if name is not None:
            return [f"{q}.{name}" for q in self._resolve(node.args[0])]
        return []

    @staticmethod
    def _getattr_name(node: ast.AST) -> str | None:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "getattr" and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            return node.args[1].value
        return None

    def _ref(self, node: ast.AST) -> None:
        self.facts.refs.extend((node.lineno, q) for q in self._resolve(node)
                               if self.scopes or q not in TOP_LEVEL_DISPLAY)

    def _attr_name(self, line: int, attr: str, resolved: bool = False) -> None:
        if not resolved:  # a resolved name is judged by its qualified name (with allow lists)
            self.facts.idents.append((line, attr))
        if attr.startswith("__") and attr.endswith("__") and attr not in SAFE_DUNDERS:
            self.facts.dunders.append((line, attr))

    def _global_load(self, node: ast.Name, resolved: bool) -> None:
        """Facts of loading the global ``node.id`` (as a name or as the root of a chain)."""
        self.facts.free.add(node.id)
        if not resolved:
            self.facts.idents.append((node.lineno, node.id))
        if node.id in FORBIDDEN_BUILTINS and id(node) not in self.harmless:
            self.facts.builtins.append((node.lineno, node.id))
        elif node.id.startswith("__") and node.id != "__name__":
            self.facts.dunders.append((node.lineno, node.id))

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and self._is_global(node.id):
            self._ref(node)
            self._global_load(node, bool(self._resolve(node)))
        elif not self.scopes:
            self.facts.bound.setdefault(node.id, []).append(node.lineno)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            for q in self._resolve(node.value):
                self.facts.stores.append((node.lineno, f"{q}.{node.attr}"))
        chain = node
        while isinstance(chain, ast.Attribute):
            chain = chain.value
        resolved = isinstance(node.ctx, ast.Load) and bool(self._resolve(node))
        link = node
        while isinstance(link, ast.Attribute):  # report the whole chain once, not its parts
            self._attr_name(link.lineno, link.attr, resolved)
            link = link.value
        if isinstance(chain, ast.Name) and isinstance(node.ctx, ast.Load):
            self._ref(node)
            if self._is_global(chain.id):
                self._global_load(chain, resolved)
            return
        self.visit(chain)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in TOP_LEVEL_CALLS \
                and not self.scopes:
            self.harmless.add(id(node.func))
        method = _is_magic_call(node)
        if method is not None:
            self._magic(node, method)
            return
        if isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and self._is_global("getattr") and len(node.args) >= 2:
            name = self._getattr_name(node)
            if name is None:
                self.facts.dynamic.append(node.lineno)
            else:
                self._attr_name(node.lineno, name)
                self._ref(node)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self.facts.strings.append((node.lineno, node.value))

    # --- bindings and imports
    def _bind(self, name: str, line: int, target: str | None = None) -> None:
        if not self.scopes:
            self.facts.bound.setdefault(name, []).append(line)
            if target is not None:
                self.facts.imported.setdefault(name, set()).add(target)

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.facts.refs.append((node.lineno, a.name))
            self._bind((a.asname or a.name).split(".")[0], node.lineno,
                       a.name if a.asname else a.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        if any(a.name == "*" for a in node.names):
            self.facts.refs.append((node.lineno, module))
        for a in node.names:
            if a.name != "*" and (self.scopes or f"{module}.{a.name}" not in TOP_LEVEL_DISPLAY):
                self.facts.refs.append((node.lineno, f"{module}.{a.name}"))
            self._bind(a.asname or a.name, node.lineno, f"{module}.{a.name}")

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:  # a function that declares a global may rebind it
            self.facts.bound.setdefault(name, []).append(node.lineno)

    # --- scopes
    def _function(self, node, body: list) -> None:
        self.scopes.append(_scope_locals(node))
        for sub in body:
            self.visit(sub)
        self.scopes.pop()

    def visit_FunctionDef(self, node) -> None:
        self._bind(node.name, node.lineno)
        for sub in (*node.decorator_list, *node.args.defaults, *node.args.kw_defaults):
            if sub is not None:
                self.visit(sub)
        args = node.args
        every = (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
        for sub in (node.returns, *[a.annotation for a in every if a is not None]):
            if sub is not None:  # annotations are evaluated when the def runs
                self.visit(sub)
        self._function(node, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for sub in (*node.args.defaults, *node.args.kw_defaults):
            if sub is not None:
                self.visit(sub)
        self._function(node, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name, node.lineno)
        for sub in (*node.decorator_list, *node.bases, *node.keywords):
            self.visit(sub)
        outer, self.scopes = self.scopes, [*self.scopes]  # class bodies shadow nothing below
        for sub in node.body:
            self.visit(sub)
        self.scopes = outer

    def _comprehension(self, node, elements: list) -> None:
        self.facts.loops = True
        gens = node.generators
        self.visit(gens[0].iter)  # evaluated in the enclosing scope
        self.scopes.append({n for g in gens for n in _targets(g.target)})
        for k, g in enumerate(gens):
            if k:
                self.visit(g.iter)
            for cond in g.ifs:
                self.visit(cond)
        for sub in elements:
            self.visit(sub)
        self.scopes.pop()

    def visit_ListComp(self, node) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node) -> None:
        self._comprehension(node, [node.key, node.value])

    def visit_For(self, node) -> None:
        self.facts.loops = True
        self.generic_visit(node)

    visit_AsyncFor = visit_While = visit_For

    # --- IPython magics
    def _magic(self, node: ast.Call, method: str) -> None:
        args = [a.value for a in node.args]
        name = args[0] if method in ("run_line_magic", "run_cell_magic") and args else None
        if name in SAFE_MAGICS:
            return
        if name in CODE_MAGICS:
            code = [(_timeit_code(args[1]), node.lineno - 1)] if len(args) > 1 else []
            code += [(body, node.lineno) for body in args[2:3]]  # a cell magic's body
            for text, offset in code:
                inner = _source_facts(text, self.aliases)
                if inner is None:
                    self.facts.magics.append((node.lineno, N_(
                        "%{name} with code that does not parse", name=name)))
                else:
                    self.facts.extend(inner, offset)
            return
        what = f"%{name}" if name else (N_("a shell command (!)") if method in (
            "system", "getoutput") else f"get_ipython().{method}")
        self.facts.magics.append((node.lineno, what))


@functools.lru_cache(maxsize=1)
def _transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


@functools.lru_cache(maxsize=4096)
def _transform(source: str) -> str:
    """The cell as IPython's input transformers would give it to Python."""
    try:
        return _transformer().transform_cell(source)
    except Exception:  # noqa: BLE001 - IPython fails on some malformed input; then it is Python
        return source


def _source_facts(source: str, aliases: dict[str, set[str]]) -> Facts | None:
    """Facts of one piece of Python source, or None when Python cannot parse it."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    collector = _Collector(aliases)
    try:
        collector.visit(tree)
    except RecursionError:  # parses, but nests deeper than the checker can follow
        collector.facts.magics.append((1, "code nested too deeply for the grader to check"))
    return collector.facts


def cell_facts(source: str, aliases: dict[str, set[str]]) -> Facts | None:
    """Facts of a notebook code cell (IPython syntax included), or None if the kernel could
    not run it either (a cell that does not parse runs nothing)."""
    return _source_facts(_transform(source), aliases)


@functools.lru_cache(maxsize=4096)
def top_level_statements(source: str) -> list[tuple[ast.stmt, set[str]]]:
    """Top-level statements of a cell with the names each binds (empty if it does not parse)."""
    try:
        tree = ast.parse(_transform(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [(stmt, _bound_globals(stmt)) for stmt in tree.body]


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _bound_globals(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement binds in the notebook's global namespace: assignments and
    imports (also nested in if/for/with/try), defined functions and classes, ``global`` names;
    not the local variables of a function, class body or comprehension."""
    names: set[str] = set()

    def visit(node: ast.AST, local: bool) -> None:
        if isinstance(node, ast.Global):
            names.update(node.names)
        elif isinstance(node, _SCOPES):
            if not local and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                               ast.ClassDef)):
                names.add(node.name)
            for child in ast.iter_child_nodes(node):
                visit(child, True)  # only its ``global`` statements reach the notebook
            return
        elif not local and isinstance(node, ast.Name) and isinstance(node.ctx,
                                                                        (ast.Store, ast.Del)):
            names.add(node.id)
        elif not local and isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, local)

    visit(stmt, False)
    return names


# ---------------------------------------------------------------------------------------------
# The notebook


@dataclass(frozen=True)
class Violation:
    """One broken rule."""

    cell: str  # "solution cell <grade id>" or "added cell <k>" (a Text: see N_)
    line: int
    rule: str  # what the code must not do, e.g. "must not use scipy" (a Text: see N_)
    part: int | None  # the part whose tests it costs; None: every test of the notebook

    def message(self) -> str:
        """``rule: <cell> <rule> (line N)`` in the current language."""
        return tr("rule: {cell} {rule} (line {line})", cell=_shown(self.cell),
                  rule=_shown(self.rule), line=self.line)


def _shown(text: str) -> str:
    """A ``Text`` in the current language; any other string as it is."""
    return text.shown() if isinstance(text, Text) else text


_PART = re.compile(r"^##\s+(\d+)\.\s.*\(\d+\s+points?\)\s*$", re.M)


def part_of_cells(source_nb) -> dict[str, int]:
    """``{grade_id: part number}`` for the source's cells (from ``## N. title (P points)``; in a
    notebook without such headings each solution cell starts a part, numbered -1, -2, ...)."""
    out, part = {}, None
    headed = any(c.cell_type == "markdown" and _PART.search(c.source) for c in source_nb.cells)
    for cell in source_nb.cells:
        if cell.cell_type == "markdown":
            found = _PART.findall(cell.source)
            if found:
                part = int(found[-1])
        elif not headed and nbg(cell).get("solution"):
            part = -1 - len(set(out.values()))
        gid = nbg(cell).get("grade_id")
        if isinstance(gid, str) and part is not None:
            out[gid] = part
    return out


def _import_aliases(source: str) -> dict[str, set[str]]:
    """Names that the top-level imports of a cell bind, with their targets."""
    return _imports_in([stmt for stmt, _ in top_level_statements(source)
                        if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))])


def _imports_in(statements: list[ast.stmt]) -> dict[str, set[str]]:
    """Names that the imports among ``statements`` (and inside them) bind, with targets."""
    out: dict[str, set[str]] = {}
    for stmt in statements:
        for sub in ast.walk(stmt):
            if isinstance(sub, ast.Import):
                for a in sub.names:
                    target = a.name if a.asname else a.name.split(".")[0]
                    out.setdefault((a.asname or a.name).split(".")[0], set()).add(target)
            elif isinstance(sub, ast.ImportFrom):
                module = "." * sub.level + (sub.module or "")
                for a in sub.names:
                    if a.name != "*":
                        out.setdefault(a.asname or a.name, set()).add(f"{module}.{a.name}")
    return out


def _notebook_definitions(source: str) -> dict[str, set[str]]:
    """Functions and classes a cell defines at its top level, as ``<notebook>.name``."""
    return {stmt.name: {f"{NOTEBOOK_PREFIX}.{stmt.name}"}
            for stmt, _ in top_level_statements(source)
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _merge(into: dict[str, set[str]], more: dict[str, set[str]]) -> None:
    """Add ``more``'s targets to ``into``'s, name by name."""
    for k, v in more.items():
        into.setdefault(k, set()).update(v)


@dataclass
class _StudentCell:
    """A code cell whose source is the student's: a solution cell or a cell they added."""

    label: str
    source: str
    grade_id: str | None  # the solution cell's id; None for a cell the student added
    facts: Facts | None = None


def _student_cells(submission_nb, source_nb) -> list[_StudentCell]:
    """The code cells whose source is the student's, in the order the grader runs them."""
    restored = restore(submission_nb, source_nb).nb
    cells, added = [], 0
    for cell in restored.cells:
        if cell.cell_type != "code":
            continue
        m = nbg(cell)
        if m.get("solution"):
            cells.append(_StudentCell(N_("solution cell {id}", id=m["grade_id"]),
                                      cell.source, m["grade_id"]))
        elif not m.get("grade_id"):
            added += 1
            cells.append(_StudentCell(N_("added cell {number}", number=added), cell.source,
                                      None))
    return cells


def _test_cell_names(source_nb) -> set[str]:
    """Global names the source's test cells load."""
    names: set[str] = set()
    for cell in source_nb.cells:
        if cell.cell_type == "code" and nbg(cell).get("grade") and not nbg(cell).get("solution"):
            facts = _source_facts(_transform(cell.source), {})
            names |= facts.free if facts else set()
    return names


def _instructor_aliases(source_nb) -> dict[str, set[str]]:
    """What each global name of the instructor's cells denotes: their imports, and the
    functions and classes they define (``<notebook>.name``)."""
    aliases: dict[str, set[str]] = {}
    for cell in source_nb.cells:
        if cell.cell_type == "code" and not nbg(cell).get("solution"):
            _merge(aliases, _import_aliases(cell.source))
            _merge(aliases, _notebook_definitions(cell.source))
    return aliases


def _process_violations(cell: _StudentCell, facts: Facts, parts: dict[str, int],
                        solution_names: dict[str, str], given: dict[str, set[str]],
                        allow: tuple[str, ...] = (),
                        used_by_tests: frozenset[str] = frozenset()) -> list[Violation]:
    """Process-level rules for one student cell (``given``: the instructor cells' aliases;
    ``allow``: the exercise's allowed names, e.g. a notebook helper ``<notebook>.as_rows``)."""
    out: list[Violation] = []
    part = parts.get(cell.grade_id) if cell.grade_id else None

    def add(line: int, rule: str, cost: int | None = part) -> None:
        out.append(Violation(cell.label, line, rule, cost))

    for line, q in facts.refs:
        if q.startswith(f"{NOTEBOOK_PREFIX}.") and cell.grade_id is not None and \
                not any(matches(q, a) for a in allow if "." in a):
            add(line, N_("must not call {name}, which the notebook's own cells define (test "
                         "helpers are not part of a solution)", name=q.split(".", 1)[1]))
        hit = _forbidden(q, PROCESS_FORBIDDEN, PROCESS_ALLOWED, anywhere=False)
        if hit:
            add(line, N_("must not use {name} ({qualified})", name=hit, qualified=q))
    for line, name in facts.builtins:
        add(line, N_("must not use {name}", name=name))
    for line, name in facts.dunders:
        add(line, N_("must not use the dunder attribute or name {name}", name=name))
    for line in facts.dynamic:
        add(line, N_("must not use getattr with a computed attribute name"))
    for line, q in facts.stores:
        add(line, N_("must not assign to or delete {name} (an attribute of an imported module "
                     "or object)", name=q))
    for line, what in facts.magics:
        add(line, N_("must not use {what} (allowed magics: %time, %timeit, %matplotlib)",
                     what=what))
    for line, text in facts.strings:
        marker = next((m for m in STRING_MARKERS if m in text), None)
        if marker:
            add(line, N_("must not refer to {marker} (notebook files and grading records are "
                         "not the student's to read or write)", marker=repr(marker)))
    for name, lines in facts.bound.items():
        same_import = facts.imported.get(name, set()) <= given.get(name, set()) and \
            len(facts.imported.get(name, ())) == len(lines)
        if name in PROTECTED_NAMES or (name in used_by_tests and not same_import):
            add(lines[0], N_("must not rebind {name}, which the test cells use", name=name))
        owner = solution_names.get(name)
        if owner is not None and owner != cell.grade_id:
            add(lines[0], N_("must not define {name}, which only solution cell {owner} may "
                             "define", name=name, owner=owner), cost=parts.get(owner))
    return out


def _used_statements(cell: _StudentCell, students: list[_StudentCell],
                     exercise_names: Iterable[str]) -> list[tuple[_StudentCell, int, str]]:
    """(cell, first line, source) of the statements of *other* student cells that bind a name
    ``cell`` uses, transitively (a helper or alias defined in an added cell). Another
    exercise's own functions (``exercise_names``, in their solution cell) are left to that
    exercise's rules."""
    index: dict[str, list[tuple[_StudentCell, ast.stmt]]] = {}
    exercise_names = set(exercise_names)
    for other in students:
        if other is cell:
            continue
        for stmt, names in top_level_statements(other.source):
            if other.grade_id is not None and names and names <= exercise_names:
                continue
            for name in names:
                index.setdefault(name, []).append((other, stmt))
    seen: set[int] = set()
    out = []
    todo = set(cell.facts.free) | set(cell.facts.bound) if cell.facts else set()
    done: set[str] = set()
    while todo:
        name = todo.pop()
        done.add(name)
        for other, stmt in index.get(name, []):
            if id(stmt) in seen:
                continue
            seen.add(id(stmt))
            text = ast.get_source_segment(_transform(other.source), stmt) or ""
            out.append((other, stmt.lineno, text))
            inner = _source_facts(text, {})
            if inner is not None:
                todo |= (inner.free | set(inner.bound)) - done
    return out


def _exercise_violations(cell: _StudentCell, rules: Rules, part: int | None,
                         students: list[_StudentCell], aliases: dict[str, set[str]],
                         exercise_names: Iterable[str] = ()) -> list[Violation]:
    """An exercise's own rules on its solution cell and on the code it uses from other cells."""
    out: list[Violation] = []
    checked = [(cell.label, 0, cell.facts)]
    for other, line, text in _used_statements(cell, students, exercise_names):
        facts = _source_facts(text, aliases)
        if facts is not None:
            checked.append((N_("{cell} (used by {user})", cell=other.label, user=cell.label),
                            line - 1, facts))
    for label, offset, facts in checked:
        for line, q in facts.refs:
            hit = _forbidden(q, rules.forbid, rules.allow)
            if hit:
                out.append(Violation(label, line + offset, N_(
                    "must not use {name} ({qualified})", name=hit, qualified=q), part))
        bare = [e for e in rules.forbid if "." not in e]
        for line, name in facts.idents:
            if name in bare and not any(e == name for e in rules.allow):
                out.append(Violation(label, line + offset, N_("must not use {name}",
                                                               name=name), part))
        for line, text in facts.strings:
            if any(matches(text, e) for e in rules.forbid if _NAME.match(text)):
                out.append(Violation(label, line + offset, N_("must not name {text}",
                                                               text=repr(text)), part))
    for need in () if _always_raises(cell.source) else rules.require:
        if need == "loop" and not cell.facts.loops:
            out.append(Violation(cell.label, 1, N_("must use {what}",
                                                   what=REQUIREMENTS[need]), part))
    return out


def _always_raises(source: str) -> bool:
    """Whether every function the cell defines starts by raising NotImplementedError (the
    release stub: such a cell earns nothing, so requirements are not held against it)."""
    defs = [stmt for stmt, _ in top_level_statements(source)
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))]

    def stub(fn) -> bool:
        body = fn.body[1:] if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(
            fn.body[0].value, ast.Constant) else fn.body
        first = body[0] if body else None
        exc = first.exc if isinstance(first, ast.Raise) else None
        exc = exc.func if isinstance(exc, ast.Call) else exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"

    return bool(defs) and all(stub(fn) for fn in defs)


def _dedupe(violations: list[Violation]) -> list[Violation]:
    """One violation per cell, line and cost (the first found), in order."""
    first: dict[tuple, Violation] = {}
    for v in violations:
        first.setdefault((v.cell, v.line, v.part), v)
    return list(first.values())


def violations(submission_nb, source_nb) -> list[Violation]:
    """Every rule the submitted notebook breaks (``source_nb``: the instructor's source notebook,
    which holds the rules; nothing is read from the submission but its code)."""
    parts = part_of_cells(source_nb)
    rules = {nbg(c)["grade_id"]: Rules.from_metadata(c.metadata) for c in source_nb.cells
             if nbg(c).get("solution") and c.cell_type == "code"}
    solution_names: dict[str, str] = {}
    for cell in source_nb.cells:
        if cell.cell_type == "code" and nbg(cell).get("solution"):
            for stmt, _ in top_level_statements(cell.source):
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    solution_names[stmt.name] = nbg(cell)["grade_id"]
    students = _student_cells(submission_nb, source_nb)
    given = _instructor_aliases(source_nb)
    used_by_tests = frozenset(given) & _test_cell_names(source_nb)
    aliases = {k: set(v) for k, v in given.items()}
    for cell in students:
        _merge(aliases, _import_aliases(cell.source))
    for text in [c.source for c in source_nb.cells if c.cell_type == "code"] + \
            [c.source for c in students]:  # names some cell binds are not modules
        for _, names in top_level_statements(text):
            for name in names:
                aliases.setdefault(name, set())
    for cell in students:
        cell.facts = cell_facts(cell.source, aliases)
    out: list[Violation] = []
    for cell in students:
        if cell.facts is None:
            continue  # does not parse: the kernel runs nothing of it
        allow = rules[cell.grade_id].allow if cell.grade_id in rules else ()
        out += _process_violations(cell, cell.facts, parts, solution_names, given, allow,
                                   used_by_tests)
        if cell.grade_id in rules:
            out += _exercise_violations(cell, rules[cell.grade_id], parts.get(cell.grade_id),
                                        students, aliases, solution_names)
    return _dedupe(out)


def apply(tests: list[dict], found: list[Violation], source_nb) -> list[dict]:
    """Judge verdicts with the rules applied: every test of a part with a violation (every test
    of the notebook for a notebook-wide one) earns 0, its message names the rules broken."""
    if not found:
        return tests
    parts = part_of_cells(source_nb)
    out = []
    for test in tests:
        hits = [v for v in found if v.part is None or v.part == parts.get(test["grade_id"])]
        if not hits:
            out.append(test)
            continue
        shown = [v.message() for v in hits[:5]]
        if len(hits) > 5:
            shown.append(tr("and {count} more", count=len(hits) - 5))
        message = "; ".join(shown)
        if not test.get("passed") and test.get("message"):
            message += tr(" (the test also failed: {message})", message=test["message"])
        out.append(test | {"points": 0.0, "passed": False, "message": message})
    return out


def check(tests: list[dict], submission_nb, source_nb) -> tuple[list[dict], list[str]]:
    """``apply(tests, violations(...))`` for the grading worker, and one note per violation.
    Never raises: if the code cannot be checked, every test earns 0 and says so."""
    try:
        found = violations(submission_nb, source_nb)
    except Exception as err:  # noqa: BLE001 - a submission must not switch the rules off
        found = [Violation(N_("the notebook"), 1, N_(
            "could not be checked by the grader's rules ({error})", error=type(err).__name__),
            None)]
    return apply(tests, found, source_nb), [v.message() for v in found]
