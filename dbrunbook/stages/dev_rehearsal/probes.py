"""Constraint probes: after the upgrade, try on the copy a row each new constraint must reject.

:func:`constraint_snapshot` reflects NOT NULL columns, unique column sets and foreign keys;
:func:`run_probes` compares the copy after the upgrade with the snapshot before it and, for each
constraint the migration added, inserts a row that constraint must reject (next to a control row
that differs only there, which must be accepted), always rolled back. Used by stage 4.

A composite foreign key is probed with a row whose key tuple has no parent; a probe that cannot
build its rows (a type with no fresh value, a query the database refuses) is inconclusive with
the reason, never an error.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError, StatementError

from dbrunbook.core.db import engine_facts, make_engine
from dbrunbook.core.results import Finding


@dataclass
class Probe:
    """A row one new constraint must reject, tried on the migrated copy and rolled back."""

    kind: str  # not-null | unique | foreign-key
    table: str
    columns: list[str]
    status: str = "inconclusive"  # rejected | accepted | inconclusive
    error: str = ""
    note: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)  # foreign keys: table, then columns

    def describe(self) -> str:
        where = f" -> {self.references[0]}({', '.join(self.references[1:])})" if self.references else ""
        return f"{self.kind} on {self.table}({', '.join(self.columns)}){where}"


def probe_findings(probes: list[Probe]) -> list[Finding]:
    """One finding per probe that did not come out as expected, and a summary of the rest."""
    out = []
    rejected = [p for p in probes if p.status == "rejected"]
    if rejected:
        out.append(Finding("RH010", "info", f"{len(rejected)} constraint probe(s) rejected as they must be", "",
                           {"probes": [p.describe() for p in rejected]}))
    for p in probes:
        if p.status == "accepted":
            out.append(Finding("RH011", "warn", f"the database accepted a row that {p.describe()} must reject",
                               p.table, {"values": p.values}, "check the constraint is created and enforced"))
        elif p.status == "inconclusive":
            out.append(Finding("RH012", "info", f"could not probe {p.describe()}: {p.note}", p.table))
    return out


def constraint_snapshot(url: URL | str) -> dict[str, dict[str, set[Any]]]:
    """Per table: NOT NULL columns, unique column sets and foreign keys, by reflection."""
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        columns = inspector.get_multi_columns()
        uniques = inspector.get_multi_unique_constraints()
        indexes = inspector.get_multi_indexes()
        fks = inspector.get_multi_foreign_keys()
    finally:
        engine.dispose()
    snapshot: dict[str, dict[str, set[Any]]] = {}
    for key, cols in columns.items():
        unique = {frozenset(u["column_names"]) for u in uniques.get(key, [])}
        # Expression indexes name no column (None): no probe row can be built for them.
        unique |= {frozenset(c for c in i["column_names"] if c is not None) for i in indexes.get(key, [])
                   if i.get("unique") and None not in i["column_names"]}
        snapshot[key[1]] = {
            "columns": {c["name"] for c in cols},
            "not_null": {c["name"] for c in cols if not c["nullable"]},
            "unique": unique,
            "fks": {(tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                    for f in fks.get(key, [])},
        }
    return snapshot


def _new_probes(before: dict[str, dict[str, set[Any]]], after: dict[str, dict[str, set[Any]]]) -> list[Probe]:
    """A probe per constraint the migration added to a table that existed before it."""
    probes = []
    for table, now in sorted(after.items()):
        old = before.get(table)
        if old is None or table == "alembic_version":
            continue  # a new table holds no data the constraint could have been tested on
        probes += [Probe("not-null", table, [c]) for c in sorted(now["not_null"] - old["not_null"])]
        probes += [Probe("unique", table, sorted(u)) for u in sorted(now["unique"] - old["unique"], key=sorted)]
        probes += [Probe("foreign-key", table, list(f[0]), references=[f[1], *f[2]])
                   for f in sorted(now["fks"] - old["fks"])]
    return probes


def _fresh(conn: sa.Connection, column: sa.ColumnElement[Any], offset: int) -> Any:
    """A value of ``column``'s type that no row holds yet (None when the type has no such rule)."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return None
    length = getattr(column.type, "length", None)
    if kind is str:
        text = f"probe-{uuid.uuid4().hex}"
        return text[-length:] if length else text
    if kind is uuid.UUID:
        return uuid.uuid4()
    if kind is bytes:
        raw = uuid.uuid4().bytes
        return raw[:length] if length else raw
    if kind in (int, float, Decimal, dt.date, dt.datetime):
        top = conn.execute(sa.select(sa.func.max(column))).scalar()
        if kind in (dt.date, dt.datetime):
            start = dt.datetime(2000, 1, 1) if kind is dt.datetime else dt.date(2000, 1, 1)
            return (top or start) + dt.timedelta(days=1000 + offset)
        return (top or 0) + 1000 + offset
    return None


