"""The course's grading layer on nbgrader: release, parallel autograde, feedback, export, check.

Entry point: ``cs231n-course`` (``cs231n_grading.cli:main``), also ``python -m cs231n_grading``.
"""
