"""N+1 detection: the pytest plugin counts statements per test while stage 07 runs the user's tests.

A small SQLAlchemy application with its own pytest suite is written to tmp_path and run through
``run_tests`` against real databases; the counts come from the plugin, never from this file.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import pytest
import sqlalchemy as sa

from dbrunbook.core import contract
from dbrunbook.core.evidence import TestsEvidence
from dbrunbook.demo import repair_demo_data
from dbrunbook.errors import UsageError
from dbrunbook.stages import tests as querycount
from dbrunbook.stages.dev_rehearsal import environment_for_tests, run_tests
from dbrunbook.stages.performance import n_plus_one_findings
from helpers.runs import run_stages

LOOKUPS = 20

_APP = textwrap.dedent('''
    import os
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

    class Base(DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = "qc_author"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(50))

    def engine():
        return sa.create_engine(os.environ["DATABASE_URL"])

    def names_one_by_one(session: Session, ids):
        return [session.execute(sa.select(Author).where(Author.id == i)).scalar_one().name for i in ids]

    def names_at_once(session: Session, ids):
        return [a.name for a in session.execute(sa.select(Author).where(Author.id.in_(ids)))
                .scalars()]
''')

_TESTS = textwrap.dedent(f'''
    import pytest
    from sqlalchemy.orm import Session
    import app

    @pytest.fixture
    def db():
        engine = app.engine()
        app.Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([app.Author(id=i, name=f"a{{i}}") for i in range(1, {LOOKUPS} + 1)])
            session.commit()
        yield engine
        app.Base.metadata.drop_all(engine)
        engine.dispose()

    def test_n_plus_one(db):
        with Session(db) as session:
            assert len(app.names_one_by_one(session, range(1, {LOOKUPS} + 1))) == {LOOKUPS}

    def test_one_in_query(db):
        with Session(db) as session:
            assert len(app.names_at_once(session, list(range(1, {LOOKUPS} + 1)))) == {LOOKUPS}
''')


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    (folder / "tests").mkdir(parents=True)
    (folder / "app.py").write_text(_APP)
    (folder / "tests" / "test_app.py").write_text(_TESTS)
    (folder / "tests" / "test_broken.py").write_text("def test_broken():\n    assert 1 == 2\n")
    # pins pytest's rootdir to the project, away from this repository's configuration
    (folder / "pytest.ini").write_text("[pytest]\npythonpath = .\naddopts = -p no:cacheprovider\n")
    return folder


def _url(dialect, db_url, tmp_path):
    return sa.make_url(f"sqlite:///{tmp_path / 'app.db'}" if dialect == "sqlite" else db_url)


def _pytest(target=""):
    return f"{sys.executable} -m pytest -q {target}".strip()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_the_n_plus_one_test_is_flagged_and_the_in_query_is_not(project, dialect, db_url, tmp_path):
    run = run_tests(_pytest("tests/test_app.py"), _url(dialect, db_url, tmp_path), cwd=project)
    assert run.passed, run.output
    counts = {c.test: c for c in querycount.counts_from(run.query_counts)}
    assert set(counts) == {"tests/test_app.py::test_n_plus_one", "tests/test_app.py::test_one_in_query"}
    loop, single = counts["tests/test_app.py::test_n_plus_one"], counts["tests/test_app.py::test_one_in_query"]
    shape, n = loop.worst_select()
    assert n == LOOKUPS and "qc_author.id = ?" in shape and loop.statements > LOOKUPS
    assert single.worst_select()[1] < 10
    found = querycount.findings(counts.values())
    assert [(f.code, f.severity, f.object, f.evidence["count"]) for f in found] == [
        ("QC001", "warn", "tests/test_app.py::test_n_plus_one", LOOKUPS)]
    assert "selectinload" in found[0].fix and str(LOOKUPS) in found[0].message
    rows = querycount.table(counts.values())
    assert rows[0]["test"].endswith("test_n_plus_one") and rows[0]["count"] == LOOKUPS


def test_the_plugin_changes_no_exit_code_and_logs_nothing_when_off(project, tmp_path):
    url = _url("sqlite", "", tmp_path)
    on, off = (run_tests(_pytest("tests"), url, cwd=project, count_queries=flag) for flag in (True, False))
    assert not on.passed and not off.passed and on.returncode == off.returncode == 1
    assert "test_broken" in on.output and "1 failed, 2 passed" in on.output
    assert {r["test"].split("::")[1] for r in on.query_counts} == {"test_broken", "test_n_plus_one",
                                                                  "test_one_in_query"}
    assert off.query_counts is None
    assert "DBRUNBOOK_QUERY_LOG" not in environment_for_tests(url)


def test_a_command_that_is_not_pytest_runs_unchanged(project, tmp_path):
    run = run_tests(f"{sys.executable} -c \"print('plain script')\"", _url("sqlite", "", tmp_path), cwd=project)
    assert run.passed and run.returncode == 0 and run.output.strip() == "plain script"
    assert run.query_counts is None


def test_the_users_pythonpath_and_addopts_are_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", "/users/own")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-x")
    env = environment_for_tests(sa.make_url("sqlite://"), tmp_path / "log.jsonl")
    assert env["PYTHONPATH"].split(":") == [str(querycount.PLUGIN_DIR), "/users/own"]
    assert env["PYTEST_ADDOPTS"] == "-x -p dbrunbook_querycount"
    assert env["DBRUNBOOK_QUERY_LOG"] == str(tmp_path / "log.jsonl")


def _plugin():
    spec = importlib.util.spec_from_file_location("qc_plugin", querycount.PLUGIN_DIR / "dbrunbook_querycount.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("sql, shape", [
    ("SELECT a.id FROM a\n  WHERE a.id = ?", "SELECT a.id FROM a WHERE a.id = ?"),
    ("SELECT * FROM t1 WHERE x IN (?, ?, ?) AND y = 'it''s' AND z > 3.5 LIMIT 10",
     "SELECT * FROM t1 WHERE x IN (?) AND y = ? AND z > ? LIMIT ?"),
    ("SELECT x::text FROM t WHERE id = %(id_1)s AND y IN (%(y_1_1)s, %(y_1_2)s)",
     "SELECT x::text FROM t WHERE id = ? AND y IN (?)"),
    ("select * from t where id = $1 and name = :name or k = %s", "select * from t where id = ? and name = ? or k = ?"),
    ("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)", "INSERT INTO t (a, b) VALUES (?)"),
    ("SELECT anon_1.c2 FROM (SELECT c2 FROM t WHERE q IN (SELECT y FROM z WHERE w = 4)) AS anon_1",
     "SELECT anon_1.c2 FROM (SELECT c2 FROM t WHERE q IN (SELECT y FROM z WHERE w = ?)) AS anon_1"),
])
def test_shapes_normalise_values_not_names(sql, shape):
    assert _plugin().shape(sql) == shape


def test_only_repeated_selects_over_the_threshold_are_suspects(tmp_path):
    log = tmp_path / "counts.jsonl"
    lines = [{"test": "t::reads", "statements": 30, "shapes": {"SELECT a FROM t WHERE id = ?": 12}},
             {"test": "t::writes", "statements": 30, "shapes": {"INSERT INTO t (a) VALUES (?)": 25}}]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"test": "cut sh')
    counts = querycount.read_log(log)
    assert [c.test for c in counts] == ["t::reads", "t::writes"]
    assert [s.test for s in querycount.suspects(counts)] == ["t::reads"]
    assert querycount.suspects(counts, threshold=13) == []
    with pytest.raises(UsageError, match="at least 2"):
        querycount.findings(counts, threshold=1)
    with pytest.raises(UsageError, match="cannot read"):
        querycount.read_log(tmp_path / "missing.jsonl")


_DEMO_TESTS = textwrap.dedent('''
    import os
    import sqlalchemy as sa

    def test_orders_per_user():
        engine = sa.create_engine(os.environ["DATABASE_URL"])
        with engine.connect() as conn:
            users = conn.execute(sa.text("SELECT id FROM users ORDER BY id LIMIT 12")).scalars().all()
            for user in users:
                conn.execute(sa.text("SELECT id FROM orders WHERE user_id = :u"), {"u": user}).all()
        engine.dispose()
''')


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_stage_07_records_the_counts_and_stage_08_reports_them(demo, tmp_path):
    repair_demo_data(demo.db)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_demo.py").write_text(_DEMO_TESTS)
    (suite / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    run, result = run_stages(demo.target(), tmp_path / "runs", ["07"], {"test_cmd": _pytest(str(suite))})
    assert result.verdict == "warn", result.findings
    assert [f.code for f in result.findings] == ["RH020", "QC001"]
    assert result.data["n_plus_one"][0]["count"] == 12 and "orders" in result.data["n_plus_one"][0]["shape"]
    assert "query_counts" not in result.data["tests"] and result.data["query_counts_tests"] == 1
    logged = querycount.read_log(run.path / result.data["query_counts"])
    assert logged[0].worst_select()[1] == 12
    evidence = contract.load(run.path, TestsEvidence)
    assert evidence is not None
    reported = n_plus_one_findings(evidence)
    assert reported[0].code == "PF009" and reported[0].message.startswith("N+1: 1 suspect(s) in stage 07 (QC001)")
    evidence.n_plus_one = []
    assert "none found over 1 tests" in n_plus_one_findings(evidence)[0].message
    assert "not measured" in n_plus_one_findings(None)[0].message
