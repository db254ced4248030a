"""Query plans per dialect, summarised to comparable facts, and bounded timings.

How a dialect explains a query and refreshes statistics are facts of the dialect (``explain_prefix``,
``analyze_sql``); its plan rows are read by the summariser of its ``plan_format`` (:data:`SUMMARISERS`). A
plan is reduced to a :class:`PlanFacts`: the planner's total cost where the dialect reports one, and the
access path per table (``full scan``, ``full index scan NAME`` or ``index NAME``), so plans taken before
and after a change can be compared.
"""
from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from dbrunbook.core.db import engine_facts
from dbrunbook.dialects import Dialect
from dbrunbook.stages.data_checks._base import read_only

FULL_SCAN = "full scan"
#: A plan read: the raw plan, the planner's total cost (None where the dialect reports none), access paths per table.
Summary = tuple[Any, float | None, dict[str, list[str]]]


@dataclass
class PlanFacts:
    """One query's plan and timing on one side of the change."""

    ok: bool = True
    error: str = ""
    cost: float | None = None
    access: dict[str, list[str]] = field(default_factory=dict)
    ms: float | None = None
    runs: list[float] = field(default_factory=list)
    timed_out: bool = False
    raw: Any = None

    def path(self) -> str:
        """The access paths as one line: ``users: index pk_users; orders: full scan``."""
        if not self.ok:
            return f"error: {self.error}"
        return "; ".join(f"{t}: {', '.join(p)}" for t, p in sorted(self.access.items())) or "-"

    def indexes(self) -> set[str]:
        """Names of the indexes the plan reads."""
        return {p.split(" ", 1)[1] for paths in self.access.values() for p in paths if p.startswith("index ")}

    def to_json(self, raw: bool = False) -> dict[str, Any]:
        out = {"ok": self.ok, "error": self.error, "cost": self.cost, "access": self.access, "ms": self.ms,
               "runs": self.runs, "timed_out": self.timed_out}
        return {**out, "plan": self.raw} if raw else out


def uses_index(paths: list[str]) -> bool:
    return any(p.startswith("index ") for p in paths)


def _add(access: dict[str, list[str]], table: str, path: str) -> None:
    paths = access.setdefault(table, [])
    if path not in paths:
        paths.append(path)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _pg_facts(rows: list[Any]) -> Summary:
    raw = rows[0][0]
    raw = json.loads(raw) if isinstance(raw, str) else raw
    access: dict[str, list[str]] = {}
    for node in _walk(raw):
        kind, table = node.get("Node Type", ""), node.get("Relation Name")
        if not table:
            continue
        if kind in ("Index Scan", "Index Only Scan"):
            _add(access, table, f"index {node.get('Index Name')}")
        elif kind == "Bitmap Heap Scan":  # the index names sit on its Bitmap Index Scan children
            for name in sorted({n["Index Name"] for n in _walk(node.get("Plans", [])) if "Index Name" in n}):
                _add(access, table, f"index {name}")
        elif kind == "Seq Scan":
            _add(access, table, FULL_SCAN)
        else:
            _add(access, table, kind.lower())
    top = raw[0]["Plan"] if raw and "Plan" in raw[0] else {}
    return raw, top.get("Total Cost"), access


#: MariaDB/MySQL access types that read every row (of the table, or of one whole index).
_MY_FULL = {"ALL": FULL_SCAN, "index": "full index scan"}


def _my_facts(rows: list[Any]) -> Summary:
    raw = json.loads(rows[0][0])
    access: dict[str, list[str]] = {}
    for node in _walk(raw):
        table, kind = node.get("table_name"), node.get("access_type")
        if not table or not kind:
            continue
        if kind in _MY_FULL:
            _add(access, table, f"{_MY_FULL[kind]} {node['key']}".strip() if kind == "index" else FULL_SCAN)
        elif node.get("key"):
            _add(access, table, f"index {node['key']}")
        else:
            _add(access, table, kind)
    block = raw.get("query_block", {})
    cost = block.get("cost", block.get("cost_info", {}).get("query_cost"))  # MariaDB 11 / MySQL; 10.x has none
    return raw, float(cost) if cost is not None else None, access


_SQLITE_STEP = re.compile(r"^(SCAN|SEARCH) (\S+)(?: AS \S+)?(?: USING (.*?))?(?: \(.*\))?$")
_SQLITE_INDEX = re.compile(r"(?:COVERING )?INDEX (\S+)|(INTEGER PRIMARY KEY|PRIMARY KEY)")


