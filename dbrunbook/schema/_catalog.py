"""Catalog queries per dialect: row estimates, on-disk sizes, free-standing sequences, view parsing.

Each fact is one query keyed by dialect name; the heavy lifting stays in the database.
"""
from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dbrunbook.schema._canonical import canonical_sql, index_element

#: (table, estimated rows, bytes of table + indexes + toast) for the tables of the current schema.
_SIZE_SQL = {
    # Analysed tables: page counts from pg_class (no file access); others: measured exactly.
    "postgresql": """
        SELECT c.relname,
               CASE WHEN c.reltuples < 0 THEN pg_stat_get_live_tuples(c.oid) ELSE c.reltuples::bigint END,
               CASE WHEN c.reltuples < 0 THEN pg_total_relation_size(c.oid)
                    ELSE (c.relpages + COALESCE(t.relpages, 0) + COALESCE(i.pages, 0))::bigint
                         * current_setting('block_size')::bigint END
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
        LEFT JOIN (SELECT x.indrelid, SUM(ic.relpages) AS pages
                   FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid GROUP BY x.indrelid) i
               ON i.indrelid = c.oid
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')""",
    "mariadb": """
        SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH
        FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'""",
}
_SIZE_SQL["mysql"] = _SIZE_SQL["mariadb"]
#: SQLite keeps no row estimate; dbstat (when compiled in) sums the pages of each table and its indexes.
_SQLITE_BYTES = """
    SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name
    GROUP BY m.tbl_name"""
#: Sequences not owned by a column (serial and identity sequences belong to their column).
_SEQUENCE_SQL = {
    "postgresql": """
        SELECT c.relname, s.seqstart, s.seqincrement
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_sequence s ON s.seqrelid = c.oid
        WHERE n.nspname = current_schema() AND c.relkind = 'S'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype IN ('a', 'i'))""",
}
#: sqlglot's name for each dialect, to parse view definitions.
_SQLGLOT = {"postgresql": "postgres", "mariadb": "mysql", "mysql": "mysql", "sqlite": "sqlite"}
_SQLITE_COMPOUND_LIMIT = 400


def sizes(conn: sa.Connection, dialect: str, tables: list[str]) -> dict[str, tuple[int | None, int | None]]:
    """Row estimate and bytes per table, from the catalog in one or a few queries."""
    sizer: Callable[[sa.Connection, list[str]], dict[str, tuple[int | None, int | None]]]
    sizer = _sqlite_sizes if dialect == "sqlite" else _catalog_sizes(_SIZE_SQL.get(dialect))
    return sizer(conn, tables)


def _catalog_sizes(sql: str | None) -> Callable[..., dict[str, tuple[int | None, int | None]]]:
    def run(conn: sa.Connection, tables: list[str]) -> dict[str, tuple[int | None, int | None]]:
        if sql is None:
            return {}
        return {name: (_int(rows), _int(size)) for name, rows, size in conn.execute(sa.text(sql))}

    return run


def _sqlite_sizes(conn: sa.Connection, tables: list[str]) -> dict[str, tuple[int | None, int | None]]:
    rows: dict[str, int] = {}
    for start in range(0, len(tables), _SQLITE_COMPOUND_LIMIT):
        chunk = tables[start:start + _SQLITE_COMPOUND_LIMIT]
        query = sa.union_all(*[sa.select(sa.literal(t), sa.func.count()).select_from(sa.table(t)) for t in chunk])
        rows.update({name: int(n) for name, n in conn.execute(query)})
    try:
        nbytes = {name: int(n) for name, n in conn.execute(sa.text(_SQLITE_BYTES))}
    except sa.exc.OperationalError:  # SQLite built without dbstat: sizes unknown
        conn.rollback()
        nbytes = {}
    return {t: (rows.get(t), nbytes.get(t)) for t in tables}


def sequences(conn: sa.Connection, dialect: str) -> dict[str, dict[str, int]]:
    """Free-standing sequences of the current schema with start and increment."""
    sql = _SEQUENCE_SQL.get(dialect)
    if sql is None:
        return {}
    return {name: {"start": int(start), "increment": int(inc)} for name, start, inc in conn.execute(sa.text(sql))}


def view_references(definition: str, dialect: str) -> tuple[list[str], list[str]]:
    """Tables and column names a view definition reads, parsed with sqlglot (empty if unparsable)."""
    try:
        tree = sqlglot.parse_one(definition, read=_SQLGLOT.get(dialect))
    except sqlglot.errors.SqlglotError:
        return [], []
    if tree is None:
        return [], []
    target = tree.this if isinstance(tree, exp.Create) else None
    tables = sorted({t.name for t in tree.find_all(exp.Table) if t is not target and t.name})
    columns = sorted({c.name for c in tree.find_all(exp.Column) if c.name})
    return tables, columns


#: Index columns stored in descending order, where reflection does not say (MariaDB 10.8+).
_DESC_SQL = {
    "mariadb": """
        SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = DATABASE() AND COLLATION = 'D'""",
}
_DESC_SQL["mysql"] = _DESC_SQL["mariadb"]


def index_facts(conn: sa.Connection, dialect: str) -> dict[tuple[str, str], dict[str, Any]]:
    """What reflection leaves out of indexes, per (table, index): SA-shaped entries to merge.

    SQLite: the parsed ``CREATE INDEX`` (expression indexes, which reflection skips, and sort
    order); MariaDB/MySQL: the descending columns. Empty where reflection says it all.
    """
    if dialect == "sqlite":
        rows = conn.execute(sa.text("SELECT tbl_name, name, sql FROM sqlite_master "
                                    "WHERE type = 'index' AND sql IS NOT NULL"))
        return {(table, name): entry for table, name, sql in rows
                if (entry := _sqlite_index(name, str(sql))) is not None}
    sql = _DESC_SQL.get(dialect)
    if sql is None:
        return {}
    try:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for table, index, column in conn.execute(sa.text(sql)):
            sorting = found.setdefault((table, index), {"column_sorting": {}})["column_sorting"]
            sorting[column] = ("desc",)
        return found
    except sa.exc.DBAPIError:  # a server without the column: no descending indexes to report
        conn.rollback()
        return {}


def _sqlite_index(name: str, sql: str) -> dict[str, Any] | None:
    """A ``CREATE INDEX`` statement as reflection would describe it, with canonical elements."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.SqlglotError:
        return None
    index = tree.this if isinstance(tree, exp.Create) else None
    params = index.args.get("params") if isinstance(index, exp.Index) else None
    if not isinstance(params, exp.IndexParameters) or not params.args.get("columns"):
        return None
    elements = [index_element(c.sql(dialect="sqlite"), "sqlite") for c in params.args["columns"]]
    where = params.args.get("where")
    return {"name": name, "unique": bool(tree.args.get("unique")), "elements": elements,
            "where": canonical_sql(where.this.sql(dialect="sqlite"), "sqlite") if isinstance(where, exp.Where) else None}


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
