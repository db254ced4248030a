"""Schema snapshots, their diff, and the impact of each change.

- :func:`snapshot` reflects a live database; :func:`snapshot_metadata` describes target models;
  :func:`load_snapshot` / :meth:`Snapshot.save` read and write the JSON form.
- :func:`diff` turns two snapshots into :class:`Change` objects and :class:`RenameHint` s.
- :func:`assess` classifies each change and names what depends on it.
"""
from __future__ import annotations

from dbrunbook.schema._model import Column, Constraint, ForeignKey, Index, Snapshot, Table, View, load_snapshot
from dbrunbook.schema.diff import OPS, Change, RenameHint, SchemaDiff, as_changes, diff
from dbrunbook.schema.impact import KINDS, assess, classify, dependencies
from dbrunbook.schema.snapshot import dialect_for, diff_specs, load_side, snapshot, snapshot_metadata

__all__ = [
    "Change", "Column", "Constraint", "ForeignKey", "Index", "KINDS", "OPS", "RenameHint", "SchemaDiff",
    "Snapshot", "Table", "View", "as_changes", "assess", "classify", "dependencies", "diff", "diff_specs",
    "dialect_for", "load_side",
    "load_snapshot", "snapshot", "snapshot_metadata",
]
