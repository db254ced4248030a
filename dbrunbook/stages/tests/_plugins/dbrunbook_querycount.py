"""pytest plugin: count each test's SQL statements by shape, for dbrunbook's N+1 check.

dbrunbook's stage 07 loads this module into the user's own pytest run (``-p dbrunbook_querycount``
with this folder on ``PYTHONPATH``), so it depends only on pytest and SQLAlchemy: the user's test
environment may not have dbrunbook installed. It does nothing unless ``DBRUNBOOK_QUERY_LOG`` names a
file. Then a class-level ``before_cursor_execute`` listener on :class:`sqlalchemy.engine.Engine`
sees every statement of every engine the application creates, and after each test one JSON line is
appended to the file::

    {"test": "tests/test_x.py::test_y", "statements": 23, "shapes": {"SELECT ... WHERE id = ?": 20}}

``statements`` counts every statement of the test (its fixtures' set-up and tear-down included);
``shapes`` keeps only the shapes that ran at least twice, to keep the file small. The plugin never
prints and never fails a test: any error of its own is swallowed.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Generator
from typing import Any

import pytest

#: The environment variable naming the log file; unset means the plugin stays inactive.
LOG_ENV = "DBRUNBOOK_QUERY_LOG"
#: Characters of a shape kept in the log: enough to recognise the statement.
SHAPE_CHARS = 1000

#: Normalisation, in order: literals and placeholders become ``?``, IN-lists of them one ``?``,
#: repeated VALUES rows one row, whitespace one space. Statements that differ only in their values
#: then share a shape.
_NORMALISE = (
    (re.compile(r"'(?:[^']|'')*'"), "?"),  # string literals, '' escapes included
    (re.compile(r"%\(\w+\)s|%s|(?<![:\w]):\w+|\$\d+"), "?"),  # pyformat, format, named, numeric params
    (re.compile(r"(?<![\w.\"`])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b"), "?"),  # numbers, not in names
    (re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)"), "(?)"),  # (?, ?, ?) lists: IN and VALUES rows
    (re.compile(r"\(\?\)(?:\s*,\s*\(\?\))+"), "(?)"),  # VALUES (?), (?), ... of multi-row inserts
    (re.compile(r"\s+"), " "),
)

_counts: Counter[str] = Counter()
_log: str = ""


def shape(statement: str) -> str:
    """The statement with its values, placeholders and IN-lists normalised and whitespace collapsed."""
    for pattern, replacement in _NORMALISE:
        statement = pattern.sub(replacement, statement)
    return statement.strip()[:SHAPE_CHARS]


def _count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    try:
        _counts[shape(statement)] += 1
    except Exception:  # noqa: BLE001 - counting must never break the application
        pass


def pytest_configure(config: pytest.Config) -> None:
    """Listen on every Engine when the log variable is set (and SQLAlchemy is importable)."""
    global _log
    path = os.environ.get(LOG_ENV, "")
    if not path:
        return
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", _count)
        _log = path
    except Exception:  # noqa: BLE001 - no SQLAlchemy: nothing to count
        _log = ""


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop listening."""
    global _log
    if not _log:
        return
    _log = ""
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.remove(Engine, "before_cursor_execute", _count)
    except Exception:  # noqa: BLE001
        pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, None]:
    """Count the statements of one test (set-up, call and tear-down), then append its line."""
    _counts.clear()
    yield
    if not _log:
        return
    try:
        line = {"test": item.nodeid, "statements": sum(_counts.values()),
                "shapes": {s: n for s, n in _counts.most_common() if n >= 2}}
        # One write per line in append mode: parallel workers (xdist) do not interleave lines.
        with open(_log, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")
    except Exception:  # noqa: BLE001 - the user's tests must not fail because of the log
        pass
    finally:
        _counts.clear()
