"""Stages 4 and 7: apply the migration to a scratch copy of the target, and record what happened.

:func:`rehearse` copies the target (:func:`dbrunbook.clone.scratch_copy`), optionally grows the
copy to a production-like volume (:func:`dbrunbook.volume.grow`), runs the upgrade on it with
every statement and revision timed, and returns the outcome, including the database's exact
error when it fails. After a successful upgrade it probes each constraint the migration adds
with a row that constraint must reject (and a control row that differs only there, which
must be accepted), and runs the user's test command against the copy with ``DATABASE_URL`` and
``DBRUNBOOK_CLONE_URL`` exported. The target is only read; the copy is always dropped.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from .clone import scratch_copy
from .config import Target
from .db import check_connection, dialect_name, make_engine
from .migration import ApplyResult, alembic_config, apply_upgrade, current_revision
from .results import Finding
from .secrets import MASK, mask_url, secret_values
from .volume import Scale, grow

#: Session statements that make a probe meet the constraint the schema declares (SQLite only
#: enforces foreign keys when asked, per connection).
_PROBE_SESSION = {"sqlite": ("PRAGMA foreign_keys = ON",)}
#: Characters of a test command's output kept in the record (the end, where failures are).
OUTPUT_TAIL = 20_000
#: What marks the end of one revision among the captured statements: Alembic's own
#: bookkeeping of the version table, which names the revision just applied.
_VERSION_MARK = re.compile(r"version_num\s*=\s*'([^']+)'|\(\s*version_num\s*\)\s*VALUES\s*\(\s*'([^']+)'", re.I)


@dataclass
class TestRun:
    """The user's test command, run against the migrated copy."""

    __test__ = False  # not a pytest test class, despite its name

    command: str
    passed: bool
    returncode: int | None
    seconds: float
    output: str
    timed_out: bool = False


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