def _sqlite_facts(rows: list[Any]) -> Summary:
    raw = [{"id": r[0], "parent": r[1], "detail": r[3]} for r in rows]
    access: dict[str, list[str]] = {}
    for row in raw:
        step = _SQLITE_STEP.match(row["detail"])
        if not step or step.group(2) == "CONSTANT":
            continue
        verb, table, using = step.groups()
        index = _SQLITE_INDEX.search(using or "")
        name = (index.group(1) or index.group(2)) if index else ""
        if verb == "SCAN" or (using or "").startswith("AUTOMATIC"):  # an automatic index is built by a full scan
            _add(access, table, f"full index scan {name}" if name and verb == "SCAN" else FULL_SCAN)
        else:
            _add(access, table, f"index {name}")
    return raw, None, access


#: Reads a plan's rows into (the raw plan, the total cost, the access paths), by the dialect's ``plan_format``.
SUMMARISERS: dict[str, Callable[[list[Any]], Summary]] = {
    "postgresql-json": _pg_facts,
    "mysql-json": _my_facts,
    "sqlite-query-plan": _sqlite_facts,
}


def summarise(found: Dialect, rows: list[Any]) -> Summary:
    """The raw plan, total cost and access paths of the plan rows ``found`` gave."""
    return SUMMARISERS[found.plan_format](rows)


def analyze(engine: sa.Engine, tables: list[str]) -> None:
    """Refresh the planner's statistics of ``tables`` (on a scratch copy), so both sides plan alike."""
    found = engine_facts(engine)
    with engine.connect() as conn:
        q = conn.dialect.identifier_preparer.quote
        for table in tables:
            result = conn.exec_driver_sql(found.analyze_sql.format(table=q(table)))
            if result.returns_rows:
                result.fetchall()
        conn.commit()


def _run(conn: sa.Connection, sql: str, params: dict[str, Any]) -> sa.CursorResult[Any]:
    if params:
        return conn.execute(sa.text(sql), params)
    # A user's query is sent as written: no bind-parameter parsing of its colons or percent signs.
    return conn.execution_options(no_parameters=True).exec_driver_sql(sql)


def _error(exc: DBAPIError) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Bound:
    """Stop a statement after ``seconds`` where the server has no timeout but the driver has a progress hook.

    SQLite calls the hook every few thousand steps of a statement; a true return interrupts it.
    No thread is started, so the bound costs the timing nothing.
    """

    def __init__(self, conn: sa.Connection, seconds: float) -> None:
        raw = conn.connection.dbapi_connection
        self._hook = getattr(raw, "set_progress_handler", None)
        self._seconds = seconds

    def __enter__(self) -> None:
        if self._hook:
            deadline = time.perf_counter() + self._seconds
            self._hook(lambda: time.perf_counter() > deadline, 10_000)

    def __exit__(self, *exc: Any) -> None:
        if self._hook:
            self._hook(None, 0)


def measure(engine: sa.Engine, queries: list[tuple[str, dict[str, Any]]], repeats: int,
            timeout_seconds: float, timed: bool) -> list[PlanFacts]:
    """Plan (and, if ``timed``, time) each query on a read-only connection under a time bound.

    The time is the median of ``repeats`` runs with every row fetched, after one untimed warm-up
    run; a run hitting the bound stops the repeats and marks the query timed out.
    """
    found = engine_facts(engine)
    out = []
    with read_only(engine, int(timeout_seconds * 1000)) as (conn, reopen):
        for sql, params in queries:
            facts = PlanFacts()
            try:
                plan = list(_run(conn, found.explain_prefix + sql, params))
                facts.raw, facts.cost, facts.access = summarise(found, plan)
            except DBAPIError as exc:
                facts.ok, facts.error = False, _error(exc)
                reopen()
                out.append(facts)
                continue
            # One untimed run first: caches and prepared plans warm up the same way on both sides.
            for n in range(repeats + 1 if timed and repeats else 0):
                started = time.perf_counter()
                try:
                    with _Bound(conn, timeout_seconds):
                        result = _run(conn, sql, params)
                        while result.returns_rows and result.fetchmany(1000):
                            pass
                except DBAPIError as exc:
                    # Hitting the bound is a finding about time; any other error is the query's own.
                    if time.perf_counter() - started >= 0.9 * timeout_seconds:
                        facts.timed_out = True
                    else:
                        facts.ok, facts.error = False, _error(exc)
                    reopen()
                    break
                if n:
                    facts.runs.append(round((time.perf_counter() - started) * 1000, 3))
            facts.ms = round(statistics.median(facts.runs), 3) if facts.runs and not facts.timed_out else None
            out.append(facts)
    return out
