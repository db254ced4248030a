"""Facts about column types that more than one analysis needs.

A type change that PostgreSQL makes in the catalog only (no table rewrite, no index rebuild) is one
the lint rules, the lock estimates, the rollback pairing, the code-impact model and the rewrite all
treat differently from one that rewrites the table; the rule lives here, once. The types are the
lower-cased names the SQL parsers give (``varchar(20)``, ``numeric(10,2)``, ``text``).
"""
from __future__ import annotations

import re

_SIZED = re.compile(r"^(varchar|character varying|char|numeric|decimal)\s*(?:\((\d+)(?:\s*,\s*(\d+))?\))?$")
_TEXTISH = {"text", "varchar", "character varying"}


def binary_compatible(old: str, new: str) -> bool:
    """True when PostgreSQL changes ``old`` to ``new`` in the catalog only."""
    old, new = old.lower().strip(), new.lower().strip()
    numeric = old.startswith(("numeric", "decimal"))
    if old == new or (new == "text" and (_SIZED.match(old) or old == "text") and not numeric):
        return True
    o, n = _SIZED.match(old), _SIZED.match(new)
    if not o or not n or o.group(1).startswith("char") != n.group(1).startswith("char"):
        return False
    if o.group(1) in ("numeric", "decimal"):
        return n.group(1) in ("numeric", "decimal") and (n.group(2) is None or (
            o.group(2) is not None and int(n.group(2)) >= int(o.group(2)) and o.group(3) == n.group(3)))
    if o.group(1) in _TEXTISH and n.group(1) in _TEXTISH:
        return n.group(2) is None or (o.group(2) is not None and int(n.group(2)) >= int(o.group(2)))
    return False
