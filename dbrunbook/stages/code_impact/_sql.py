"""Find watched tables and columns in SQL text with sqlglot: references, INSERT column lists.

Text is parsed in the target's dialect first, then in the others; what no dialect parses is
not SQL to us (a look-alike sentence, a template fragment) and yields nothing. DB-API
placeholders (``%s``, ``%(name)s``) are read as ``?`` first, keeping line breaks, so that
offsets still point at the right line.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType  # type: ignore[attr-defined]

from dbrunbook import dialects
from dbrunbook.dialects import PostgreSQL
from dbrunbook.stages.code_impact._model import Watch

#: Text worth parsing starts like a statement that reads or writes rows.
LOOKS_LIKE_SQL = re.compile(r"^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(?:\(\s*)?"
                            r"(SELECT|INSERT|UPDATE|DELETE|WITH|REPLACE|MERGE"
                            r"|CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?VIEW)\b", re.IGNORECASE | re.DOTALL)
_PYFORMAT = re.compile(r"%\(\w+\)s|%s")


@dataclass
class SqlHit:
    """A watched name in SQL text; ``offset`` is its character position in the text."""

    table: str
    column: str | None
    access: str
    offset: int


@dataclass
class SqlInsert:
    """An INSERT into a watched table, with its column list (None when it has none)."""

    table: str
    columns: list[str] | None
    offset: int


def _reader(dialect: str | None) -> str | None:
    """sqlglot's name for ``dialect`` (None: unknown, read as generic SQL)."""
    found = dialects.get(dialect)
    return found.sqlglot if found else None


def statements(text: str, dialect: str | None) -> Iterator[tuple[int, str]]:
    """(offset, text) of each statement of a SQL script, split on the tokenizer's semicolons."""
    read = _reader(dialect)
    try:
        tokens = sqlglot.Dialect.get_or_raise(read).tokenize(text)
    except SqlglotError:
        yield 0, text
        return
    start = 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            yield start, text[start:token.start]
            start = token.end + 1
    if text[start:].strip():
        yield start, text[start:]


def parse(text: str, dialect: str | None) -> list[exp.Expression] | None:
    """The statements of ``text``, parsed in ``dialect`` or else another; None if none parses it."""
    text = _PYFORMAT.sub(lambda m: "?".ljust(len(m.group(0))), text)  # same length: offsets stay right
    # The target's reading first, then PostgreSQL's (it reads the most), then every other dialect's.
    for read in dict.fromkeys([_reader(dialect), PostgreSQL.sqlglot, *dialects.sqlglot_names()]):
        try:
            trees = sqlglot.parse(text, read=read)
        except SqlglotError:
            continue
        found = [t for t in trees if isinstance(t, exp.Expression)]
        if found and not any(isinstance(t, exp.Command) for t in found):
            return found
    return None


def analyse(text: str, watch: Watch, dialect: str | None) -> tuple[list[SqlHit], list[SqlInsert]] | None:
    """Watched references and INSERTs in ``text``; None if it does not parse as SQL."""
    trees = parse(text, dialect)
    if trees is None:
        return None
    hits: list[SqlHit] = []
    inserts: list[SqlInsert] = []
    for tree in trees:
        _statement(tree, watch, hits, inserts)
    return hits, inserts


def _offset(node: exp.Expression) -> int:
    ident = node.this if isinstance(node.this, exp.Identifier) else node
    return int(ident.meta.get("start", 0)) if isinstance(ident, exp.Expression) else 0


def _quoted(node: exp.Expression) -> bool:
    ident = node.this if isinstance(node, (exp.Column, exp.Table)) else node
    return bool(isinstance(ident, exp.Identifier) and ident.quoted)


def _statement(tree: exp.Expression, watch: Watch, hits: list[SqlHit], inserts: list[SqlInsert]) -> None:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    aliases: dict[str, str | None] = {}  # alias or name (lower case) -> watched table or None
    in_statement: list[str | None] = []
    for t in tree.find_all(exp.Table):
        if t.name.lower() in ctes and not t.db:
            continue
        watched = watch.table(t.name, _quoted(t))
        in_statement.append(watched)
        aliases[t.alias_or_name.lower()] = watched
        aliases.setdefault(t.name.lower(), watched)
        if watched in watch.dropped_tables or watched in watch.renamed_tables:
            hits.append(SqlHit(watched, None, "table", _offset(t)))
    for ins in tree.find_all(exp.Insert):
        _insert(ins, watch, hits, inserts)
    select_aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    for col in tree.find_all(exp.Column):
        if isinstance(col.this, exp.Star) or not col.name:
            continue
        quoted = _quoted(col)
        if col.table:
            candidates = [aliases.get(col.table.lower())]
        elif col.name.lower() in select_aliases and not quoted:
            continue  # ORDER BY total reads the output column, not a table's
        else:
            candidates = list(dict.fromkeys(in_statement))
        access = "write" if isinstance(col.parent, exp.EQ) and isinstance(col.parent.parent, exp.Update) \
            and col.parent.this is col else "read"
        for table in candidates:
            column = watch.column(table, col.name, quoted) if table else None
            if table and column:
                hits.append(SqlHit(table, column, access, _offset(col)))


def _insert(ins: exp.Insert, watch: Watch, hits: list[SqlHit], inserts: list[SqlInsert]) -> None:
    target = ins.this
    table_node = target.this if isinstance(target, exp.Schema) else target
    if not isinstance(table_node, exp.Table):
        return
    table = watch.table(table_node.name, _quoted(table_node))
    if table is None:
        return
    columns: list[str] | None = None
    if isinstance(target, exp.Schema):
        idents = [i for i in target.expressions if isinstance(i, (exp.Identifier, exp.Column))]
        columns = [i.name for i in idents]
        for ident in idents:
            column = watch.column(table, ident.name, _quoted(ident))
            if column:
                hits.append(SqlHit(table, column, "write", int(ident.meta.get("start", 0))
                                   if isinstance(ident, exp.Identifier) else _offset(ident)))
    inserts.append(SqlInsert(table, columns, _offset(table_node)))
