"""Helpers the test modules share, each written once.

- :mod:`helpers.databases`: the test servers, throwaway databases, what a database holds and which databases exist.
- :mod:`helpers.demo`: the demo project, built once per session and dialect and copied for each test.
- :mod:`helpers.projects`: Alembic projects and revisions written for a test.
- :mod:`helpers.lint_project`, :mod:`helpers.users_project`: two small projects several modules run on.
- :mod:`helpers.runs`: the runbook and the ``dbrunbook`` command run as a test needs them.

The fixtures built on these live in ``tests/conftest.py``.
"""
