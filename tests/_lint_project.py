"""Moved to ``tests/helpers`` (:mod:`helpers.lint_project`, :mod:`helpers.projects`).

TODO(helpers): delete once tests/test_lint_state.py imports from there; new tests import ``helpers``.
"""
from helpers.lint_project import BASE, UNSAFE, fill
from helpers.projects import write_project

__all__ = ["BASE", "UNSAFE", "fill", "write_project"]
