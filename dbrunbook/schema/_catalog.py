"""Catalog facts per dialect: row estimates, on-disk sizes, free-standing sequences, indexes, view parsing.

The queries are the dialects' own (:mod:`dbrunbook.dialects`); the heavy lifting stays in the database.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dbrunbook import dialects
from dbrunbook.schema._canonical import canonical_sql, index_element


def sizes(conn: sa.Connection, dialect: str, tables: list[str]) -> dict[str, tuple[int | None, int | None]]:
    """Row estimate and bytes per table, from the catalog in one or a few queries."""
    found = dialects.get(dialect)
    return found.table_sizes(conn, tables) if found else {}


def sequences(conn: sa.Connection, dialect: str) -> dict[str, dict[str, int]]:
    """Free-standing sequences of the current schema with start and increment."""
    found = dialects.get(dialect)
    sql = found.sequences_sql if found else None
    if sql is None:
        return {}
    return {name: {"start": int(start), "increment": int(inc)} for name, start, inc in conn.execute(sa.text(sql))}


def view_references(definition: str, dialect: str) -> tuple[list[str], list[str]]:
    """Tables and column names a view definition reads, parsed with sqlglot (empty if unparsable)."""
    try:
        found = dialects.get(dialect)
        tree = sqlglot.parse_one(definition, read=found.sqlglot if found else None)
    except sqlglot.errors.SqlglotError:
        return [], []
    if tree is None:
        return [], []
    target = tree.this if isinstance(tree, exp.Create) else None
    tables = sorted({t.name for t in tree.find_all(exp.Table) if t is not target and t.name})
    columns = sorted({c.name for c in tree.find_all(exp.Column) if c.name})
    return tables, columns


def index_facts(conn: sa.Connection, dialect: str) -> dict[tuple[str, str], dict[str, Any]]:
    """What reflection leaves out of indexes, per (table, index): SA-shaped entries to merge.

    Where the dialect keeps each index's CREATE statement (SQLite), the parsed statement (expression
    indexes, which reflection skips, and sort order); where it lists descending columns (MariaDB/MySQL),
    those. Empty where reflection says it all.
    """
    found = dialects.get(dialect)
    if found is None:
        return {}
    if found.index_definitions_sql is not None:
        rows = conn.execute(sa.text(found.index_definitions_sql))
        return {(table, name): entry for table, name, sql in rows
                if (entry := _parsed_index(name, str(sql), found.name, found.sqlglot)) is not None}
    if found.descending_index_columns_sql is None:
        return {}
    try:
        facts: dict[tuple[str, str], dict[str, Any]] = {}
        for table, index, column in conn.execute(sa.text(found.descending_index_columns_sql)):
            sorting = facts.setdefault((table, index), {"column_sorting": {}})["column_sorting"]
            sorting[column] = ("desc",)
        return facts
    except sa.exc.DBAPIError:  # a server without the column: no descending indexes to report
        conn.rollback()
        return {}


def _parsed_index(name: str, sql: str, dialect: str, read: str) -> dict[str, Any] | None:
    """A ``CREATE INDEX`` statement as reflection would describe it, with canonical elements."""
    try:
        tree = sqlglot.parse_one(sql, read=read)
    except sqlglot.errors.SqlglotError:
        return None
    index = tree.this if isinstance(tree, exp.Create) else None
    params = index.args.get("params") if isinstance(index, exp.Index) else None
    if not isinstance(params, exp.IndexParameters) or not params.args.get("columns"):
        return None
    elements = [index_element(c.sql(dialect=read), dialect) for c in params.args["columns"]]
    where = params.args.get("where")
    return {"name": name, "unique": bool(tree.args.get("unique")), "elements": elements,
            "where": canonical_sql(where.this.sql(dialect=read), dialect) if isinstance(where, exp.Where) else None}
