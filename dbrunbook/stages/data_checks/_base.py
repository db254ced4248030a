"""What every data check shares: its result, the read-only session, and bounded probes.

A check module registers one ``check(ctx)`` on :data:`registry` with :func:`rule`; it picks the diffs it is
about from ``ctx.diffs`` and yields :class:`CheckResult` objects, mostly through
:meth:`CheckContext.rows` (count and sample the rows matching a predicate). Every query runs
on one read-only connection with the dialect's statement timeout; the connection is thrown
away afterwards so no session setting leaks into the pool.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

from dbrunbook.core.db import engine_facts
from dbrunbook.core.results import Finding
from dbrunbook.core.rules import Registry, Rule
from dbrunbook.stages.data_checks._dialect import BLOCKING, KEEPS, Dialect, Outcome
from dbrunbook.stages.data_checks._diff import Diff

registry = Registry("checks", "dbrunbook.stages.data_checks")

#: Rows a check is about: a SQLAlchemy condition, or the text of a CHECK constraint.
Where = sa.ColumnElement[bool] | sa.TextClause

#: Effect of a check that could not run (timeout, error): reported, never silently passed.
UNKNOWN = "unknown"

#: Languages a remedy is written in: SQL to run by hand, or Python (Alembic operations) for the migration.
SQL, PYTHON = "sql", "python"
#: A value to edit before the remedy runs; it is not valid SQL for most types, so an unedited remedy fails.
PLACEHOLDER: sa.ColumnElement[Any] = sa.literal_column("'<value>'")


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
    #: The language of each remedy that is not SQL (:data:`PYTHON`: Alembic operations for the migration).
    languages: dict[str, str] = field(default_factory=dict)
    #: The database refuses the statement whatever the rows hold, so the result counts even with no row (an
    #: ALTER ... TYPE with no cast fails on an empty table too).
    refused: bool = False

    def remedy(self, name: str, text: str, language: str = SQL) -> None:
        """Offer ``text`` as the remedy ``name``, written in ``language``."""
        self.remedies[name] = text
        if language != SQL:
            self.languages[name] = language

    def language(self, name: str) -> str:
        """The language of the remedy ``name``, to highlight it."""
        return self.languages.get(name, SQL)

    @property
    def severity(self) -> str:
        if self.effect == UNKNOWN:
            return "warn"
        if not self.count and not self.refused:
            return "info"
        return "block" if self.effect in BLOCKING else "warn" if self.effect == KEEPS else "info"

    @property
    def object(self) -> str:
        return f"{self.table}.{','.join(self.columns)}" if self.columns else self.table

    def finding(self) -> Finding:
        """This result as a stage finding, with the sample and the remedies as evidence and fix."""
        evidence = {"count": self.count, "problem": self.problem, "effect": self.effect, **self.evidence,
                    "sample": _records(self.sample), "query": self.query,
                    "remedies": [{"name": name, "language": self.language(name), "code": code}
                                 for name, code in self.remedies.items()]}
        # Each remedy headed by a comment of its own language, so the text reads right in either.
        fix = "\n\n".join(f"{'#' if self.language(name) == PYTHON else '--'} {name}\n{code}"
                           for name, code in self.remedies.items())
        return Finding(self.code, self.severity, self.message, self.object, evidence, fix)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "table": self.table, "columns": self.columns,
                "problem": self.problem, "count": self.count, "effect": self.effect,
                "severity": self.severity, "message": self.message, "evidence": self.evidence,
                "sample": _records(self.sample), "remedies": self.remedies,
                "remedy_languages": {name: self.language(name) for name in self.remedies}, "query": self.query,
                "refused": self.refused}


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
    #: "table.column" -> the USING expression the migration's own ALTER ... TYPE converts the column with.
    converted: dict[str, str] = field(default_factory=dict)

    def of(self, *ops: str) -> Iterator[Diff]:
        """The diffs whose operation is one of ``ops``."""
        return (d for d in self.diffs if d[0] in ops)

    def table(self, name: str) -> sa.Table | None:
        """The live table ``name`` as reflected (None if it does not exist yet)."""
        return self.live.tables.get(name)

    def key(self, table: sa.Table) -> list[sa.Column[Any]]:
        """The live primary key columns, which identify sample rows."""
        return list(table.primary_key.columns)

    @property
    def doubles_percent(self) -> bool:
        """Whether SQLAlchemy writes each ``%`` twice for this connection's driver (``format`` / ``pyformat``)."""
        return self.conn.dialect.paramstyle in ("format", "pyformat")

    def sql(self, statement: sa.ClauseElement) -> str:
        """``statement`` as this dialect's SQL with values inlined, for people to read and run in the database's
        own client, and for ``sa.text`` (which doubles each ``%`` again): each ``%`` once, as written."""
        text = str(statement.compile(dialect=self.conn.dialect, compile_kwargs={"literal_binds": True}))
        if self.doubles_percent:  # the compiler's doubling is for the driver, not for people
            text = text.replace("%%", "%")
        return "\n".join(line.rstrip() for line in text.splitlines())

    def quote(self, name: str) -> str:
        return self.conn.dialect.identifier_preparer.quote(name)

    def frame(self, statement: sa.Select[Any]) -> pd.DataFrame:
        result = self.conn.execute(statement)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def scalar(self, statement: sa.Select[Any]) -> Any:
        return self.conn.execute(statement).scalar()

    def quarantine(self, table: sa.Table, where: Where, what: str) -> str | None:
        """SQL copying the rows of ``table`` matching ``where`` to a quarantine table, then deleting exactly those.

        The DELETE goes by the primary key of the copied rows (a row changed in between is not deleted uncopied),
        else by the same predicate. None when ``where`` matches every row: that is no quarantine.
        """
        if isinstance(where, sa.sql.elements.True_):
            return None
        name = self.quarantine_table(table, what)
        copy = sa.CreateTableAs(sa.select(table).where(where), name)
        key = self.key(table)
        kept = sa.table(name, *(sa.column(c.name) for c in key))
        gone = sa.exists().where(*(kept.c[c.name] == c for c in key)) if key else where
        return f"{self.sql(copy)};\n{self.sql(sa.delete(table).where(gone))};"

    def quarantine_table(self, table: sa.Table, what: str) -> str:
        """``<table>_<what>_quarantine`` (``what``: the column and the problem, so that two remedies on one table
        do not clash), cut to the dialect's longest identifier."""
        suffix = f"_{what}_quarantine"
        return table.name[:self.dialect.facts.max_identifier_length - len(suffix)] + suffix

    def ddl(self, build: Callable[[Operations], None]) -> str:
        """The SQL of the Alembic operations ``build`` makes, rendered offline for this dialect (nothing runs)."""
        out = io.StringIO()
        context = MigrationContext.configure(dialect=self.conn.dialect,
                                             opts={"as_sql": True, "output_buffer": out, "literal_binds": True})
        build(Operations(context))
        return "\n".join(line.rstrip() for line in out.getvalue().splitlines() if line.strip())

    def result(self, table: str, columns: Sequence[str], problem: str, count: int, message: str,
               outcome: Outcome | None = None, **kwargs: Any) -> CheckResult:
        """A result of the current rule, with the dialect's outcome for ``problem`` (unless ``outcome`` is given)."""
        assert self.rule is not None
        outcome = outcome or self.dialect.outcome(problem)
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
        names = [c.name for c in columns]
        result = self.result(table.name, names, problem, count, f"{count} rows of {table.name} {what}",
                             sample=sample, query=self.sql(count_query))
        if count:
            self.remedies(result, table, columns, problem, where, fix, migration)
        return result

    def remedies(self, result: CheckResult, table: sa.Table, columns: Sequence[sa.Column[Any]], problem: str,
                 where: Where, fix: sa.ColumnElement[Any] | None = None, migration: str = "") -> None:
        """Offer the remedies that touch only the offending rows (``where``): fix their values (of the first of
        ``columns``), or quarantine them; and ``migration``, Alembic operations (Python) for the migration."""
        if fix is not None and columns:
            result.remedy("fix the values of these rows (edit the expression first)",
                          self.sql(sa.update(table).where(where).values({columns[0].name: fix})) + ";")
        moved = self.quarantine(table, where, "_".join([*[c.name for c in columns[:1]], problem]))
        if moved:
            result.remedy("move these rows to a quarantine table", moved)
        if migration:
            result.remedy("change the migration", migration, PYTHON)


def type_code(type_: Any) -> str:
    """A SQLAlchemy type as a migration writes it (``sa.String(length=13)``), for the Python remedies."""
    try:
        generic = type_.as_generic()
    except NotImplementedError:  # a type of one dialect only: shown as it is
        generic = type_
    return f"sa.{generic!r}"


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
