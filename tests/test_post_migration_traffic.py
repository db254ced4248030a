"""Stage 12 on a target the application keeps writing to: its inserts are counted, the migration's losses still block.

A writer thread (its own autocommit connection) inserts a row into ``customers``, the table the migration ALTERs,
every 10 ms while a real apply runs. Stage 11 records each table's largest key with its fingerprint; stage 12
compares the rows up to that key with the print before and counts the rows above it (PV016, info). A revision that
deletes rows or nulls a column still blocks (PV003), with the count, writer or not.
"""
from __future__ import annotations

import dataclasses
import decimal
import shutil
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dbrunbook import RunOptions, run_runbook
from dbrunbook.core import contract
from dbrunbook.core.config import load_metadata
from dbrunbook.core.db import make_engine
from dbrunbook.core.evidence import SchemaAnalysisEvidence
from dbrunbook.core.results import load_result
from dbrunbook.data.fingerprint import Fingerprint, fingerprint
from dbrunbook.runbook.engine import runbook_folder
from dbrunbook.schema import as_changes
from dbrunbook.stages.guarded_apply import apply, plan_apply
from dbrunbook.stages.post_migration import validate
from dbrunbook.stages.post_migration._traffic import touched
from helpers.apply_plan import _CHANGE, CUSTOMERS, Planned, _revision, plan_once

EVERY_SECONDS = 0.010


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb"])
def planned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from plan_once(request.param, tmp_path_factory)


class Writer(threading.Thread):
    """The application: an insert into ``customers`` every 10 ms, each one committed at once."""

    def __init__(self, planned: Planned) -> None:
        super().__init__(name="writer", daemon=True)
        args = {"timeout": 60} if planned.dialect == "sqlite" else {}  # wait out the apply's write lock
        self.engine = make_engine(planned.url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=args)
        self.written = 0
        self.errors: list[str] = []
        self.ready, self.done = threading.Event(), threading.Event()

    def run(self) -> None:
        insert = sa.text("INSERT INTO customers (name, email) VALUES (:name, :email)")
        try:
            with self.engine.connect() as conn:
                self.ready.set()
                while not self.done.is_set():
                    try:
                        conn.execute(insert, {"name": f"writer {self.written}", "email": f"w{self.written}@x.org"})
                        self.written += 1
                    except sa.exc.DBAPIError as exc:  # recorded: the writer must never fail
                        self.errors.append(str(exc.orig).splitlines()[0])
                    time.sleep(EVERY_SECONDS)
        finally:
            self.ready.set()
            self.engine.dispose()

    def __enter__(self) -> Writer:
        self.start()
        assert self.ready.wait(30)
        time.sleep(0.3)  # rows before the apply's fingerprint too
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)
        self.done.set()
        self.join(timeout=120)
        assert self.errors == [] and self.written > 0, self.errors


def test_a_writer_during_a_real_apply_is_counted_and_does_not_block(planned, tmp_path):
    planned.reset()
    with Writer(planned):
        run = run_runbook(planned.target(), RunOptions(runbooks=runbook_folder("apply"), out=tmp_path, parameters={
            "plan_run": str(planned.plan_run), "execute": True}))
    assert [(s.name, s.status) for s in run.stages] == [("11-guarded-apply", "pass"), ("12-post-migration", "pass")]
    validated = load_result(run.path, "12-post-migration")
    assert [(f.code, f.message) for f in validated.findings if f.severity != "info"] == []
    before = Fingerprint.load(run.path / load_result(run.path, "11-guarded-apply").data["fingerprint_before"])
    after = Fingerprint.load(run.path / "12-post-migration" / "fingerprint-after.json")
    assert before.keyed and before.tables["customers"].key == "id" and before.tables["customers"].rows > CUSTOMERS
    inserted = after.tables["customers"].rows - before.tables["customers"].rows
    assert inserted > 0  # the writer wrote between stage 11's fingerprint and stage 12's
    [info] = [f for f in validated.findings if f.code == "PV016"]
    assert (info.severity, info.object, info.evidence["inserted"]) == ("info", "customers", inserted)
    assert f"{inserted:,} rows inserted during the apply into customers" in info.message
    assert info.evidence["key_max_before"] == before.tables["customers"].key_max


