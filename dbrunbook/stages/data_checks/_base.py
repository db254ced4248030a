"""What every data check shares: its result, the read-only session, and bounded probes.

A check module registers one ``check(ctx)`` on :data:`registry` with :func:`rule`; it picks the diffs it is
about from ``ctx.diffs`` and yields :class:`CheckResult` objects, mostly through
:meth:`CheckContext.rows` (count and sample the rows matching a predicate). Every query runs
on one read-only connection with the dialect's statement timeout; the connection is thrown
away afterwards so no session setting leaks into the pool.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dbrunbook.core.db import engine_facts
from dbrunbook.core.results import Finding
from dbrunbook.core.rules import Registry, Rule
from dbrunbook.stages.data_checks._dialect import BLOCKING, KEEPS, Dialect
from dbrunbook.stages.data_checks._diff import Diff

registry = Registry("checks", "dbrunbook.stages.data_checks")

#: Rows a check is about: a SQLAlchemy condition, or the text of a CHECK constraint.
Where = sa.ColumnElement[bool] | sa.TextClause

#: Effect of a check that could not run (timeout, error): reported, never silently passed.
UNKNOWN = "unknown"


@dataclass
class CheckResult:
    """What one check found: how many rows, a sample of them, and what to do about it."""

    code: str
    name: str
    table: str
    columns: list[str]
    problem: str
    count: int
    effect: str
    message: str
    sample: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    evidence: dict[str, Any] = field(default_factory=dict)
    remedies: dict[str, str] = field(default_factory=dict)
    query: str = ""

    @property
    def severity(self) -> str:
        if self.effect == UNKNOWN:
            return "warn"
        if not self.count:
            return "info"
        return "block" if self.effect in BLOCKING else "warn" if self.effect == KEEPS else "info"

    @property
    def object(self) -> str:
        return f"{self.table}.{','.join(self.columns)}" if self.columns else self.table

    def finding(self) -> Finding:
        """This result as a stage finding, with the sample and the remedies as evidence and fix."""
        evidence = {"count": self.count, "problem": self.problem, "effect": self.effect, **self.evidence,
                    "sample": _records(self.sample), "query": self.query}
        fix = "\n\n".join(f"-- {name}\n{sql}" for name, sql in self.remedies.items())
        return Finding(self.code, self.severity, self.message, self.object, evidence, fix)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "table": self.table, "columns": self.columns,
                "problem": self.problem, "count": self.count, "effect": self.effect,
                "severity": self.severity, "message": self.message, "evidence": self.evidence,
                "sample": _records(self.sample), "remedies": self.remedies, "query": self.query}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if pd.isna(v) else v if isinstance(v, (int, float, str, bool)) else str(v))
             for k, v in row.items()} for row in frame.to_dict("records")]


@dataclass
class CheckContext:
    """One read-only session on the target, the diffs to check, and the probe helpers."""

    conn: Connection
    dialect: Dialect
    live: sa.MetaData
    target: sa.MetaData
    diffs: list[Diff]
    sample: int = 10
    rule: Rule | None = None
    reopen: Any = None

    def of(self, *ops: str) -> Iterator[Diff]:
        """The diffs whose operation is one of ``ops``."""
        return (d for d in self.diffs if d[0] in ops)

    def table(self, name: str) -> sa.Table | None:
        """The live table ``name`` as reflected (None if it does not exist yet)."""
        return self.live.tables.get(name)

    def key(self, table: sa.Table) -> list[sa.Column[Any]]:
        """The live primary key columns, which identify sample rows."""
        return list(table.primary_key.columns)

    def sql(self, statement: sa.ClauseElement) -> str:
        """``statement`` as this dialect's SQL with values inlined, for people to read."""
        return str(statement.compile(dialect=self.conn.dialect, compile_kwargs={"literal_binds": True}))

    def quote(self, name: str) -> str:
        return self.conn.dialect.identifier_preparer.quote(name)

    def frame(self, statement: sa.Select[Any]) -> pd.DataFrame:
        result = self.conn.execute(statement)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def scalar(self, statement: sa.Select[Any]) -> Any:
        return self.conn.execute(statement).scalar()

    def quarantine(self, table: sa.Table, where: Where) -> str:
        """SQL moving the matching rows of ``table`` to ``<table>_quarantine``."""
        copy = sa.CreateTableAs(sa.select(table).where(where), f"{table.name}_quarantine")
        return f"{self.sql(copy)};\n{self.sql(sa.delete(table).where(where))};"

    def result(self, table: str, columns: Sequence[str], problem: str, count: int, message: str,
               **kwargs: Any) -> CheckResult:
        """A result of the current rule, with the dialect's outcome for ``problem``."""
        assert self.rule is not None
        outcome = self.dialect.outcome(problem)
        text = f"{message}; {outcome.words}" if count else message
        return CheckResult(self.rule.code, self.rule.name, table, list(columns), problem, count,
                           outcome.effect, text, **kwargs)

    def rows(self, table: sa.Table, columns: Sequence[sa.Column[Any]], problem: str,
             where: Where, what: str, fix: sa.ColumnElement[Any] | None = None,
             migration: str = "") -> CheckResult:
        """Count and sample the rows of ``table`` matching ``where``; offer the remedies."""
        count_query = sa.select(sa.func.count()).select_from(table).where(where)
        shown = [*self.key(table), *[c for c in columns if c not in self.key(table)]]
        sample_query = sa.select(*shown).where(where).order_by(*(self.key(table) or shown)).limit(self.sample)
        count = int(self.scalar(count_query) or 0)
        sample = self.frame(sample_query) if count else pd.DataFrame(columns=[c.name for c in shown])
        remedies: dict[str, str] = {}
        if count and fix is not None:
            remedies["fix values by an expression (edit it first)"] = \
                self.sql(sa.update(table).where(where).values({columns[0].name: fix})) + ";"
        if count:
            remedies["move the rows to a quarantine table"] = self.quarantine(table, where)
        if count and migration:
            remedies["change the migration"] = migration
        names = [c.name for c in columns]
        return self.result(table.name, names, problem, count, f"{count} rows of {table.name} {what}",
                           sample=sample, remedies=remedies, query=self.sql(count_query))


