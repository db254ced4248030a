"""What the change does to the schema, as stage 8 needs it: the tables it touches and the indexes it drops.

Both come from the project's one diff engine (:mod:`dbrunbook.schema`): a schema-only copy is
snapshotted before and after the upgrade and the two snapshots diffed. A table is touched when a
change names it. An index is dropped when the diff removes it (``remove_index``, or
``remove_unique`` for a unique constraint or unique index); the diff matches indexes by their
key (elements, uniqueness, partial predicate), so an index renamed with the same key is not
dropped. A dropped table's indexes are not listed: the ``remove_table`` change says it, and
"keep the index" means nothing once its table is gone.
"""
from __future__ import annotations

import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.schema import Change, Snapshot, diff, snapshot

#: The migration tool's own table: not part of the application's schema.
VERSION_TABLE = "alembic_version"


def read_schema(url: sa.URL | str) -> tuple[Snapshot, sa.MetaData]:
    """The schema of the database at ``url``: the diff engine's snapshot, and the reflected MetaData
    the generated lookups are built from (both without the version table)."""
    engine = make_engine(url)
    try:
        # No sizes: the copy is schema-only, and its row counts would say nothing.
        taken = snapshot(engine, exclude=(VERSION_TABLE,), sizes=False)
        meta = sa.MetaData()
        meta.reflect(engine)
        if VERSION_TABLE in meta.tables:
            meta.remove(meta.tables[VERSION_TABLE])
        return taken, meta
    finally:
        engine.dispose()  # the copy is dropped, or copied by TEMPLATE, only when nobody is connected


def schema_changes(before: Snapshot, after: Snapshot) -> list[Change]:
    """The typed changes the upgrade made, as :func:`dbrunbook.schema.diff` reports them."""
    return diff(before, after).changes


def touched_tables(changes: list[Change]) -> list[str]:
    """The tables the changes name (enum types, sequences and views name none)."""
    return sorted({c.table for c in changes if c.table})


def dropped_indexes(changes: list[Change], before: Snapshot) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The named indexes the changes drop, by table, and the elements of each (to recreate it)."""
    dropped: dict[str, list[str]] = {}
    elements: dict[str, list[str]] = {}
    for change in changes:
        if change.op not in ("remove_index", "remove_unique") or change.table not in before.tables:
            continue
        found = _elements(before, change.table, change.object)
        if found is None:
            continue  # unnamed: the diff labels it by its columns, and no plan names it so
        dropped.setdefault(change.table, []).append(change.object)
        elements[change.object] = found
    return {t: sorted(names) for t, names in sorted(dropped.items())}, elements


def _elements(before: Snapshot, table: str, name: str) -> list[str] | None:
    """The elements of index or unique constraint ``name`` of ``table`` before the change; None if unnamed."""
    old = before.tables[table]
    for index in old.indexes:
        if index.name == name:
            return list(index.columns)
    for unique in old.uniques:
        if unique.name == name:
            return list(unique.columns)
    return None
