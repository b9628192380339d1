"""The course's grading layer on nbgrader: release, parallel autograde, feedback, export, check.

Entry point: ``cs231n-course`` (``cs231n_grading.cli:main``), also ``python -m cs231n_grading``.
"""

from cs231n_grading.startup import defer_rfc3987_syntax

# Before anything here imports nbformat (and with it jsonschema): see cs231n_grading.startup.
defer_rfc3987_syntax()
