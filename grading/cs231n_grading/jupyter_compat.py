"""What the grader relies on in jupyter_client, checked against the installed release.

The grader's kernel managers (``cs231n_grading.kernels``, ``cs231n_grading.sandbox``) change how
a kernel starts, is killed and is cleaned up only through jupyter_client's public extension
point, kernel provisioners (``cs231n_grading.provisioner``), plus ``shutdown_kernel``, a public
method the sandbox manager overrides. No private coroutine is overridden any more. What remains
to check:

- the supported release range (pyproject.toml pins the same);
- the provisioner methods the grader's provisioners override, and the manager methods it
  overrides or calls, still exist with the parameters jupyter_client calls them with;
- one behaviour jupyter_client does not document: a manager given a ``provisioner`` before its
  kernel starts uses that one (``KernelManager.pre_start_kernel`` makes one from the kernel
  spec only when none is set). Were that to change, kernels would start through a plain
  ``LocalProvisioner``: unsandboxed. ``gives_own_provisioner_precedence()`` probes it without
  starting anything.

``problems()`` lists every misfit and ``check()`` raises with the list, so an incompatible
jupyter_client fails loudly (``tests/test_jupyter_compat.py``, and ``cs231n-course
autograde``/``verify`` at start-up) instead of grading with a half-applied sandbox.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from jupyter_client import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

# Releases this module was checked against (pyproject.toml pins the same range).
SUPPORTED = ((8, 6), (9, 0))  # >= 8.6, < 9

# Coroutines the grader's provisioners override or call, with the parameters jupyter_client
# calls them with ("kw": any keyword arguments).
PROVISIONER_API: dict[str, tuple[str, ...]] = {
    "pre_launch": ("self", "kw"),
    "launch_kernel": ("self", "cmd", "kw"),
    "kill": ("self", "restart"),
    "terminate": ("self", "restart"),
    "cleanup": ("self", "restart"),
    "wait": ("self",),
}
# Public coroutines of the kernel manager the grader overrides or calls.
MANAGER_API: dict[str, tuple[str, ...]] = {
    "shutdown_kernel": ("self", "now", "restart"),
    "cleanup_resources": ("self", "restart"),
    "pre_start_kernel": ("self", "kw"),
}


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


def _method_problem(cls: type, name: str, params: tuple[str, ...]) -> str | None:
    """What is wrong with coroutine ``name`` of ``cls``, if anything."""
    fn = getattr(cls, name, None)
    if fn is None or not inspect.iscoroutinefunction(inspect.unwrap(fn)):
        return f"{cls.__name__}.{name} is missing or not a coroutine function"
    if _shape(fn) != (tuple(p for p in params if p != "kw"), "kw" in params):
        return f"{cls.__name__}.{name}{inspect.signature(fn)} no longer takes {params}"
    return None


class _Kept(Exception):
    """Raised by the probe's provisioner: the manager called the provisioner it was given."""


class _Replaced(Exception):
    """Raised by the probe's manager: it looked up a kernel spec to make its own provisioner."""


def gives_own_provisioner_precedence(manager: type = AsyncKernelManager) -> bool:
    """Whether ``manager.pre_start_kernel`` uses a provisioner set on the manager beforehand.

    Nothing is started and nothing written: the given provisioner's ``pre_launch`` raises before
    it does anything, and a manager about to make its own provisioner fails when it asks for its
    kernel spec. The coroutine is driven by hand (no event loop: this may run inside one)."""

    class Probe(LocalProvisioner):
        async def pre_launch(self, **kwargs):
            raise _Kept

    class ProbeManager(manager):
        @property
        def kernel_spec(self):
            raise _Replaced

    km = ProbeManager(kernel_name="probe", kernel_id="probe")
    km.provisioner = Probe(kernel_id="probe", parent=km)
    coro = km.pre_start_kernel()
    try:
        coro.send(None)
    except _Kept:
        return True
    except Exception:  # noqa: BLE001 - _Replaced, or any other change of behaviour
        return False
    finally:
        coro.close()
    return False  # it suspended on something else instead of calling pre_launch


def problems(manager: type = AsyncKernelManager, provisioner: type = LocalProvisioner,
             installed: str | None = None) -> list[str]:
    """Why the installed jupyter_client does not fit the grader (empty: it fits)."""
    installed = installed or version("jupyter_client")
    low, high = SUPPORTED
    out = []
    if not low <= _version_tuple(installed) < high:
        out.append(f"jupyter_client {installed} is outside the supported range "
                   f">={low[0]}.{low[1]},<{high[0]}.{high[1]}")
    api = [*filter(None, (_method_problem(provisioner, n, p) for n, p in PROVISIONER_API.items())),
           *filter(None, (_method_problem(manager, n, p) for n, p in MANAGER_API.items()))]
    if "process" not in dir(provisioner):
        api.append(f"{provisioner.__name__} no longer has a .process (the kernel's Popen)")
    out += api
    if not api and not gives_own_provisioner_precedence(manager):
        out.append(f"{manager.__name__}.pre_start_kernel no longer uses the provisioner it was "
                   "given: kernels would start unsandboxed")
    return out


def check() -> None:
    """Raise RuntimeError naming every incompatibility of the installed jupyter_client."""
    found = problems()
    if found:
        raise RuntimeError("the installed jupyter_client does not fit the grader's kernel "
                           "managers (cs231n_grading/jupyter_compat.py): " + "; ".join(found))