def unused_alias(table: sa.Table, *outer: sa.Table) -> sa.FromClause:
    """An alias of ``table`` whose name none of the ``outer`` tables of the query has."""
    taken = {t.name for t in outer}
    name = f"dbrunbook_{table.name}"
    while name in taken:
        name += "_"
    return table.alias(name)


def failed(ctx: CheckContext, table: str, error: Exception) -> CheckResult:
    """The result of a check whose query failed or timed out (or that could not be built): reported, never passed."""
    assert ctx.rule is not None
    text = str(getattr(error, "orig", None) or error).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
    return CheckResult(ctx.rule.code, ctx.rule.name, table, [], "error", -1, UNKNOWN,
                       f"check could not run on {table}: {reason}")


def _setup(conn: Connection, engine: Engine, timeout_ms: int) -> None:
    dialect = engine_facts(engine)
    conn.exec_driver_sql(dialect.read_only_transaction_sql)
    timeout = dialect.statement_timeout(timeout_ms) if timeout_ms else None
    if timeout:
        conn.exec_driver_sql(timeout)


@contextlib.contextmanager
def read_only(engine: Engine, timeout_ms: int = 60_000) -> Iterator[tuple[Connection, Any]]:
    """A read-only connection with a statement timeout, and a function that restores it after an error."""
    conn = engine.connect()

    def reopen() -> None:
        conn.rollback()
        _setup(conn, engine, timeout_ms)

    try:
        _setup(conn, engine, timeout_ms)
        yield conn, reopen
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()
        conn.invalidate()  # the session settings must not reach the next user of the pool
        conn.close()


CheckFn = Callable[["CheckContext"], Iterator[CheckResult]]


def rule(code: str, name: str, severity: str, *, safe: str) -> Callable[[CheckFn], CheckFn]:
    """Register a data check on :data:`registry` (whose rules yield results, not findings)."""
    register = registry.rule(code, name, severity, safe=safe)

    def wrap(check: CheckFn) -> CheckFn:
        register(cast(Any, check))
        return check

    return wrap


def run_rule(found: Rule, ctx: CheckContext) -> list[CheckResult]:
    """The results of one registered data check."""
    return list(cast(Iterator[CheckResult], found.check(ctx)))