def _rows_for(conn: sa.Connection, table: sa.Table, probe: Probe,
              unique_sets: set[Any]) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """The control row (a copy of an existing row with fresh keys) and the probe row, or why there are none."""
    query = sa.select(table).limit(1)
    if probe.kind == "unique":
        query = query.where(*[table.c[c].is_not(None) for c in probe.columns])
    base = conn.execute(query).mappings().first()
    if base is None:
        return "the table is empty"
    control = dict(base)
    # Foreign key columns keep the copied row's value, so the control row still has its parents.
    foreign = {c.name for fk in table.foreign_key_constraints for c in fk.columns}
    keyed = {c.name for c in table.primary_key.columns}.union(*unique_sets) - foreign
    for n, name in enumerate(sorted(keyed)):
        value = _fresh(conn, table.c[name], n)
        if value is not None:
            control[name] = value
    bad = dict(control)
    if probe.kind == "foreign-key":
        orphaned = 0
        for n, name in enumerate(probe.columns):  # a key tuple no parent row has: one fresh part is enough
            parent = sa.table(probe.references[0], sa.column(probe.references[1 + n], table.c[name].type))
            value = _fresh(conn, parent.c[probe.references[1 + n]], 7)
            if value is not None:
                bad[name], orphaned = value, orphaned + 1
        if not orphaned:
            return "no column of the key has a type a value no parent holds can be made for"
    for name in probe.columns:
        if probe.kind == "not-null":
            bad[name] = None
        elif probe.kind == "unique":
            bad[name] = base[name]
    return control, bad


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _attempt(engine: sa.Engine, table: sa.Table, row: dict[str, Any]) -> str | None:
    """Insert ``row`` and roll it back; the database's error, or None when it was accepted."""
    with engine.connect() as conn:
        # A probe meets the constraints the schema declares (SQLite enforces foreign keys only when asked).
        for statement in engine_facts(engine).enforce_constraints_sql:
            conn.exec_driver_sql(statement)
        conn.commit()
        try:
            conn.execute(table.insert().values(row))
            return None
        except StatementError as exc:  # the database's refusal, or a value the driver cannot send
            return _first_line(exc)
        finally:
            conn.rollback()


def run_probes(url: URL | str, before: dict[str, dict[str, set[Any]]]) -> list[Probe]:
    """Try, on the migrated copy at ``url``, a row each constraint added since ``before`` must reject."""
    after = constraint_snapshot(url)
    probes = _new_probes(before, after)
    engine = make_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine, only=sorted({p.table for p in probes}))
        for probe in probes:
            table = meta.tables[probe.table]
            try:
                with engine.connect() as conn:
                    rows = _rows_for(conn, table, probe, after[probe.table]["unique"])
            except (SQLAlchemyError, ValueError, TypeError) as exc:  # a value the driver cannot read back
                rows = f"its rows could not be built: {_first_line(exc)}"
            if isinstance(rows, str):
                probe.note = rows
                continue
            control, bad = rows
            probe.values = {**probe.values, **{c: bad[c] for c in probe.columns}}
            refused = _attempt(engine, table, control)
            if refused:
                probe.note = f"a control row was refused too: {refused}"
                continue
            probe.error = _attempt(engine, table, bad) or ""
            probe.status = "rejected" if probe.error else "accepted"
    finally:
        engine.dispose()
    return probes
