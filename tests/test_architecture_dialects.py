"""Dialects in one place: no dialect-name comparison outside ``dbrunbook/dialects``, every fact set, the SQL works.

The first tests read the source; the rest run each SQL-producing fact of :mod:`dbrunbook.dialects` on the real
databases (SQLite always; PostgreSQL and MariaDB when reachable, see ``tests/helpers/databases.py``).
"""
from __future__ import annotations

import ast
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dbrunbook import dialects
from dbrunbook.core.db import drop_database, make_engine
from dbrunbook.dialects import Dialect, facts, facts_of, of_engine, of_url, supported
from dbrunbook.errors import UsageError
from helpers.databases import DIALECTS, new_database

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dbrunbook"
#: Where dialect names belong: the dialects themselves, and the templates written into users' projects.
EXEMPT = ("dbrunbook/dialects/", "dbrunbook/_templates/")
#: Modules that may still name dialects. It is empty: every stage asks the dialect. Keep it so.
ALLOWED_FOR_NOW: tuple[str, ...] = ()


# -- the source ------------------------------------------------------------------------------------------------------

def _declarations(tree: ast.AST) -> set[int]:
    """ids of the nodes inside a ``dialects=...`` argument: where a rule applies, declared, not compared."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "dialects":
            inside |= {id(n) for n in ast.walk(node.value)}
    return inside


def dialect_names_in(path: Path) -> list[tuple[int, str]]:
    """(line, name) of each string literal in ``path`` that is a dialect's name, outside ``dialects=`` declarations."""
    tree = ast.parse(path.read_text(), str(path))
    names, declared = set(supported()), _declarations(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
            and id(node) not in declared]


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(EXEMPT):
            yield rel, path


def test_no_dialect_name_is_compared_outside_the_dialects_package() -> None:
    """Code asks the dialect (``facts(name).x``) instead of comparing its name; a registration may declare them."""
    found = [f"{rel}:{line}: {name!r}" for rel, path in _modules() if rel not in ALLOWED_FOR_NOW
             for line, name in dialect_names_in(path)]
    assert not found, "dialect names outside dbrunbook/dialects (ask the dialect instead):\n" + "\n".join(found)


def test_allowed_for_now_lists_only_modules_that_still_need_it() -> None:
    """A migrated module leaves the list, so that it cannot slip back."""
    modules = dict(_modules())
    stale = [rel for rel in ALLOWED_FOR_NOW if rel not in modules or not dialect_names_in(modules[rel])]
    assert not stale, f"remove from ALLOWED_FOR_NOW (no dialect name left): {stale}"


