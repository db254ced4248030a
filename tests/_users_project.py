"""Moved to :mod:`helpers.users_project`.

TODO(helpers): delete once tests/test_fence.py imports from there; new tests import ``helpers``.
"""
from helpers.users_project import REVISIONS, UNTOUCHED, at_0001_with_two_rows, users_state

__all__ = ["REVISIONS", "UNTOUCHED", "at_0001_with_two_rows", "users_state"]