@dataclass
class Rehearsal:
    """The outcome of one rehearsal."""

    revision_before: str | None
    revision_after: str | None
    upgrade: ApplyResult
    target_revision_unchanged: bool
    revisions: list[dict[str, Any]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    tests: TestRun | None = None
    clone: str = ""
    mode: str = "full"
    rows: dict[str, int] = field(default_factory=dict)
    tests_skipped: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rehearse(target: Target, script_dir: Path, mode: str = "full", *, rows: int = 1000,
             probes: bool = True, test_cmd: str = "", test_timeout: float = 900.0,
             scale: Scale | None = None) -> Rehearsal:
    """Upgrade a scratch copy of ``target`` to head with the scripts in ``script_dir``.

    ``mode``/``rows`` choose the copy (full, schema, sample of ``rows`` per table); ``scale``
    grows it first; ``probes`` checks the new constraints reject what they must; ``test_cmd``
    runs the user's tests against the migrated copy.
    """
    cfg = alembic_config(target, script_dir)
    engine = make_engine(target.db)
    check_connection(engine)
    before = current_revision(engine)
    engine.dispose()  # PostgreSQL copies by TEMPLATE only when nobody is connected
    pending = _pending(ScriptDirectory.from_config(cfg), before)
    with scratch_copy(target.db, mode=mode, rows=rows) as url:
        grown = grow(url, scale) if scale is not None else {}
        snapshot = constraint_snapshot(url) if probes else None
        result = apply_upgrade(cfg, url, "head")
        copy = make_engine(url)
        after = current_revision(copy)
        copy.dispose()
        outcome = Rehearsal(before, after, result, True, revision_timings(result, pending),
                            clone=mask_url(url), mode=mode, rows=grown)
        if result.ok and snapshot is not None:
            outcome.probes = run_probes(url, snapshot)
        if result.ok and test_cmd:
            outcome.tests = run_tests(test_cmd, url, cwd=target.project_dir, timeout=test_timeout)
        elif test_cmd:
            outcome.tests_skipped = f"the upgrade fails on the copy: {result.error}"
    engine = make_engine(target.db)
    outcome.target_revision_unchanged = current_revision(engine) == before
    engine.dispose()
    return outcome


def _pending(scripts: ScriptDirectory, current: str | None) -> list[str]:
    revisions = list(scripts.iterate_revisions("heads", current or "base"))
    return [r.revision for r in reversed(revisions)]


def revision_timings(result: ApplyResult, pending: list[str]) -> list[dict[str, Any]]:
    """Per revision: statements, their summed time, and whether it completed.

    Alembic records each applied revision in its version table; that statement closes the
    revision's group. Statements after the last one belong to the revision that failed.
    """
    timings: list[dict[str, Any]] = []
    group: list[dict[str, Any]] = []
    for statement in result.statements:
        group.append(statement)
        sql = statement["sql"].lstrip()
        mark = _VERSION_MARK.search(sql) if sql[:6].upper() in ("UPDATE", "INSERT") else None
        if mark:
            timings.append(_timing(mark.group(1) or mark.group(2), group, True))
            group = []
    remaining = [r for r in pending if r not in {t["revision"] for t in timings}]
    if group or not result.ok:
        timings.append(_timing(remaining[0] if remaining else "?", group, result.ok))
    return timings


def _timing(revision: str, statements: list[dict[str, Any]], ok: bool) -> dict[str, Any]:
    seconds = sum(s["seconds"] for s in statements)
    slowest: dict[str, Any] = max(statements, key=lambda s: s["seconds"], default={"sql": "", "seconds": 0.0})
    return {"revision": revision, "ok": ok, "statements": len(statements), "seconds": round(seconds, 6),
            "slowest_sql": str(slowest["sql"]).strip()[:200], "slowest_seconds": slowest["seconds"]}


def mask_output(text: str, url: URL | str) -> str:
    """``text`` with every form of the URL's secrets replaced by the mask."""
    for secret in secret_values(url):
        for form in sorted({secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}, key=len, reverse=True):
            text = text.replace(form, MASK)
    return text


def environment_for_tests(url: URL) -> dict[str, str]:
    """The environment a test command sees: ours plus the copy's URL under both names."""
    real = url.render_as_string(hide_password=False)
    return {**os.environ, "DATABASE_URL": real, "DBRUNBOOK_CLONE_URL": real}


def run_tests(command: str, url: URL, cwd: Path | None = None, timeout: float = 900.0) -> TestRun:
    """Run ``command`` (a shell command line) against the database at ``url``; record the outcome.

    The output is recorded with the URL's password masked. The command runs in its own
    process group, so a timeout or Ctrl-C stops its children too before the copy is dropped.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(command, shell=True, cwd=str(cwd) if cwd else None, env=environment_for_tests(url),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc)
        out, _ = proc.communicate()
    except BaseException:
        _stop(proc)
        raise
    text = mask_output(out.decode(errors="replace"), url)[-OUTPUT_TAIL:]
    return TestRun(command=mask_output(command, url), passed=proc.returncode == 0 and not timed_out,
                   returncode=proc.returncode, seconds=round(time.perf_counter() - started, 3),
                   output=text, timed_out=timed_out)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def findings(rehearsal: Rehearsal) -> list[Finding]:
    """Findings of a rehearsal: the failure with its statement, or the timing, probes and tests."""
    up = rehearsal.upgrade
    out = []
    if not up.ok:
        out.append(Finding("RH001", "block", f"the upgrade fails on a copy of the data: {up.error}",
                           up.error_type, {"statement": up.failed_statement.strip()[:2000], "error": up.error},
                           "fix the offending rows or change the migration; see stage 05 for the rows"))
    if not rehearsal.target_revision_unchanged:
        out.append(Finding("RH002", "block", "the target's revision changed during the rehearsal", "target"))
    if up.ok:
        out.append(Finding("RH000", "info", f"upgrade applied on a copy in {up.seconds:.2f}s "
                                            f"({len(up.statements)} statements)", "",
                           {"seconds": up.seconds, "revisions": rehearsal.revisions}))
    out.extend(probe_findings(rehearsal.probes))
    out.extend(findings_for_tests(rehearsal))
    return out


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


def findings_for_tests(rehearsal: Rehearsal | None) -> list[Finding]:
    """Pass or fail of the user's test command, or why it was not run (None: no command given)."""
    if rehearsal is None:
        return [Finding("RH023", "info", "no test command given: the application's tests were not run", "tests",
                        fix="pass the command as the test_cmd parameter, for example pytest -x")]
    if rehearsal.tests is not None:
        return [finding_for_test_run(rehearsal.tests)]
    if rehearsal.tests_skipped:
        return [Finding("RH022", "warn", f"the test command was not run: {rehearsal.tests_skipped}", "tests",
                        fix="make the upgrade pass first (stage 04 shows why it fails)")]
    return []


def finding_for_test_run(tests: TestRun) -> Finding:
    """Pass or fail of the user's test command, with the end of its output as evidence."""
    evidence = {"command": tests.command, "returncode": tests.returncode, "seconds": tests.seconds,
                "output_tail": tests.output[-2000:]}
    if tests.passed:
        return Finding("RH020", "info", f"the test command passed against the migrated copy in {tests.seconds:.1f}s",
                       "tests", evidence)
    why = "timed out" if tests.timed_out else f"exited with {tests.returncode}"
    return Finding("RH021", "block", f"the test command {why} against the migrated copy", "tests", evidence,
                   "read the output; the application does not work with the new schema")


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
    if kind is str:
        text = f"probe-{uuid.uuid4().hex}"
        length = getattr(column.type, "length", None)
        return text[-length:] if length else text
    if kind in (int, float, Decimal):
        top = conn.execute(sa.select(sa.func.max(column))).scalar()
        return (top or 0) + 1000 + offset
    return None


def _rows_for(conn: sa.Connection, table: sa.Table, probe: Probe,
              unique_sets: set[Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The control row (a copy of an existing row with fresh keys) and the probe row."""
    query = sa.select(table).limit(1)
    if probe.kind == "unique":
        query = query.where(*[table.c[c].is_not(None) for c in probe.columns])
    base = conn.execute(query).mappings().first()
    if base is None:
        return None
    control = dict(base)
    keyed = {c.name for c in table.primary_key.columns}.union(*unique_sets)
    for n, name in enumerate(sorted(keyed)):
        value = _fresh(conn, table.c[name], n)
        if value is not None:
            control[name] = value
    bad = dict(control)
    for n, name in enumerate(probe.columns):
        if probe.kind == "not-null":
            bad[name] = None
        elif probe.kind == "unique":
            bad[name] = base[name]
        else:  # a key the referenced table does not hold
            parent = sa.table(probe.references[0], sa.column(probe.references[1 + n], table.c[name].type))
            bad[name] = _fresh(conn, parent.c[probe.references[1 + n]], 7)
    return control, bad


def _attempt(engine: sa.Engine, table: sa.Table, row: dict[str, Any]) -> str | None:
    """Insert ``row`` and roll it back; the database's error, or None when it was accepted."""
    with engine.connect() as conn:
        for statement in _PROBE_SESSION.get(dialect_name(engine), ()):
            conn.exec_driver_sql(statement)
        conn.commit()
        try:
            conn.execute(table.insert().values(row))
            return None
        except DBAPIError as exc:
            text = str(getattr(exc, "orig", None) or exc).strip()
            return text.splitlines()[0] if text else type(exc).__name__
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
            with engine.connect() as conn:
                rows = _rows_for(conn, table, probe, after[probe.table]["unique"])
            if rows is None:
                probe.note = "the table is empty"
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
