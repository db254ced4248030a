"""Canonical SQL text for CHECK constraints, index elements and partial-index predicates, by parsing.

A database hands back what it stored in its own words: PostgreSQL's ``pg_get_constraintdef``
turns ``status IN ('a', 'b')`` into ``(status)::text = ANY (ARRAY['a'::character varying, ...])``,
MariaDB quotes every identifier. Both sides of a comparison are parsed (pglast for PostgreSQL,
sqlglot for the others), rewritten to one form (``= ANY (ARRAY[..])`` as ``IN (..)``, casts of
literals and text casts of columns dropped, outer parentheses gone) and printed again, so the
text is readable *and* equal when the meaning is. Text that does not parse is compared with its
whitespace normalised; nothing here raises.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlglot
from sqlglot import exp

from dbrunbook import dialects

#: PostgreSQL types whose casts of a column compare like the column itself (varchar to text).
_TEXT_TYPES = {"text", "varchar", "bpchar", "char", "character varying", "name"}


def _spaces(text: str) -> str:
    return " ".join(text.split())


def canonical_sql(text: str | None, dialect: str) -> str | None:
    """``text`` (a CHECK or WHERE expression) in the canonical form of ``dialect``; never raises."""
    if text is None:
        return None
    return _canonical(str(text), dialect)


@functools.lru_cache(maxsize=4096)
def _canonical(text: str, dialect: str) -> str:
    try:
        if _reader(dialect) == "pglast":
            found = _pg_expression(text)
            if found is not None:
                return found
        return _glot_expression(text, dialect)
    except Exception:  # a parser bug must not stop a snapshot: compare the text instead
        return _spaces(text)


def index_element(text: str, dialect: str) -> str:
    """An index element (``version_major DESC``, ``lower(name)``) in canonical form; never raises."""
    return _element(str(text), dialect)


def sorted_element(base: str, sorting: Sequence[str], dialect: str, column: bool) -> str:
    """A reflected element: column name (``column``) or expression ``base`` with its ``column_sorting`` flags."""
    text = base if column else canonical_sql(base, dialect) or base
    desc = "desc" in sorting
    nulls_first = True if "nulls_first" in sorting else False if "nulls_last" in sorting else None
    return _suffix(text, desc, nulls_first, dialect)


def _reader(dialect: str) -> str:
    found = dialects.get(dialect)
    return found.sql_reader if found else "sqlglot"


def _sqlglot(dialect: str) -> str:
    found = dialects.get(dialect)
    return found.sqlglot if found else dialect


def _suffix(base: str, desc: bool, nulls_first: bool | None, dialect: str) -> str:
    found = dialects.get(dialect)
    default_first = not desc if found and found.nulls_sort_first else desc
    text = base + (" DESC" if desc else "")
    if nulls_first is not None and nulls_first != default_first:
        text += " NULLS FIRST" if nulls_first else " NULLS LAST"
    return text


@functools.lru_cache(maxsize=4096)
def _element(text: str, dialect: str) -> str:
    try:
        if _reader(dialect) == "pglast":
            found = _pg_element(text, dialect)
            if found is not None:
                return found
        return _glot_element(text, dialect)
    except Exception:  # see _canonical
        return _spaces(text)


# -- PostgreSQL: pglast ---------------------------------------------------------------------

def _pg_expression(text: str) -> str | None:
    try:
        from pglast import ast, parse_sql
    except ImportError:  # pglast is optional: sqlglot reads PostgreSQL too, less faithfully
        return None
    try:
        statement = parse_sql(f"SELECT {text}")[0].stmt
    except Exception:  # pglast.parser.ParseError and friends
        return None
    targets = statement.targetList if isinstance(statement, ast.SelectStmt) else None
    if not targets or len(targets) != 1:
        return None
    return _pg_print(targets[0].val)


def _pg_element(text: str, dialect: str) -> str | None:
    try:
        from pglast import ast, enums, parse_sql
    except ImportError:
        return None
    try:
        statement = parse_sql(f"CREATE INDEX dbrunbook_ix ON dbrunbook_t ({text})")[0].stmt
    except Exception:
        return None
    params = statement.indexParams if isinstance(statement, ast.IndexStmt) else None
    if not params or len(params) != 1:
        return None
    elem = params[0]
    base = elem.name if elem.name else _pg_print(elem.expr)
    nulls = {enums.SortByNulls.SORTBY_NULLS_FIRST: True, enums.SortByNulls.SORTBY_NULLS_LAST: False}
    desc = elem.ordering == enums.SortByDir.SORTBY_DESC
    return _suffix(base, desc, nulls.get(elem.nulls_ordering), dialect)


def _pg_print(node: Any) -> str:
    from pglast import ast
    from pglast.stream import RawStream

    node = _pg_rewrite(node)
    fields = node.fields if isinstance(node, ast.ColumnRef) else None
    if fields and len(fields) == 1 and isinstance(fields[0], ast.String):
        return str(fields[0].sval)  # a bare column: its name, as the models side writes it
    return str(RawStream()(node))


def _pg_rewrite(node: Any) -> Any:
    """Rewrite the tree bottom-up into the canonical form."""
    from pglast import ast

    if isinstance(node, tuple):
        return tuple(_pg_rewrite(n) for n in node)
    if not isinstance(node, ast.Node):
        return node
    for attr in getattr(node, "__slots__", ()):
        value = getattr(node, attr, None)
        if isinstance(value, (ast.Node, tuple)):
            setattr(node, attr, _pg_rewrite(value))
    if isinstance(node, ast.TypeCast):
        return _pg_uncast(node)
    if isinstance(node, ast.A_Expr):
        return _pg_in_list(node)
    return node


def _pg_uncast(node: Any) -> Any:
    from pglast import ast

    names = [n.sval for n in node.typeName.names if isinstance(n, ast.String) and n.sval != "pg_catalog"]
    # Literals and arrays of them carry the cast PostgreSQL adds on its own; a column cast to
    # text is what PostgreSQL writes for a varchar compared with text.
    if isinstance(node.arg, (ast.A_Const, ast.A_ArrayExpr, ast.TypeCast)):
        return node.arg
    if isinstance(node.arg, ast.ColumnRef) and names and names[-1] in _TEXT_TYPES and not node.typeName.arrayBounds:
        return node.arg
    return node


def _pg_in_list(node: Any) -> Any:
    from pglast import ast, enums

    kind, op = node.kind, node.name[-1].sval if node.name else ""
    if kind in (enums.A_Expr_Kind.AEXPR_LIKE, enums.A_Expr_Kind.AEXPR_ILIKE):
        # pg_get_constraintdef writes LIKE as the operator ~~ (ILIKE as ~~*).
        return ast.A_Expr(kind=enums.A_Expr_Kind.AEXPR_OP, name=node.name, lexpr=node.lexpr, rexpr=node.rexpr)
    any_eq = kind == enums.A_Expr_Kind.AEXPR_OP_ANY and op == "="
    all_ne = kind == enums.A_Expr_Kind.AEXPR_OP_ALL and op == "<>"
    if (any_eq or all_ne) and isinstance(node.rexpr, ast.A_ArrayExpr) and node.rexpr.elements:
        return ast.A_Expr(kind=enums.A_Expr_Kind.AEXPR_IN, name=node.name, lexpr=node.lexpr,
                          rexpr=node.rexpr.elements)
    return node


# -- the others: sqlglot ----------------------------------------------------------------------

def _glot_expression(text: str, dialect: str) -> str:
    read = _sqlglot(dialect)
    try:
        tree = sqlglot.parse_one(text, read=read)
    except sqlglot.errors.SqlglotError:
        return _spaces(text)
    return _glot_print(tree, read)


def _glot_element(text: str, dialect: str) -> str:
    read = _sqlglot(dialect)
    try:
        tree = sqlglot.parse_one(f"SELECT 1 FROM dbrunbook_t ORDER BY {text}", read=read)
    except sqlglot.errors.SqlglotError:
        return _spaces(text)
    order = tree.args.get("order")
    if not isinstance(order, exp.Order) or len(order.expressions) != 1:
        return _spaces(text)
    ordered = order.expressions[0]
    if not isinstance(ordered, exp.Ordered):
        return _spaces(text)
    desc = bool(ordered.args.get("desc"))
    nulls_first = ordered.args.get("nulls_first")
    # sqlglot fills in the dialect's default when the text names none: only a difference shows.
    return _suffix(_glot_print(ordered.this, read), desc, bool(nulls_first) if nulls_first is not None else None,
                   dialect)


def _glot_print(tree: Any, read: str) -> str:
    tree = tree.transform(_glot_rewrite)
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.Column) and not tree.table:
        return str(tree.name)
    return str(tree.sql(dialect=read))


def _glot_rewrite(node: Any) -> Any:
    if isinstance(node, exp.Identifier) and node.quoted:
        # Identifiers of SQLite and MariaDB compare without regard to case or quotes.
        return exp.Identifier(this=node.name, quoted=not node.name.replace("_", "a").isalnum())
    if isinstance(node, exp.Cast) and isinstance(node.this, (exp.Literal, exp.Null)):
        return node.this
    if isinstance(node, exp.Paren) and isinstance(node.this, (exp.Column, exp.Literal, exp.Paren)):
        return node.this
    if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any) \
            and isinstance(node.expression.this, exp.Array):
        return exp.In(this=node.this, expressions=list(node.expression.this.expressions))
    return node
