"""Mark the library functions that a notebook asks students to write.

``@exercise("01_convolution", "2. Naive forward pass")`` does nothing at run time. The release
tool (``cs231n-course release``) finds the decorated functions with ``ast`` and, in the student
edition of the library, replaces each body (keeping signature and docstring) with a
``NotImplementedError`` that names the notebook and section.
"""

from __future__ import annotations


def exercise(notebook: str, section: str):
    """Tag a function as the reference solution of a notebook exercise."""

    def mark(fn):
        fn.__exercise__ = (notebook, section)
        return fn

    return mark
