"""The course's grading layer on nbgrader: release, parallel autograde, feedback, export, check.

Entry point: ``cs231n-course`` (``grading.cli:main``), also ``python -m grading``.
"""