def test_the_scan_sees_a_comparison_and_skips_a_declaration(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('@rule("XX001", dialects=("postgresql",))\ndef check(d):\n    return d == "mariadb"\n')
    assert dialect_names_in(sample) == [(3, "mariadb")]


# -- the registry ----------------------------------------------------------------------------------------------------

def test_every_registered_dialect_sets_every_fact() -> None:
    """A fact left unset fails at import; this says which dialect, should the check ever be bypassed."""
    unset = {d.name: [f for f in facts_of(Dialect) if not hasattr(d, f)] for d in dialects.registered()}
    assert {name: missing for name, missing in unset.items() if missing} == {}
    for dialect in dialects.registered():
        assert facts(dialect.name) is dialect
        # Facts that name a strategy name one the layer above implements.
        assert dialect.sql_reader in ("pglast", "sqlglot")
        assert dialect.clone_strategy in ("file", "template", "copy")
        assert dialect.ddl_lock_model in ("lock-modes", "online-ddl", "database-lock")
        assert dialect.plan_format in ("postgresql-json", "mysql-json", "sqlite-query-plan")
        assert set(dialect.strict_outcomes) <= set(dialect.outcomes)
        assert dialect.lock_timeout_errors


def test_the_registry_is_keyed_by_name_and_refuses_a_second_class_of_a_name() -> None:
    assert supported() == ["mariadb", "mysql", "postgresql", "sqlite"]
    with pytest.raises(ValueError, match="registered twice"):
        type("SQLiteAgain", (dialects.SQLite,), {"name": "sqlite"})
    with pytest.raises(ValueError, match="leaves facts unset"):
        type("Half", (Dialect,), {"name": "half", "label": "Half"})
    assert supported() == ["mariadb", "mysql", "postgresql", "sqlite"]


def test_facts_keeps_its_old_interface() -> None:
    sqlite = facts("sqlite")
    assert (sqlite.name, sqlite.label, sqlite.render_as_batch, sqlite.file_based) == ("sqlite", "SQLite", True, True)
    assert facts("mariadb").backup_tool == ("mariadb-dump", "mariadb-client")
    assert dialects.DialectFacts is Dialect
    with pytest.raises(UsageError, match="not supported"):
        facts("oracle")
    assert dialects.get("oracle") is None


@pytest.mark.parametrize("url, name", [
    ("sqlite:///x.db", "sqlite"), ("postgresql+psycopg://u@h/db", "postgresql"), ("mysql+pymysql://u@h/db", "mysql"),
    ("mariadb+pymysql://u@h/db", "mariadb"), ("mysql+pymysql://u@mariadb-host/db", "mariadb"),
])
def test_a_url_names_its_dialect(url: str, name: str) -> None:
    assert of_url(url).name == name


def test_an_alias_names_its_dialect() -> None:
    assert dialects.aliased("postgres") is facts("postgresql")
    assert dialects.aliased("sqlite") is None  # a name, not an alias


# Expected SQL in one table: the timeouts are written in one place, each dialect in its own unit.
@pytest.mark.parametrize("name, statement, lock, unlimited", [
    ("postgresql", "SET statement_timeout = 1500", ("SET lock_timeout = 250",), "SET statement_timeout = 0"),
    ("mariadb", "SET SESSION max_statement_time = 1.5",
     ("SET SESSION lock_wait_timeout = 1", "SET SESSION innodb_lock_wait_timeout = 1"),
     "SET SESSION max_statement_time = 0"),
    ("mysql", "SET SESSION max_execution_time = 1500",
     ("SET SESSION lock_wait_timeout = 1", "SET SESSION innodb_lock_wait_timeout = 1"),
     "SET SESSION max_execution_time = 0"),
    ("sqlite", None, ("PRAGMA busy_timeout = 250",), None),
])
def test_timeouts_are_written_once_per_dialect(name: str, statement: str | None, lock: tuple[str, ...],
                                               unlimited: str | None) -> None:
    dialect = facts(name)
    assert dialect.statement_timeout(1500) == statement
    assert dialect.lock_timeout(250) == lock
    # A schema-changing session gets the statement timeout only where it bounds DDL (not MySQL's).
    bounded = [statement] if statement and dialect.statement_timeout_bounds_ddl else []
    assert dialect.session_timeouts(250, 1500) == [*lock, *bounded]
    assert dialect.statement_timeout_bounds_ddl == (name in ("postgresql", "mariadb"))
    assert dialect.long_session_sql()[:1] == ([unlimited] if unlimited else list(dialect.keepalive_sql[:1]))
    # The template older callers format (data checks) says the same.
    template = dialect.statement_timeout_sql
    assert (template.format(ms=1500, seconds="1.5") if template else None) == statement


@pytest.mark.parametrize("name, marker", [("postgresql", "$1"), ("mariadb", "?"), ("sqlite", "?")])
def test_statement_compiler_binds_in_the_style_its_reader_parses(name: str, marker: str) -> None:
    query = sa.select(sa.column("a")).where(sa.column("a") == sa.bindparam("x"))
    assert marker in str(query.compile(dialect=facts(name).statement_compiler()))


# -- the SQL, on the real databases ----------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=DIALECTS)
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dialect, sa.Engine]]:
    """Each dialect with an engine on a throwaway database of its own, shared by this module's tests.

    No pool: a session setting a test makes (read-only, timeouts) ends with its connection.
    """
    url = new_database(str(request.param), tmp_path_factory.mktemp(str(request.param)))
    engine = make_engine(url, poolclass=NullPool)
    yield facts(str(request.param)), engine
    engine.dispose()
    drop_database(url)


def _create(engine: sa.Engine, name: str, *columns: sa.Column[Any],
            rows: list[dict[str, Any]] | None = None) -> sa.Table:
    table = sa.Table(name, sa.MetaData(), *columns)
    with engine.begin() as conn:
        table.create(conn)
        if rows:
            conn.execute(table.insert(), rows)
    return table


def _error_code(exc: sa.exc.DBAPIError) -> str:
    """The database's own code: MySQL error number, SQLite primary result code, or SQLSTATE (as the apply reads it)."""
    orig: Any = exc.orig
    if orig.args and isinstance(orig.args[0], int):
        return str(orig.args[0])
    if isinstance(getattr(orig, "sqlite_errorcode", None), int):
        return str(orig.sqlite_errorcode & 0xFF)
    return str(getattr(orig, "sqlstate", ""))


