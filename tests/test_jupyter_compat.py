"""The grader's use of jupyter_client (grading/cs231n_grading/jupyter_compat.py, provisioner.py).

The kernel managers change a kernel's start, kill and cleanup only through kernel provisioners
(public API) and the public ``shutdown_kernel``; jupyter_compat checks the installed release
still fits, loudly. The sandboxed provisioner itself is exercised by tests/test_sandbox.py.
"""

import asyncio
import inspect
import os

import nbformat
import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.manager import KernelManager
from jupyter_client.provisioning import LocalProvisioner
from nbclient import NotebookClient

from cs231n_grading import jupyter_compat, kernels, provisioner
from cs231n_grading.kernels import LocalKernelManager
from cs231n_grading.sandbox import SandboxKernelManager


def test_installed_jupyter_client_fits():
    assert jupyter_compat.problems() == []
    jupyter_compat.check()


def test_an_incompatible_jupyter_client_is_reported():
    class Changed(LocalProvisioner):
        async def launch_kernel(self, command, **kw):  # renamed parameter
            pass

        kill = None

    found = jupyter_compat.problems(provisioner=Changed, installed="9.0.1")
    assert any("9.0.1 is outside the supported range" in p for p in found)
    assert any("Changed.launch_kernel(self, command, **kw) no longer takes" in p for p in found)
    assert any("Changed.kill is missing" in p for p in found)


def test_a_manager_ignoring_the_given_provisioner_is_reported():
    class Forgetful(AsyncKernelManager):
        async def pre_start_kernel(self, **kw):
            self.provisioner = None  # as if jupyter_client always made its own
            return await KernelManager._async_pre_start_kernel(self, **kw)

    assert jupyter_compat.gives_own_provisioner_precedence(AsyncKernelManager)
    assert not jupyter_compat.gives_own_provisioner_precedence(Forgetful)
    found = jupyter_compat.problems(manager=Forgetful)
    assert found == ["Forgetful.pre_start_kernel no longer uses the provisioner it was given: "
                     "kernels would start unsandboxed"]
    with pytest.raises(RuntimeError, match="kernels would start unsandboxed"):
        original = jupyter_compat.problems
        try:
            jupyter_compat.problems = lambda: original(manager=Forgetful)
            jupyter_compat.check()
        finally:
            jupyter_compat.problems = original


@pytest.mark.parametrize("cls", [LocalKernelManager, SandboxKernelManager,
                                 provisioner.SandboxProvisioner,
                                 provisioner.LocalDirProvisioner])
def test_no_private_jupyter_client_method_is_overridden(cls):
    base = LocalProvisioner if issubclass(cls, LocalProvisioner) else AsyncKernelManager
    overridden = [n for n, v in vars(cls).items() if hasattr(base, n) and not n.startswith("__")
                  and (inspect.isfunction(v) or isinstance(v, property))]
    assert all(not n.startswith("_") for n in overridden), overridden


def test_local_kernel_runs_through_its_provisioner(tmp_path):
    """A real unsandboxed kernel: cwd and environment from the provisioner, socket folder gone
    after cleanup."""
    lib = tmp_path / "lib"
    lib.mkdir()
    km = kernels.make_kernel_manager(tmp_path, library_dir=lib, env={"CS231N_MARK": "7"})
    assert isinstance(km.provisioner, provisioner.LocalDirProvisioner)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os; print(os.getcwd(), os.environ['CS231N_MARK'], os.environ['PYTHONPATH'])")])
    given = km.provisioner
    NotebookClient(nb, km=km, timeout=30).execute()  # leaves running a kernel it did not make
    ipc_dir = km.provisioner.ipc_dir
    assert os.path.isdir(ipc_dir) and km.ip.startswith(ipc_dir)
    asyncio.run(km.shutdown_kernel(now=True))
    assert nb.cells[0].outputs[0]["text"] == f"{tmp_path} 7 {lib}\n"
    assert km.provisioner is given  # the manager kept the provisioner it was given
    assert not os.path.exists(ipc_dir) and not km.has_kernel
