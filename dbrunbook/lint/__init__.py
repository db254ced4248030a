"""Lint: coded rules that review a migration's SQL for safety, one rule per module.

The rules live in :mod:`dbrunbook.lint.rules` and register on :data:`registry` (the ``lint``
registry of :mod:`dbrunbook.core.rules`); code families: DS destructive, BC backward-incompatible,
MF may fail on data, LK locking, RB rollback, ID idempotency, TX transactions.
"""
from __future__ import annotations

from dbrunbook.core.rules import Registry

registry = Registry("lint", "dbrunbook.lint.rules")

from dbrunbook.lint.docs import render_rules_markdown  # noqa: E402
from dbrunbook.lint.runner import LintConfig, LintReport, lint_migration, lint_sql, load_config  # noqa: E402
from dbrunbook.sql.model import Action, Migration, Statement, parse_sql  # noqa: E402

__all__ = ["Action", "LintConfig", "LintReport", "Migration", "Statement", "lint_migration", "lint_sql",
           "load_config", "parse_sql", "registry", "render_rules_markdown"]