def _variant(planned: Planned, tmp: Path, middle: str):
    """The plan of ``planned`` with a revision 0002 that also runs the SQL ``middle``, reviewed as such."""
    plan = plan_apply(planned.plan_run, planned.target())
    assert plan.refused == [], plan.refused
    scripts = tmp / "scripts"
    shutil.copytree(plan.script_dir, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    _revision(scripts, "0002_phone", _CHANGE.format(middle=f"op.execute({middle!r})"))
    chunks = plan.upgrade_sql.split(";\n\n")
    at = next(i for i, chunk in enumerate(chunks) if "ADD COLUMN phone" in chunk) + 1
    return dataclasses.replace(plan, script_dir=scripts, upgrade_sql=";\n\n".join([*chunks[:at], middle,
                                                                                    *chunks[at:]]))


def _apply_and_validate(planned: Planned, tmp: Path, middle: str, writer: bool):
    planned.reset()
    variant = _variant(planned, tmp, middle)
    if writer:
        with Writer(planned):
            outcome = apply(variant, planned.target(), tmp / "stage")
    else:
        outcome = apply(variant, planned.target(), tmp / "stage")
    assert outcome.applied, outcome.error
    target = planned.target()
    changes = as_changes(contract.load(planned.plan_run, SchemaAnalysisEvidence).changes)
    before = Fingerprint.load(tmp / "stage" / "fingerprint-before.json")
    engine = make_engine(planned.url)
    try:
        result = validate(engine, load_metadata(target.models, target.project_dir), before, changes, "0002")
    finally:
        engine.dispose()
    return result, before, changes


def test_a_revision_that_deletes_rows_blocks_with_the_count_while_the_application_writes(planned, tmp_path):
    result, before, _ = _apply_and_validate(planned, tmp_path, "DELETE FROM customers WHERE id <= 5", writer=True)
    assert result.verdict == "block"
    [lost] = [f for f in result.findings if f.severity == "block"]
    rows = before.tables["customers"].rows
    assert (lost.code, lost.object, lost.evidence["before"] - lost.evidence["after"]) == ("PV003", "customers", 5)
    assert f"5 of the {rows} rows of customers that existed before the apply are missing" in lost.message
    assert [f.code for f in result.findings if f.code == "PV016" and f.evidence["inserted"] > 0] == ["PV016"]


def test_a_revision_that_nulls_a_column_it_touches_blocks_with_the_count_while_the_application_writes(planned,
                                                                                                       tmp_path):
    result, before, changes = _apply_and_validate(planned, tmp_path, "UPDATE customers SET email = NULL WHERE id <= 3",
                                                  writer=True)
    assert ("customers", "email") in touched(changes)  # the plan indexes it
    [lost] = [f for f in result.findings if f.severity == "block"]
    assert (lost.code, lost.object, lost.evidence["what"]) == ("PV003", "customers.email", "non-null")
    assert lost.evidence["before"] - lost.evidence["after"] == 3 and "3 did not come back" in lost.message
    assert before.tables["customers"].columns["email"].non_null == lost.evidence["before"]


@pytest.mark.parametrize("writer", [False, True], ids=["quiet", "busy"])
def test_an_untouched_column_changed_blocks_on_a_quiet_target_and_warns_when_the_application_writes(
        planned, tmp_path, writer):
    result, _, changes = _apply_and_validate(planned, tmp_path, "UPDATE customers SET name = 'changed' WHERE id = 2",
                                             writer=writer)
    assert ("customers", "name") not in touched(changes)
    [changed] = [f for f in result.findings if f.object == "customers.name"]
    assert changed.evidence["what"] == "values"
    if writer:  # the table took inserts during the apply: an update of an untouched column is most likely theirs
        assert (changed.code, changed.severity, result.verdict) == ("PV016", "warn", "warn")
        assert "the application wrote to it" in changed.message and changed.evidence["inserted"] > 0
    else:  # nothing else wrote: it can only be the migration
        assert (changed.code, changed.severity, result.verdict) == ("PV003", "block", "block")


def test_the_bounded_print_at_the_largest_key_is_the_whole_print_and_old_prints_read_as_before(db_url):
    engine = make_engine(db_url)
    meta = sa.MetaData()
    things = sa.Table("things", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)),
                      sa.Column("price", sa.Numeric(10, 2)), sa.Column("ratio", sa.Float),
                      sa.Column("flag", sa.Boolean), sa.Column("blob", sa.LargeBinary))
    sa.Table("pairs", meta, sa.Column("a", sa.Integer, primary_key=True), sa.Column("b", sa.Integer, primary_key=True))
    sa.Table("empty", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Integer))
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(things.insert(), [{"id": i, "name": f"n{i}" if i % 3 else None, "ratio": i / 8,
                                            "price": decimal.Decimal(f"{i}.25"), "flag": bool(i % 2),
                                            "blob": bytes([i, 0, 255])} for i in range(1, 31)])
        before = fingerprint(engine, keys=True)
        assert (before.tables["things"].key, before.tables["things"].key_max) == ("id", 30)
        assert before.tables["pairs"].key == "" and before.tables["empty"].key_max is None
        bounds = {"things": ("id", 30), "empty": ("id", None)}
        now = fingerprint(engine, bounds=bounds)
        assert now.tables["things"].bounded.as_table().columns == before.tables["things"].columns
        with engine.begin() as conn:
            conn.execute(things.insert(), [{"id": 31, "name": "new"}])
            conn.execute(sa.text("INSERT INTO empty (id, v) VALUES (1, 1)"))
        later = fingerprint(engine, bounds=bounds)
        assert later.tables["things"].bounded.as_table() == dataclasses.replace(before.tables["things"], key="",
                                                                               key_max=None)
        assert (later.tables["things"].rows, later.tables["empty"].rows, later.tables["empty"].bounded.rows) == (
            31, 1, 0)
        assert Fingerprint.from_json(later.to_json()) == later and Fingerprint.from_json(before.to_json()) == before
        plain = fingerprint(engine).to_json()
        assert "keyed" not in plain and all(set(t) == {"rows", "columns"} for t in plain["tables"].values())
        # A print saved before keys were recorded: every difference blocks, as it always did.
        old = Fingerprint.from_json(plain)
        with engine.begin() as conn:
            conn.execute(things.insert(), [{"id": 32, "name": "newer"}])
        result = validate(engine, None, old, [], None)
        data = [(f.code, f.severity, f.object) for f in result.findings if f.code in ("PV003", "PV016")]
        assert data == [("PV003", "block", "things")]  # (explicit ids leave PostgreSQL's sequences behind: PV007)
    finally:
        meta.drop_all(engine)
        engine.dispose()
