"""First process inside the grading sandbox: prepare the student's files, drop privileges, exec.

bubblewrap starts this file (read-only bind, standard library only, run with ``python -I``) as
the sandbox's main process. It receives one JSON argument with its plan, then the kernel's argv:

1. copy the submission (read-only bind, visible to root only) into the size-capped home tmpfs, so
   the kernel works on a private copy and can never fill the host's disk; copy the grader's
   connection file into the kernel's own tmpfs, its ipc path rewritten to point there;
2. hand both to the sandbox uid, mark the whole tree first in line for the OOM killer, set the
   rlimits (RLIMIT_NPROC counts processes per uid, hence a uid of its own per sandbox);
3. drop every privilege (groups, gid, uid: a root -> non-root setuid clears all capabilities) and
   exec the kernel in the work directory.

When the grader is not root, bubblewrap has already mapped the caller's own uid (user namespace,
no capabilities), ``uid`` is null and the chown and setuid steps are skipped.
"""

import json
import os
import resource
import shutil
import sys


def _chown_tree(top, uid, gid):
    """Give ``top`` and everything below it to uid:gid (symlinks themselves, not their targets)."""
    os.lchown(top, uid, gid)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def main(plan, argv):
    """Follow ``plan`` (see the module docstring) and replace this process by ``argv``."""
    shutil.copytree(plan["source"], plan["work"], symlinks=True)
    with open(plan["connection_in"]) as f:
        connection = json.load(f)
    connection["ip"] = os.path.join(plan["kernel_dir"], "kernel")
    connection_file = os.path.join(plan["kernel_dir"], "kernel.json")
    with open(connection_file, "w") as f:
        json.dump(connection, f)
    uid, gid = plan["uid"], plan["gid"]
    if uid is not None:
        _chown_tree(plan["home"], uid, gid)
        _chown_tree(plan["kernel_dir"], uid, gid)
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")  # the sandbox dies before anything on the host does
    for name, value in plan["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if uid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    os.chdir(plan["work"])
    os.execve(argv[0], [*argv, "-f", connection_file], plan["env"])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2:])
