"""The parts of jupyter_client's kernel manager the grader relies on that are not public API.

The grader's kernel managers (``grading.kernels.LocalKernelManager``,
``grading.sandbox.SandboxKernelManager``) change how a kernel starts, is killed and is cleaned up.
jupyter_client offers no public hook for that, so they override the coroutines below, which its
``AsyncKernelManager`` calls. Everything of that kind is listed here; ``problems()`` checks the
installed release against it (names, signatures, and the public aliases the subclasses rebind)
and ``check()`` raises with the list, so an incompatible jupyter_client fails loudly (the test
``tests/test_jupyter_compat.py`` and ``cs231n-course autograde``/``verify`` at start-up) instead
of grading with a half-applied sandbox.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from jupyter_client import AsyncKernelManager
from jupyter_client.manager import KernelManager, in_pending_state

# Releases this module was checked against (pyproject.toml pins the same range).
SUPPORTED = ((8, 6), (9, 0))  # >= 8.6, < 9

# Private coroutines overridden, with the parameters jupyter_client calls them with ("kw": any
# keyword arguments).
HOOKS: dict[str, tuple[str, ...]] = {
    "_async_pre_start_kernel": ("self", "kw"),
    "_async_launch_kernel": ("self", "kernel_cmd", "kw"),
    "_async_kill_kernel": ("self", "restart"),
    "_async_shutdown_kernel": ("self", "now", "restart"),
    "_async_cleanup_resources": ("self", "restart"),
}
# AsyncKernelManager binds these public names to the private coroutines at class creation, so a
# subclass overriding the coroutine must rebind the name too (nbclient calls the public name).
ALIASES = {"cleanup_resources": "_async_cleanup_resources",
           "shutdown_kernel": "_async_shutdown_kernel"}

# Marks a coroutine as changing the kernel's state (``km.ready`` waits for it), as
# jupyter_client's own shutdown is; importable from jupyter_client.manager, not documented.
pending_state = in_pending_state


def bind_public_aliases(cls: type) -> type:
    """Class decorator: point the public names of ``ALIASES`` at ``cls``'s own coroutines."""
    for public, private in ALIASES.items():
        setattr(cls, public, getattr(cls, private))
    return cls


def _version_tuple(text: str) -> tuple[int, int]:
    """(major, minor) of a version string such as ``8.6.3``."""
    parts = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in text.split(".")[:2]]
    parts += [0] * (2 - len(parts))
    return parts[0], parts[1]


def _shape(fn) -> tuple[tuple[str, ...], bool]:
    """Names of ``fn``'s positional parameters, and whether it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    positional = tuple(p.name for p in params
                       if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    return positional, any(p.kind is p.VAR_KEYWORD for p in params)


def _hook_problem(manager: type, name: str, params: tuple[str, ...]) -> str | None:
    """What is wrong with hook ``name`` of ``manager``, if anything."""
    fn = getattr(manager, name, None)
    if fn is None or not inspect.iscoroutinefunction(inspect.unwrap(fn)):
        return f"{manager.__name__}.{name} is missing or not a coroutine function"
    if _shape(fn) != (tuple(p for p in params if p != "kw"), "kw" in params):
        return f"{manager.__name__}.{name}{inspect.signature(fn)} no longer takes {params}"
    return None


def problems(manager: type = AsyncKernelManager, base: type = KernelManager,
             installed: str | None = None) -> list[str]:
    """Why the installed jupyter_client does not fit the overrides (empty: it fits)."""
    installed = installed or version("jupyter_client")
    low, high = SUPPORTED
    out = []
    if not low <= _version_tuple(installed) < high:
        out.append(f"jupyter_client {installed} is outside the supported range "
                   f">={low[0]}.{low[1]},<{high[0]}.{high[1]}")
    out += filter(None, (_hook_problem(manager, n, p) for n, p in HOOKS.items()))
    for public, private in ALIASES.items():
        if getattr(manager, public, None) is not getattr(base, private, object()):
            out.append(f"{manager.__name__}.{public} is no longer {base.__name__}.{private}: "
                       "the overrides would not be called")
    return out


def check() -> None:
    """Raise RuntimeError naming every incompatibility of the installed jupyter_client."""
    found = problems()
    if found:
        raise RuntimeError("the installed jupyter_client does not fit the grader's kernel "
                           "managers (grading/jupyter_compat.py): " + "; ".join(found))
