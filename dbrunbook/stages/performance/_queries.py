"""The query set of stage 8: the user's own SELECTs, and lookups generated from the schema.

User queries come from a ``.sql`` file of ``;``-separated statements or a list; each must be a
read-only SELECT (checked with sqlglot in the target's dialect). Generated queries cover each
table the change touches: lookup by primary key, by each foreign-key column, by the leading
column of each index (before or after the change), and the join along each foreign key. Their
parameter values are real values read from the target, one row per lookup.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType  # type: ignore[attr-defined]

from dbrunbook.errors import UsageError
from dbrunbook.sql.model import SQLGLOT_DIALECT
from dbrunbook.stages.data_checks._base import read_only

#: Nodes that write, lock or create something: a query holding one is not a read-only SELECT.
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Into, exp.Lock)


@dataclass
class Query:
    """One query to plan and time before and after the change."""

    id: str
    sql: str
    kind: str  # user | pk | fk | index | join
    table: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _split(sql: str, read: str) -> Iterator[str]:
    """Each statement of ``sql``, split on the semicolons sqlglot's tokenizer sees (not those in strings)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(read).tokenize(sql)
    except TokenError as exc:
        raise UsageError(f"cannot read the queries: {exc}") from None
    start = 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if sql[start:token.start].strip():
                yield sql[start:token.start].strip()
            start = token.end + 1
    if sql[start:].strip():
        yield sql[start:].strip()


def check_select(sql: str, dialect: str) -> dict[str, str]:
    """The tables a read-only SELECT reads, by alias (or name); :class:`UsageError` for anything else."""
    read = SQLGLOT_DIALECT.get(dialect, dialect)
    short = " ".join(sql.split())[:80]
    try:
        tree = sqlglot.parse_one(sql, read=read)
    except (ParseError, TokenError) as exc:
        raise UsageError(f"cannot parse query {short!r}: {str(exc).splitlines()[0]}") from None
    if not isinstance(tree, exp.Query) or any(tree.find_all(*_WRITES)):
        raise UsageError(f"only read-only SELECT queries can be compared, not {short!r}")
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    return {t.alias_or_name: t.name for t in tree.find_all(exp.Table) if t.name and t.name not in ctes}


def load_queries(dialect: str, queries_file: str | Path = "", queries: list[str] | tuple[str, ...] = (),
                 project_dir: Path | None = None) -> list[Query]:
    """The user's queries from ``queries_file`` (relative to ``project_dir``) and ``queries``, checked."""
    texts: list[str] = []
    read = SQLGLOT_DIALECT.get(dialect, dialect)
    if queries_file:
        path = Path(queries_file)
        path = path if path.is_absolute() or project_dir is None else project_dir / path
        if not path.is_file():
            raise UsageError(f"queries file {path} not found")
        texts += list(_split(path.read_text(), read))
    for text in queries:
        texts += list(_split(str(text), read))
    out = []
    for n, sql in enumerate(texts, 1):
        aliases = check_select(sql, dialect)
        out.append(Query(f"q{n}", sql, "user", tables=sorted(set(aliases.values())), aliases=aliases))
    return out


def _leading(table: sa.Table) -> list[tuple[str, str]]:
    """(index name, leading column) of each index and unique constraint of ``table``."""
    out = [(str(ix.name), ix.columns[0].name) for ix in table.indexes if ix.columns]
    out += [(str(u.name), list(u.columns)[0].name) for u in table.constraints
            if isinstance(u, sa.UniqueConstraint) and u.columns]
    return out


def _planned(before: sa.MetaData, after: sa.MetaData, touched: list[str]) -> list[tuple[str, str, str, list[str]]]:
    """(kind, table, label, columns) of each lookup, for tables that exist on both sides."""
    both = [t for t in touched if t in before.tables and t in after.tables]
    plans: list[tuple[str, str, str, list[str]]] = []
    for name in both:
        old, new = before.tables[name], after.tables[name]
        shared = set(old.c.keys()) & set(new.c.keys())
        pk = [c.name for c in old.primary_key.columns]
        if pk and set(pk) <= shared:
            plans.append(("pk", name, "primary key", pk))
        seen = {pk[0]} if pk else set()
        for fk in sorted(old.foreign_key_constraints, key=lambda f: list(f.column_keys)):
            first = fk.column_keys[0]
            if first in shared and first not in seen:
                seen.add(first)
                plans.append(("fk", name, first, [first]))
        for _, column in sorted(set(_leading(old) + _leading(new))):
            if column in shared and column not in seen:
                seen.add(column)
                plans.append(("index", name, column, [column]))
    for name in sorted(before.tables):
        if name not in after.tables:
            continue
        for fk in before.tables[name].foreign_key_constraints:
            parent = fk.referred_table.name
            if (name in both or parent in both) and parent in after.tables and len(fk.columns) == 1:
                plans.append(("join", name, f"{parent} join {name}",
                              [fk.column_keys[0], fk.elements[0].column.name]))
    return plans


def generate_queries(engine: sa.Engine, before: sa.MetaData, after: sa.MetaData, touched: list[str],
                     timeout_ms: int = 60_000) -> tuple[list[Query], list[str]]:
    """Lookups on the touched tables with values read from ``engine`` (the target, read-only).

    Returns the queries and a note for each lookup skipped because the data holds no value for it.
    """
    queries: list[Query] = []
    skipped: list[str] = []
    q = engine.dialect.identifier_preparer.quote
    with read_only(engine, timeout_ms) as (conn, _):
        for kind, name, label, columns in _planned(before, after, touched):
            source = columns[:1] if kind == "join" else columns
            probe = " AND ".join(f"{q(c)} IS NOT NULL" for c in source)
            row = conn.exec_driver_sql(f"SELECT {', '.join(q(c) for c in source)} FROM {q(name)} "
                                       f"WHERE {probe} LIMIT 1").first()
            if row is None:
                skipped.append(f"{name} by {label}: no value in the data")
                continue
            params = {f"v{n}": value for n, value in enumerate(row)}
            if kind == "join":
                parent = before.tables[name].foreign_key_constraints
                ref = next(fk.referred_table.name for fk in parent if fk.column_keys[0] == columns[0])
                sql = (f"SELECT {q(name)}.* FROM {q(ref)} JOIN {q(name)} ON {q(name)}.{q(columns[0])} = "
                       f"{q(ref)}.{q(columns[1])} WHERE {q(ref)}.{q(columns[1])} = :v0")
                tables = [ref, name]
            else:
                where = " AND ".join(f"{q(c)} = :v{n}" for n, c in enumerate(columns))
                sql, tables = f"SELECT * FROM {q(name)} WHERE {where}", [name]
            title = label if kind == "join" else f"{name} by {label}"
            queries.append(Query(title, sql, kind, name, params, tables))
    return queries, skipped