def test_the_engine_says_which_dialect_it_speaks(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    assert of_engine(engine) is dialect and of_url(engine.url) is dialect


_SLEEP = {"postgresql": "SELECT pg_sleep(5)", "mariadb": "SELECT SLEEP(5)"}


def test_statement_timeout_cuts_a_long_statement_short(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    if dialect.statement_timeout(200) is None:
        pytest.skip(f"{dialect.label} has no statement timeout")
    with engine.connect() as conn:
        conn.exec_driver_sql(str(dialect.statement_timeout(200)))
        started = time.perf_counter()
        with pytest.raises(sa.exc.DBAPIError):
            conn.exec_driver_sql(_SLEEP[dialect.name]).all()
        assert time.perf_counter() - started < 3
        conn.rollback()
        conn.exec_driver_sql(str(dialect.statement_timeout(0)))
        conn.exec_driver_sql(_SLEEP[dialect.name].replace("5", "0.3")).all()  # no limit any more


def test_lock_timeout_ends_a_lock_wait_with_an_error_the_apply_retries(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    _create(engine, "lock_probe", sa.Column("id", sa.Integer, primary_key=True), rows=[{"id": 1}])
    holder, waiter = engine.connect(), engine.connect()
    try:
        if dialect.begin_write_sql:  # one writer at a time: the holder takes the write lock
            holder.exec_driver_sql(dialect.begin_write_sql)
            wait = dialect.begin_write_sql
        else:  # the holder reads the table in an open transaction; DDL waits for it
            holder.exec_driver_sql("SELECT * FROM lock_probe").all()
            wait = "ALTER TABLE lock_probe ADD COLUMN x INTEGER"
        for statement in dialect.lock_timeout(100):
            waiter.exec_driver_sql(statement)
        started = time.perf_counter()
        with pytest.raises(sa.exc.DBAPIError) as caught:
            waiter.exec_driver_sql(wait)
        assert time.perf_counter() - started < 5
        assert _error_code(caught.value) in dialect.lock_timeout_errors
    finally:
        for conn in (holder, waiter):
            conn.rollback()
            conn.close()


def test_a_read_only_session_refuses_writes(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    table = _create(engine, "ro_probe", sa.Column("id", sa.Integer, primary_key=True))
    with engine.connect() as conn:
        conn.exec_driver_sql(dialect.read_only_transaction_sql)
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
        with pytest.raises(sa.exc.DBAPIError):
            conn.execute(table.insert().values(id=1))
        conn.rollback()


def _parent_child(engine: sa.Engine, prefix: str) -> sa.Table:
    meta = sa.MetaData()
    sa.Table(f"{prefix}_parent", meta, sa.Column("id", sa.Integer, primary_key=True))
    child = sa.Table(f"{prefix}_child", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("parent_id", sa.ForeignKey(f"{prefix}_parent.id")))
    meta.create_all(engine)
    return child


def test_enforce_constraints_sql_makes_foreign_keys_hold(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    child = _parent_child(engine, "enforced")
    with engine.connect() as conn:
        for statement in dialect.enforce_constraints_sql:
            conn.exec_driver_sql(statement)
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(child.insert().values(id=1, parent_id=42))
        conn.rollback()


def test_fk_checks_off_lets_rows_arrive_in_any_order(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    if dialect.fk_checks_off_sql is None:
        pytest.skip(f"{dialect.label} checks keys at once or not at all")
    child = _parent_child(engine, "unordered")
    with engine.connect() as conn:
        conn.exec_driver_sql(dialect.fk_checks_off_sql)
        conn.execute(child.insert().values(id=1, parent_id=42))
        conn.exec_driver_sql(str(dialect.fk_checks_on_sql))
        conn.rollback()


def test_table_sizes_and_estimated_rows_come_from_the_catalog(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    table = _create(engine, "sized", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(40)),
                    rows=[{"id": i, "v": f"value {i}"} for i in range(1, 51)])
    with engine.connect() as conn:
        conn.exec_driver_sql(dialect.analyze_sql.format(table="sized")).close()  # estimates are of analysed tables
        rows, _ = dialect.table_sizes(conn, ["sized"])["sized"]
        estimate = dialect.estimated_rows(conn, table)
    assert rows is not None and 0 <= rows <= 50
    assert estimate is None or 0 <= estimate <= 50


def test_catalog_queries_find_what_reflection_misses(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    _create(engine, "indexed", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(40)))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_indexed_v ON indexed (v DESC)")
        if dialect.sequences_sql:
            conn.exec_driver_sql("CREATE SEQUENCE free_standing START WITH 5 INCREMENT BY 2")
        if dialect.index_definitions_sql:
            conn.exec_driver_sql("CREATE INDEX ix_indexed_lower ON indexed (lower(v))")
    with engine.connect() as conn:
        if dialect.sequences_sql:
            assert ("free_standing", 5, 2) in [tuple(r) for r in conn.exec_driver_sql(dialect.sequences_sql)]
        if dialect.index_definitions_sql:
            found = {(t, n): s for t, n, s in conn.exec_driver_sql(dialect.index_definitions_sql)}
            assert "lower(v)" in found[("indexed", "ix_indexed_lower")]
        if dialect.descending_index_columns_sql:
            found_desc = [tuple(r) for r in conn.exec_driver_sql(dialect.descending_index_columns_sql)]
            server = conn.dialect.server_version_info or ()
            assert ("indexed", "ix_indexed_v", "v") in found_desc or tuple(server[:2]) < (10, 8)
        if dialect.table_usage_sql:
            assert all(len(r) == 5 for r in conn.exec_driver_sql(dialect.table_usage_sql))


def test_checksum_sql_sums_the_same_md5_slices_as_python(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    values = ["a", "bc", "héllo", None]
    _create(engine, "summed", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(20)),
            rows=[{"id": i, "v": v} for i, v in enumerate(values, start=1)])
    expected = sum(int(hashlib.md5(v.encode()).hexdigest()[:15], 16) for v in values if v is not None)
    with engine.connect() as conn:
        dialect.prepare_checksum(conn)
        column = conn.dialect.identifier_preparer.quote("v")
        got = conn.exec_driver_sql(f"SELECT {dialect.checksum_sql.format(c=column)} FROM summed").scalar_one()
    assert int(got) == expected


def test_random_function_and_key_generators(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    table = _create(engine, "keyed", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(10)))
    with engine.begin() as conn:
        assert conn.execute(sa.select(getattr(sa.func, dialect.random_function)())).scalar() is not None
        conn.execute(table.insert(), [{"id": i, "v": "x"} for i in (1, 2, 3)])
        dialect.sync_key_generators(conn, [table])
        conn.execute(table.insert().values(v="next"))  # the generator is past the explicit keys
        assert conn.execute(sa.select(table.c.id).where(table.c.v == "next")).scalar_one() == 4


def test_text_and_number_expressions(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    table = _create(engine, "texts", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(20)),
                    sa.Column("n", sa.Float), rows=[{"id": 5, "v": "héllo", "n": 3.14159}])
    query = sa.select(dialect.chars(table.c.v), dialect.octets(table.c.v), dialect.as_text(table.c.id),
                      dialect.round(table.c.n, 2))
    with engine.connect() as conn:
        chars, octets, text, rounded = conn.execute(query).one()
    assert (chars, octets, str(text), float(rounded)) == (5, 6, "5", 3.14)


def test_sample_takes_part_of_a_table(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    table = _create(engine, "sampled", sa.Column("id", sa.Integer, primary_key=True),
                    rows=[{"id": i} for i in range(1, 201)])
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(dialect.sample(table, 0.5, 100))).scalar_one()
    assert 0 <= n <= 200


def test_time_spans_and_shifts(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    start = dt.datetime(2025, 2, 28, 10, 0, 0)
    table = _create(engine, "timed", sa.Column("id", sa.Integer, primary_key=True), sa.Column("d", sa.Date),
                    sa.Column("ts", sa.DateTime), sa.Column("t", sa.Time),
                    rows=[{"id": i, "d": (start + dt.timedelta(days=i)).date(), "ts": start + dt.timedelta(days=i),
                           "t": start.time()} for i in (1, 2)])
    span = dialect.span_seconds(table.c.ts)
    assert span is not None
    ts_steps = 2 if dialect.timestamps_shift_in_days else 2 * 86400
    query = sa.select(dialect.shift_time(table.c.d, sa.literal(2), "date"),
                      dialect.shift_time(table.c.ts, sa.literal(ts_steps), "datetime"),
                      dialect.shift_time(table.c.t, sa.literal(60), "time")).where(table.c.id == 1)
    with engine.connect() as conn:
        assert float(conn.execute(sa.select(span)).scalar_one()) == pytest.approx(86400, abs=1)
        day, stamp, clock = conn.execute(query).one()
    assert str(day)[:10] == "2025-03-03"
    assert str(stamp)[:19].replace("T", " ") == "2025-03-03 10:00:00"
    assert str(clock)[:8] == "10:01:00"


def test_fresh_values_are_deterministic(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    table = _create(engine, "fresh", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(20)),
                    sa.Column("b", sa.LargeBinary), rows=[{"id": 1, "v": "x", "b": b"\x01\x02"}])
    k = sa.literal(2)
    digest, made_uuid, made_bytes = (dialect.digest_text(table.c.v, k), dialect.fresh_uuid(table.c.v, k),
                                     dialect.fresh_bytes(table.c.b, k))
    assert made_bytes is not None and (digest is None) == (made_uuid is None)  # a UUID is made of the digest

    def twice(expression: sa.ColumnElement[Any]) -> Any:
        with engine.connect() as conn:
            first, again = (conn.execute(sa.select(expression)).scalar_one() for _ in range(2))
        assert first == again
        return first

    assert bytes(twice(made_bytes)) not in (b"", b"\x01\x02")
    if digest is not None and made_uuid is not None:
        assert len(twice(digest)) == 32
        assert uuid.UUID(str(twice(made_uuid))).version == 4


def test_plans_statistics_and_online_indexes(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    _create(engine, "planned", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(20)),
            rows=[{"id": i, "v": str(i)} for i in range(1, 21)])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # VACUUM, CONCURRENTLY
        assert conn.exec_driver_sql(dialect.explain_prefix + "SELECT * FROM planned WHERE v = '3'").all()
        for statement in (dialect.analyze_sql, dialect.settle_sql):
            conn.exec_driver_sql(statement.format(table="planned")).close()
        conn.exec_driver_sql(dialect.online_index_sql.format(name="ix_planned_v", table="planned", columns="v"))
    assert "ix_planned_v" in {ix["name"] for ix in sa.inspect(engine).get_indexes("planned")}


def test_the_calibration_fill_writes_n_rows(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE calib (id INTEGER PRIMARY KEY, payload VARCHAR(80), n INTEGER)")
        limit = dialect.recursion_limit_sql(1501)
        if limit:
            conn.exec_driver_sql(limit)
        conn.execute(sa.text(dialect.calibration_fill_sql), {"n": 1500})
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM calib").scalar_one() == 1500


def test_session_watching_queries_run(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    if dialect.session_id_sql is None:
        pytest.skip(f"{dialect.label} has no server sessions")
    with engine.connect() as conn:
        pid = int(conn.exec_driver_sql(dialect.session_id_sql).scalar_one())
        for sql in (dialect.blocked_sessions_sql, dialect.lock_waits_sql, dialect.blocking_sessions_sql):
            assert sql is not None
            assert conn.execute(sa.text(sql), {"pid": pid}).all() == []
    assert str(pid) in str(dialect.cancel_query_sql(pid))


def test_the_advisory_lock_is_held_by_one_session_and_names_its_holder(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    if dialect.advisory_lock_sql is None:
        pytest.skip(f"{dialect.label} locks a file instead")
    assert dialect.advisory_unlock_sql and dialect.lock_holder_sql and dialect.lock_note_sql
    key = {"key": dialect.advisory_lock_key("dbrunbook-test", engine.url.database or "")}
    with engine.connect() as holder, engine.connect() as other:
        for statement in dialect.long_session_sql():
            holder.exec_driver_sql(statement)
        assert holder.execute(sa.text(dialect.advisory_lock_sql), key).scalar() in (1, True)
        assert other.execute(sa.text(dialect.advisory_lock_sql), key).scalar() in (0, False)
        session = int(holder.exec_driver_sql(str(dialect.session_id_sql)).scalar_one())
        assert int(other.execute(sa.text(dialect.lock_holder_sql), key).one()[0]) == session
        note = dialect.lock_note_sql.format(note="/* dbrunbook-test */")
        holder.execute(sa.text(note), {"app": "dbrunbook-test", "gate": "dbrunbook-test-gate", "forever": 0})
        if dialect.gate_unlock_sql:
            holder.execute(sa.text(dialect.gate_unlock_sql), {"gate": "dbrunbook-test-gate"})
        assert holder.execute(sa.text(dialect.advisory_unlock_sql), key).scalar() in (1, True)


def test_strictness_picks_the_outcomes(live: tuple[Dialect, sa.Engine]) -> None:
    dialect, engine = live
    with engine.connect() as conn:
        strict = dialect.is_strict(conn)
    assert strict is False or dialect.sql_mode_sql is not None  # only a dialect with an SQL mode can be strict
    for problem, outcome in dialect.outcomes.items():
        expected = dialect.strict_outcomes.get(problem, outcome) if strict else outcome
        assert dialect.outcome(problem, strict) == expected
