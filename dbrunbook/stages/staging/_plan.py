"""Stage 9's growth plan: per table, how many replays and how each column is replayed; and its INSERT.

:func:`growth_plan` reads a copy (one profile pass per table, parents first) and returns a
:class:`TableGrowth` per table; :func:`insert_statement` turns one into the ``INSERT ... SELECT``
that replays the table's rows. The rules per column come from :mod:`._volume_values`; here they
are tied together: a foreign key follows its parent's rule, and a table whose key takes no fresh
value, or that cannot be profiled, gets a ``problem`` and no replays (its children then keep
their references as they are).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from dbrunbook.core.db import dialect_name
from dbrunbook.errors import UsageError
from dbrunbook.stages.staging._values import FRESH, ColumnRule, choose_rules, fresh_value, profile_query, unique_sets

if TYPE_CHECKING:
    from dbrunbook.stages.staging import Scale

#: Most replays of a table one statement makes (the rounds are a UNION ALL of constants).
MAX_ROUNDS = 1000
_SKIP = ("alembic_version",)


@dataclass
class TableGrowth:
    """The growth of one table: rows now, rows wanted, and how each column is replayed."""

    table: str
    rows: int
    target: int
    full_rounds: int = 0
    partial_rows: int = 0
    threshold: Any = None
    columns: dict[str, ColumnRule] = field(default_factory=dict)
    dialect: str = ""
    #: Why the table does not grow (or grows less than asked); empty when all is well.
    problem: str = ""

    @property
    def rounds(self) -> int:
        return self.full_rounds + (1 if self.partial_rows else 0)

    def stop(self, problem: str) -> None:
        """Leave the table as it is (its children then copy their keys instead of following)."""
        self.problem, self.full_rounds, self.partial_rows = problem, 0, 0


@dataclass
class Growth:
    """What :func:`dbrunbook.stages.staging.grow_report` did: rows per table after, and the tables left as they were.

    ``skipped`` says why each was left.
    """

    rows: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)


def _threshold(conn: sa.Connection, table: sa.Table, partial: int) -> Any:
    """The key value of the ``partial``-th row in key order: rows up to it make the partial round."""
    if partial == 0 or len(table.primary_key.columns) != 1:
        return None
    key = next(iter(table.primary_key.columns))
    return conn.execute(sa.select(key).order_by(key).offset(partial - 1).limit(1)).scalar()


def _varies(plans: dict[str, TableGrowth], table: str, column: str, rounds: int) -> bool:
    """Whether ``table.column`` gets a fresh value in every one of ``rounds`` replays."""
    plan = plans.get(table)
    rule = plan.columns.get(column) if plan else None
    if plan is None or rule is None or plan.full_rounds < rounds:
        return False
    if rule.rule == "parent" and rule.parent:
        return _varies(plans, *rule.parent, rounds)
    return rule.rule in FRESH


def _plan_table(conn: sa.Connection, table: sa.Table, scale: Scale, plans: dict[str, TableGrowth],
                dialect: str) -> TableGrowth:
    profile = dict(conn.execute(profile_query(table, dialect)).mappings().one())
    rows = int(profile["rows"])
    plan = TableGrowth(table.name, rows, scale.target_rows(table.name, rows) if rows else 0, dialect=dialect)
    if rows:
        plan.full_rounds = plan.target // rows - 1
        plan.partial_rows = plan.target - rows * (plan.full_rounds + 1)
        if plan.partial_rows and len(table.primary_key.columns) != 1:
            plan.full_rounds, plan.partial_rows = plan.full_rounds + 1, 0  # no order to cut by: round up
        if plan.rounds > MAX_ROUNDS:
            plan.full_rounds, plan.partial_rows = MAX_ROUNDS, 0
            plan.problem = (f"grown to {rows * (MAX_ROUNDS + 1)} rows, not {plan.target}: more than {MAX_ROUNDS} "
                            f"replays of its {rows} rows")
        plan.threshold = _threshold(conn, table, plan.partial_rows)
    following = {col.name for fk in table.foreign_key_constraints
                 for col, element in zip(fk.columns, fk.elements, strict=True)
                 if _varies(plans, fk.referred_table.name, element.column.name, plan.rounds)}
    plan.columns, problem = choose_rules(table, profile, dialect, unique_sets(table), following)
    if problem and plan.rounds:
        plan.stop(problem)
    for fk in table.foreign_key_constraints:
        parent = plans.get(fk.referred_table.name)
        for col, element in zip(fk.columns, fk.elements, strict=True):
            if parent and element.column.name in parent.columns:
                plan.columns[col.name] = ColumnRule("parent", parent=(parent.table, element.column.name))
    return plan


def growth_plan(conn: sa.Connection, meta: sa.MetaData, scale: Scale) -> list[TableGrowth]:
    """How each table would grow (parents first); reads the copy, changes nothing.

    A table that cannot be profiled or has a key no fresh value fits gets a ``problem`` and no replays.
    """
    tables = [t for t in meta.sorted_tables if t.name not in _SKIP]
    unknown = sorted({name for name, _ in scale.rows} - {t.name for t in tables})
    if unknown:
        raise UsageError(f"--scale names tables the database does not have: {', '.join(unknown)}")
    dialect = dialect_name(conn.engine)
    plans: dict[str, TableGrowth] = {}
    for table in tables:
        try:
            plans[table.name] = _plan_table(conn, table, scale, plans, dialect)
        except SQLAlchemyError as exc:
            conn.rollback()  # only reads ran: nothing is lost, and PostgreSQL's aborted transaction ends
            plans[table.name] = TableGrowth(table.name, 0, 0, dialect=dialect,
                                            problem=f"could not be profiled: {reason(exc)}")
    return list(plans.values())


def reason(exc: Exception) -> str:
    """The first line of the database's error (or the exception's name)."""
    orig = getattr(exc, "orig", None)
    args: tuple[Any, ...] = getattr(orig, "args", ())
    # PyMySQL's errors are (code, message) tuples: the message is what a reader wants.
    text = str(args[1] if len(args) == 2 and isinstance(args[0], int) else orig or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _replayed(col: sa.ColumnElement[Any], rule: ColumnRule, k: sa.ColumnElement[Any],
              plans: dict[str, TableGrowth], dialect: str) -> sa.ColumnElement[Any]:
    if rule.rule in FRESH:
        return fresh_value(col, rule, k, dialect)
    if rule.rule == "parent" and rule.parent:
        parent = plans[rule.parent[0]]
        parent_rule = parent.columns[rule.parent[1]]
        if parent_rule.rule in FRESH or parent_rule.rule == "parent":
            shifted = _replayed(col, parent_rule, k, plans, dialect)
            return sa.case((k <= parent.full_rounds, shifted), else_=col)
    return col


def insert_statement(table: sa.Table, plan: TableGrowth, plans: dict[str, TableGrowth]) -> sa.Insert | None:
    """The ``INSERT ... SELECT`` that replays ``table``'s rows for ``plan`` (None: nothing to add)."""
    rounds = plan.rounds
    if rounds <= 0:
        return None
    # The replay numbers as constants in the SQL: a bound parameter would have no type in a UNION.
    numbers = [sa.select(sa.literal_column(str(k), sa.Integer).label("k")) for k in range(1, rounds + 1)]
    r = (sa.union_all(*numbers) if rounds > 1 else numbers[0]).subquery("dbrunbook_rounds")
    k = r.c.k
    written = [c for c in table.columns if c.computed is None]  # the database computes the others
    columns = [_replayed(c, plan.columns[c.name], k, plans, plan.dialect).label(c.name) for c in written]
    query = sa.select(*columns).select_from(table).join(r, sa.true())
    if plan.partial_rows:
        key = next(iter(table.primary_key.columns))
        query = query.where(sa.or_(k <= plan.full_rounds, key <= plan.threshold))
    return table.insert().from_select([c.name for c in written], query)
