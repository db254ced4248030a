"""Reversibility: does the downgrade exist, undo every upgrade operation, and restore data?

Each upgrade action has an inverse (ADD COLUMN ↔ DROP COLUMN, CREATE INDEX ↔ DROP INDEX,
SET NOT NULL ↔ DROP NOT NULL ...). :func:`check` pairs every upgrade action with the
downgrade's and flags the ones left undone, and the lossy ones: the structure comes back but
the data does not (dropped columns and tables, truncation, a type narrowed on the way back).

The statements compared are those of :func:`operations_sql`, which renders the revisions'
own Alembic operations offline for PostgreSQL: the operations are what the author wrote, and
the rendering is the same on every target (SQLite's batch mode would otherwise show a table
copy instead of the operations).
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.operations import Operations

from dbrunbook.core.project import copied_scripts
from dbrunbook.core.results import Finding
from dbrunbook.dialects import OPERATIONS_DIALECT
from dbrunbook.errors import ConfigError
from dbrunbook.lint.offline import offline_context
from dbrunbook.sql.model import Action, Migration, Statement, parse_sql
from dbrunbook.sql.types import binary_compatible

#: Action kinds that are not schema changes (session, transaction, version bookkeeping).
_NOT_CHANGES = {"begin", "commit", "set", "other", "vacuum", "lock_table", "reindex"}

#: For each upgrade kind: the downgrade kinds that undo it, and what is lost if it is undone.
_INVERSE: dict[str, tuple[tuple[str, ...], str]] = {
    "add_column": (("drop_column",), ""),
    "drop_column": (("add_column",), "the values of {object}"),
    "create_table": (("drop_table",), ""),
    "drop_table": (("create_table",), "every row of {object}"),
    "create_index": (("drop_index", "drop_constraint"), ""),
    "drop_index": (("create_index", "add_constraint"), ""),
    "add_constraint": (("drop_constraint", "drop_index"), ""),
    "drop_constraint": (("add_constraint", "create_index"), ""),
    "set_not_null": (("drop_not_null", "modify_column"), ""),
    "drop_not_null": (("set_not_null", "modify_column"), ""),
    "modify_column": (("modify_column",), ""),
    "alter_type": (("alter_type",), ""),
    "rename_column": (("rename_column",), ""),
    "rename_table": (("rename_table",), ""),
    "create_type": (("drop_type",), ""),
    "set_default": (("drop_default", "set_default"), ""),
    "drop_default": (("set_default",), ""),
    "truncate": ((), "every row of {object}"),
}


@dataclass
class Reversal:
    """One upgrade action and how the downgrade treats it."""

    statement: Statement
    action: Action
    inverse: str
    undone: bool
    lost: str = ""

    @property
    def lossy(self) -> bool:
        return bool(self.lost)

    @property
    def object(self) -> str:
        return self.action.object

    @property
    def description(self) -> str:
        return f"{self.action.kind.replace('_', ' ')} {self.action.object}"

    def to_row(self) -> dict[str, Any]:
        return {"statement": self.statement.index, "operation": self.description, "undone_by": self.inverse,
                "undone": self.undone, "lossy": self.lossy, "lost": self.lost}


def changes(migration: Migration) -> list[Action]:
    """The schema-changing actions of ``migration`` (no BEGIN/SET/version bookkeeping)."""
    return [a for _, a in migration.actions() if a.kind not in _NOT_CHANGES
            and not (a.kind == "dml" and a.table == "alembic_version")]


def _key(action: Action) -> tuple[str, str]:
    return action.table, action.column or action.name


def _undoes(up: Action, down: Action) -> bool:
    if up.kind == "rename_column":
        return (down.table, down.column, down.details.get("to")) == (up.table, up.details.get("to"), up.column)
    if up.kind == "rename_table":
        return (down.table, down.details.get("to")) == (up.details.get("to"), up.table)
    if up.kind in ("create_index", "drop_index", "add_constraint", "drop_constraint", "create_type"):
        return bool(up.name) and up.name == down.name
    return _key(up) == _key(down)


def _lost(up: Action, down: Action | None, template: str) -> str:
    if up.kind == "alter_type" and down is not None:
        new, back = up.details.get("type", ""), down.details.get("type", "")
        if back and not binary_compatible(new, back):
            return f"values of {up.object} that do not fit {back} (the upgrade made it {new})"
        return ""
    return template.format(object=up.object) if template else ""


def _recreated(migration: Migration, action: Action) -> bool:
    return action.kind == "drop_table" and any(
        a.table == f"_alembic_tmp_{action.table}" for _, a in migration.actions("rename_table"))


def _transient(migration: Migration, stmt: Statement, action: Action) -> bool:
    """A step the upgrade itself undoes, or that undoes an earlier step (a temporary check)."""
    kinds = _INVERSE.get(action.kind, ((), ""))[0]
    later = any(a.kind in kinds and _undoes(action, a) for s, a in migration.actions() if s.index > stmt.index)
    return later or any(action.kind in _INVERSE.get(a.kind, ((), ""))[0] and _undoes(a, action)
                        for s, a in migration.actions() if s.index < stmt.index)


def _covered(migration: Migration, stmt: Statement, action: Action) -> bool:
    """Changes to a column the same upgrade adds: dropping the column undoes them all."""
    return bool(action.column) and action.kind != "add_column" and any(
        a.kind == "add_column" and (a.table, a.column) == (action.table, action.column)
        for s, a in migration.actions() if s.index < stmt.index)


def check(upgrade: Migration, downgrade: Migration) -> list[Reversal]:
    """Pair each upgrade action with the downgrade action that undoes it."""
    downs = changes(downgrade)
    out = []
    for stmt, action in upgrade.actions(*_INVERSE):
        if action.table.startswith("_alembic_tmp_") or _recreated(upgrade, action) \
                or _transient(upgrade, stmt, action) or _covered(upgrade, stmt, action):
            continue  # SQLite's table copy, or a step the upgrade itself undoes (a temporary check)
        kinds, template = _INVERSE[action.kind]
        match = next((d for d in downs if d.kind in kinds and _undoes(action, d)), None)
        if match is None and action.kind != "drop_table":
            # Dropping the table undoes everything done to it (its indexes, columns, constraints).
            match = next((d for d in downs if d.kind == "drop_table" and d.table == action.table), None)
        undone = match is not None or not kinds
        inverse = f"{match.kind.replace('_', ' ')} {match.object}" if match else ("nothing can" if not kinds else "")
        out.append(Reversal(stmt, action, inverse, undone, _lost(action, match, template)))
    return out


def findings(upgrade: Migration, downgrade: Migration | None) -> list[Finding]:
    """RB findings for a migration pair, as the stage reports them."""
    from dbrunbook.lint import LintConfig, lint_migration

    empty = parse_sql("", upgrade.dialect, upgrade.source)
    return lint_migration(upgrade, LintConfig(include=("RB*",)),
                          rollback=(upgrade, downgrade if downgrade is not None else empty)).findings


def operations_sql(script_dir: Path, revisions: Sequence[str], dialect: str = OPERATIONS_DIALECT,
                   unreadable: dict[str, str] | None = None) -> tuple[str, str]:
    """Upgrade and downgrade SQL of ``revisions`` rendered offline from their Alembic operations.

    A revision that needs a live database (``op.get_bind()``, ``sa.inspect``) cannot be rendered so: with
    ``unreadable`` given, its reason is recorded there and the others are still rendered; without, it raises.
    """
    scripts = copied_scripts(script_dir)
    up, down = io.StringIO(), io.StringIO()
    for rev in revisions:
        script = scripts.get_revision(rev)
        if script is None:
            raise ConfigError(f"no Alembic revision {rev} in {script_dir}")
        mark_up, mark_down = up.tell(), down.tell()
        try:
            for fn, buf in ((script.module.upgrade, up), (getattr(script.module, "downgrade", None), down)):
                if fn is None:
                    continue
                with Operations.context(offline_context(dialect, buf)):
                    fn()
        except Exception as exc:  # the revision's own code: recorded per revision when asked
            if unreadable is None:
                raise
            unreadable[rev] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            for buf, mark in ((up, mark_up), (down, mark_down)):
                buf.seek(mark)
                buf.truncate()
    return up.getvalue(), down.getvalue()


def analyse(script_dir: Path, revisions: Sequence[str]) -> tuple[list[Reversal], list[Finding]]:
    """Reversibility of ``revisions``: the pairing table and the RB findings."""
    up_sql, down_sql = operations_sql(script_dir, revisions)
    upgrade, downgrade = (parse_sql(sql, OPERATIONS_DIALECT, "operations") for sql in (up_sql, down_sql))
    return check(upgrade, downgrade), findings(upgrade, downgrade)
