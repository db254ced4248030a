"""Do revisions make the models? What a set of revisions leaves, compared with what the models describe.

:func:`compare_revisions` applies revisions to a schema-only copy of the target (in the fenced Alembic process),
snapshots the copy and diffs it with the models rendered for the same dialect (:mod:`dbrunbook.schema`): each
difference left is one the upgrade would leave between the database and the code, as ``alembic check`` run after
the upgrade would report it. Stage 01 checks the pending revisions with it; stage 03 checks the revisions it
planned, the one it generated with autogenerate included (autogenerate omits CHECK constraints, enum values and
some defaults and types). Both stages import it from here: stage 03 sits below stage 01 in the stages' graph.

The comparison is as lenient as Alembic's where the snapshot is stricter than meaning: a model type without
arguments (``String()``) matches any length the migration chose, a primary key differing only in column order and
the CHECK a Boolean or Enum type makes for itself (SQLAlchemy 1.x added one by default) are no disagreement.
Spellings of types, server defaults and unnamed constraints are already one form in the snapshots.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dbrunbook.alembic_ops.migration import alembic_config, apply_upgrade, pending_for
from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.data.clone import scratch_copy
from dbrunbook.schema import Change, Snapshot, diff, snapshot, snapshot_metadata

__all__ = ["Agreement", "compare_revisions", "describe", "disagreements", "migrated_snapshot"]

#: A CHECK that names one column and a list of values: what a Boolean or Enum type makes for itself.
_TYPE_CHECK = re.compile(r"^\(?\s*\"?(\w+)\"?\s+IN\s*\(", re.IGNORECASE)
#: How each kind of object is named in a finding.
_NOUNS = {"table": "table", "column": "column", "fk": "foreign key", "unique": "unique constraint",
          "index": "index", "check": "check constraint", "enum": "enum type", "enum_value": "enum value",
          "sequence": "sequence", "view": "view", "pk": "primary key", "table_comment": "table comment"}
_COLUMN_FACTS = {"type": "type", "nullable": "nullability", "default": "server default", "comment": "comment",
                 "identity": "identity"}


@dataclass
class Agreement:
    """What the revisions make, compared with the models: the differences, or why there are none known."""

    revisions: list[str]
    differences: list[Change] = field(default_factory=list)
    error: str = ""


def compare_revisions(target: Target, metadata: sa.MetaData, script_dir: Path,
                      revisions: list[str] | None = None) -> Agreement | None:
    """Apply ``target``'s pending revisions (the scripts at ``script_dir``, a copy) to a schema-only copy and diff
    the result with ``metadata``; None when no revision is pending. ``revisions``: the pending ones when the
    caller knows them (a plan), so the target is not read again. Never raises: a failure is the ``error``."""
    known = list(revisions or [])
    try:
        migrated, known, error = migrated_snapshot(target, script_dir, revisions)
        if migrated is None:
            return Agreement(known, error=error) if error else None
        models = snapshot_metadata(metadata, migrated.dialect)
        return Agreement(known, disagreements(migrated, models, metadata))
    except Exception as exc:  # the stage goes on without the check; its note says why
        return Agreement(known, error=f"{type(exc).__name__}: {exc}".strip().splitlines()[0])


def migrated_snapshot(target: Target, script_dir: Path,
                      revisions: list[str] | None = None) -> tuple[Snapshot | None, list[str], str]:
    """The snapshot of a schema-only copy of ``target`` after its pending revisions (``revisions`` when given),
    the revisions, and the error that stopped them ("" when none; no snapshot and no error when nothing is
    pending)."""
    if revisions is None:
        cfg, revisions = pending_for(target, script_dir)
    else:
        cfg = alembic_config(target, script_dir)
    if not revisions:
        return None, [], ""
    with scratch_copy(target.db, mode="schema") as url:
        result = apply_upgrade(cfg, url, "heads")
        if not result.ok:
            return None, revisions, f"the revisions fail on a schema-only copy: {result.error}"
        copy = make_engine(url)
        try:
            return snapshot(copy, sizes=False), revisions, ""
        finally:
            copy.dispose()


def disagreements(migrated: Snapshot, models: Snapshot, metadata: sa.MetaData) -> list[Change]:
    """The changes from what the migrations make to what the models say that Alembic would call differences,
    each described in ``extra["disagreement"]``."""
    out = []
    for change in diff(migrated, models).changes:
        if _alike(change, metadata):
            continue
        change.extra["disagreement"] = describe(change)
        out.append(change)
    return out


def _alike(change: Change, metadata: sa.MetaData) -> bool:
    """A difference of spelling or of something Alembic does not compare, not of meaning."""
    if change.op == "modify_type":
        before, after = str(change.before), str(change.after)
        # A model type without arguments (String(), Numeric()) accepts the length or precision the migration chose.
        return "(" not in after and before.partition("(")[0] == after
    if change.op == "modify_pk":
        return sorted(change.before or []) == sorted(change.after or [])
    if change.op == "remove_check":
        found = _TYPE_CHECK.match(str((change.before or [""])[0]))
        table = metadata.tables.get(change.table)
        column = table.columns.get(found.group(1)) if found is not None and table is not None else None
        return column is not None and isinstance(column.type, (sa.Boolean, sa.Enum))
    return False


def describe(change: Change) -> str:
    """One difference as a reviewer reads it: the object, what the migrations make, what the models say."""
    verb, _, what = change.op.partition("_")
    if verb in ("add", "remove"):
        noun = _NOUNS.get(what, what.replace("_", " "))
        shape = re.sub(r"^(table|column|index|unique|check|foreign key|enum type|enum value|sequence|view)\s*", "",
                       re.sub(r"\s*(added|dropped|removed)\b", "", change.detail)).strip()
        shown = f"{noun} {change.object}" + (f" {shape}" if shape and shape not in change.object else "")
        if verb == "add":
            return f"{shown}: the models have it, the migrations do not make it"
        return f"{shown}: the migrations make it, the models do not have it"
    if what in _COLUMN_FACTS:
        return (f"column {change.object}: the migrations make it {_shown(what, change.before)}, "
                f"the models say {_shown(what, change.after)}")
    noun = _NOUNS.get(what, what.replace("_", " "))
    return f"{noun} {change.object}: the migrations make {_shown(what, change.before)}, " \
           f"the models say {_shown(what, change.after)}"


def _shown(what: str, value: Any) -> str:
    if what == "nullable":
        return "NULL" if value else "NOT NULL"
    if what in _COLUMN_FACTS and what != "type":
        return f"{_COLUMN_FACTS[what]} {value!r}" if value is not None else f"no {_COLUMN_FACTS[what]}"
    if value is None:
        return "none"
    if isinstance(value, list):
        return f"({', '.join(map(str, value))})"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, [], ""))
    return repr(value) if what == "default" else str(value)
