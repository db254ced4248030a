"""Canonical text for types and server defaults, per dialect (SQL fragments: see _canonical).

A reflected ``INTEGER(11)`` and a model's ``Integer`` are the same column on MariaDB; a
reflected ``'EUR'::character varying`` and a model's ``server_default="EUR"`` are the same
default on PostgreSQL. These functions map both sides to one string so the diff can use ``==``.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from dbrunbook import dialects

#: Integer display widths carry no meaning (MariaDB reports INTEGER(11) for INTEGER).
_DISPLAY_WIDTH = re.compile(r"^(TINYINT|SMALLINT|MEDIUMINT|INT|INTEGER|BIGINT)\((\d+)\)( UNSIGNED)?")
_QUOTED = re.compile(r"('(?:[^']|'')*')")
_NOISE = re.compile(r"\s+(COLLATE|CHARACTER SET|CHARSET)\s+\S+", re.IGNORECASE)
_CAST = re.compile(r"::[a-z_ ]+(\([\d, ]+\))?(\[\])?", re.IGNORECASE)
#: Boolean literals as the integers MariaDB stores them as, so both spellings compare equal.
_BOOLEAN_DEFAULTS = {"false": "0", "true": "1"}
_NOW = {"now()", "current_timestamp", "current_timestamp()", "localtimestamp", "localtimestamp()"}


def type_text(type_: sa.types.TypeEngine[Any], dialect: Dialect, name: str) -> str:
    """The canonical DDL spelling of ``type_`` on ``dialect`` (``name`` is its dbrunbook name)."""
    key = _cache_key(type_, name)
    if key is None:
        return _type_text(type_, dialect, name)
    cached = _TYPE_CACHE.get(key)
    if cached is None:
        cached = _TYPE_CACHE[key] = _type_text(type_, dialect, name)
    return cached


#: Large schemas repeat a handful of types thousands of times; compiling each once is enough.
_TYPE_CACHE: dict[tuple[Any, ...], str] = {}
_PLAIN = (str, int, float, bool, type(None))


def _cache_key(type_: sa.types.TypeEngine[Any], name: str) -> tuple[Any, ...] | None:
    # A type made only of plain attributes is identified by them (repr() is ten times slower);
    # one holding other objects (an ARRAY's item type, an Enum's lookup) is compiled each time.
    items = []
    for attr, value in vars(type_).items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value):
            value = tuple(value)
        elif not isinstance(value, _PLAIN):
            return None
        items.append((attr, value))
    return (name, type(type_), tuple(sorted(items)))


def _type_text(type_: sa.types.TypeEngine[Any], dialect: Dialect, name: str) -> str:
    try:
        text = type_.compile(dialect=dialect)
    except Exception:  # a type the dialect cannot render (NullType): keep its class name
        text = type(type_).__name__
    # Upper-case the keywords but not quoted literals (ENUM values keep their case).
    text = "".join(part if part.startswith("'") else part.upper() for part in _QUOTED.split(text))
    text = _NOISE.sub("", text).replace(", ", ",").strip()
    width = _DISPLAY_WIDTH.match(text)
    if width and not (width.group(1) == "TINYINT" and width.group(2) == "1"):
        text = width.group(1) + (width.group(3) or "") + text[width.end():]
    # Spellings that mean the same type on this dialect (after upper-casing and display widths removed).
    found = dialects.get(name)
    aliases = found.type_aliases if found else {}
    if text in aliases:
        return aliases[text]
    base, paren, rest = text.partition("(")
    return aliases.get(base, base) + paren + rest


def default_text(raw: Any, dialect: Dialect) -> str | None:
    """A server default as canonical text: casts, outer parentheses and literal quotes removed."""
    if raw is None:
        return None
    if not isinstance(raw, sa.schema.DefaultClause):
        return None  # Identity and Computed are recorded as such, not as defaults
    raw = raw.arg
    if isinstance(raw, str):
        return _canonical_default(raw)  # a model's plain string is the literal value itself
    if isinstance(raw, sa.sql.ClauseElement):
        raw = raw.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    # SQL text (a model's sa.text(), or MetaData reflected from a database, as the schema the revisions leave on a
    # copy is): read as the live side reads the catalog's text, casts included ('0'::smallint is 0).
    return reflected_default(str(raw))


def reflected_default(text: str | None) -> str | None:
    """A reflected server default as canonical text (``None`` for sequence defaults)."""
    if text is None or text.strip().upper() == "NULL":
        return None
    if text.startswith("nextval("):
        return None  # a serial column's sequence: recorded as autoincrement instead
    return _canonical_default(_unquote(_strip(_CAST.sub("", text))))


def _canonical_default(text: str) -> str:
    lowered = text.strip().lower()
    if lowered in _NOW:
        return "CURRENT_TIMESTAMP"
    try:  # MariaDB reports a NUMERIC default 0 as 0.00
        return format(Decimal(lowered).normalize(), "f")
    except (InvalidOperation, ValueError):
        return _BOOLEAN_DEFAULTS.get(lowered, text)


def _strip(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def clause_text(clause: Any, dialect: Dialect) -> str:
    """SQL text of a model's expression or predicate on ``dialect``."""
    if isinstance(clause, str):
        return clause
    return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True, "include_table": False}))
