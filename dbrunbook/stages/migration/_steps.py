"""The pieces a safe rewrite is built of: steps, the plan they form, and PostgreSQL quoting.

Shared by :mod:`dbrunbook.stages.migration.rewrite` (constraints, indexes, NOT NULL, defaults) and
:mod:`dbrunbook.stages.migration._rewrite_type` (type changes through a shadow column).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrunbook.dialects import PostgreSQL, facts

#: Quotes identifiers the way PostgreSQL needs them (SQLAlchemy's rules, no driver loaded).
_PREPARER = facts(PostgreSQL.name).sqlalchemy_dialect().identifier_preparer
#: Session settings put at the top of every rewritten revision.
TIMEOUTS = {"lock_timeout": "5s", "statement_timeout": "15min"}
#: Rows updated per committed batch when backfilling.
BATCH_ROWS = 10_000

@dataclass
class Step:
    """One SQL statement of the rewrite and whether it must run outside a transaction."""

    sql: str
    autocommit: bool = False


@dataclass
class RewritePlan:
    """The safe revision(s) a rewrite produces, and advice where no rewrite applies."""

    original: str
    down_revision: str | None
    expand: list[Step] = field(default_factory=list)
    contract: list[Step] = field(default_factory=list)
    expand_down: list[str] = field(default_factory=list)
    contract_down: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    #: Columns whose type the revision changes, as they are at its parent (see _rewrite_type).
    columns: dict[tuple[str, str], Any] = field(default_factory=dict)
    columns_read: bool = False


def _q(name: str) -> str:
    """``name`` quoted for PostgreSQL where it must be (upper case, reserved word, odd characters)."""
    return _PREPARER.quote(name)


def _validate(table: str, constraint: str) -> Step:
    # Its own transaction: the ACCESS EXCLUSIVE lock of ADD ... NOT VALID must be released
    # before the scan, or the scan runs under it.
    return Step(f"ALTER TABLE {_q(table)} VALIDATE CONSTRAINT {_q(constraint)}", autocommit=True)


def _not_null_steps(table: str, column: str) -> list[Step]:
    check = _q(f"ck_{table}_{column}_not_null"[:63])
    t, c = _q(table), _q(column)
    return [Step(f"ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID"),
            _validate(table, f"ck_{table}_{column}_not_null"[:63]),
            Step(f"ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"),
            Step(f"ALTER TABLE {t} DROP CONSTRAINT {check}")]
