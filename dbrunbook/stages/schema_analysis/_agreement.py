"""Do the pending revisions produce the models? Stage 01's second source of the change, checked against the first.

With both target models and pending revisions, the change is known twice: the live schema against the models,
and the live schema against what the revisions make. :func:`compare_revisions` applies the revisions to a
schema-only copy (in the fenced Alembic process), snapshots the copy and diffs it with the models rendered for the
same dialect (:mod:`dbrunbook.schema`): each difference left is one the upgrade would leave between the database
and the code, as ``alembic check`` run after the upgrade would report it.

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

from dbrunbook.core import codes
from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.core.results import Finding
from dbrunbook.schema import Change, Snapshot, diff, snapshot, snapshot_metadata

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
    """What the pending revisions make, compared with the models: the differences, or why there are none known."""

    revisions: list[str]
    differences: list[Change] = field(default_factory=list)
    error: str = ""


def compare_revisions(target: Target, metadata: sa.MetaData, script_dir: Path) -> Agreement | None:
    """Apply ``target``'s pending revisions (scripts copied to ``script_dir``) to a schema-only copy and diff the
    result with ``metadata``; None when no revision is pending. Never raises: a failure is the ``error``."""
    revisions: list[str] = []
    try:
        migrated, revisions, error = migrated_snapshot(target, script_dir)
        if migrated is None:
            return Agreement(revisions, error=error) if error else None
        models = snapshot_metadata(metadata, migrated.dialect)
        return Agreement(revisions, disagreements(migrated, models, metadata))
    except Exception as exc:  # stage 01 goes on without the check; the warning says why
        return Agreement(revisions, error=f"{type(exc).__name__}: {exc}".strip().splitlines()[0])


def migrated_snapshot(target: Target, script_dir: Path) -> tuple[Snapshot | None, list[str], str]:
    """The snapshot of a schema-only copy of ``target`` after its pending revisions, the revisions, and the error
    that stopped them ("" when none; no snapshot and no error when nothing is pending)."""
    from dbrunbook.alembic_ops.migration import apply_upgrade, pending_for
    from dbrunbook.data.clone import scratch_copy

    cfg, revisions = pending_for(target, script_dir)
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


def agreement_findings(agreement: Agreement | None, models: str) -> list[Finding]:
    """SA006 when the revisions do not produce the models (every difference listed), SA007 when that is unknown."""
    if agreement is None:
        return []
    revisions = agreement.revisions
    pending = "the pending revisions" if not revisions else f"revision {revisions[0]}" if len(revisions) == 1 \
        else f"the {len(revisions)} pending revisions ({revisions[0]} .. {revisions[-1]})"
    head = revisions[-1] if revisions else ""  # the object: the revision the upgrade ends at
    if agreement.error:
        return [codes.SA007.finding(f"could not check that {pending} make the models {models}: "
                                    f"{agreement.error}", head, {"revisions": revisions, "error": agreement.error})]
    if not agreement.differences:
        return []
    listed = "; ".join(c.extra["disagreement"] for c in agreement.differences)
    return [codes.SA006.finding(
        f"{pending} {'does' if len(revisions) == 1 else 'do'} not produce the models {models}: "
        f"{len(agreement.differences)} difference(s): {listed}", head,
        {"revisions": agreement.revisions,
         "differences": [{"op": c.op, "table": c.table, "object": c.object, "migrations": c.before,
                          "models": c.after, "says": c.extra["disagreement"]} for c in agreement.differences]})]
