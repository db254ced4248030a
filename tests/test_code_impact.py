"""Stage 06, application code impact: small project trees, then the stage on the demo of each dialect.

Expected findings are marked in the written files themselves (``expect: CI001``), so the
test checks every finding's file and line against the code, not against a copied list.
"""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook import load_metadata
from dbrunbook.core.results import load_result
from dbrunbook.errors import ConfigError
from dbrunbook.schema import diff, snapshot_metadata
from dbrunbook.stages import code_impact
from helpers.runs import run_stages

REPO = Path(__file__).resolve().parents[1]
_EXPECT = re.compile(r"expect: ((?:CI\d{3}\s*)+)")


def _v1() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(255)),
             sa.Column("fullname", sa.String(120)), sa.Column("country", sa.String(2), nullable=True),
             sa.Column("nickname", sa.String(40), nullable=True), sa.Column("legacy_notes", sa.Text))
    sa.Table("products", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("sku", sa.String(64)),
             sa.Column("title", sa.String(200)))
    sa.Table("orders", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")), sa.Column("total", sa.Numeric(12, 2)))
    sa.Table("customer", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("label", sa.String(50)))
    sa.Table("audit_log", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("message", sa.Text))
    return md


_MODELS = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str] = mapped_column(sa.String(120))
    country: Mapped[str] = mapped_column(sa.String(2), nullable=False)
    nickname: Mapped[str] = mapped_column(sa.String(40), nullable=False, default="")


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column("sku", sa.String(16))
    title: Mapped[str] = mapped_column(sa.String(200))


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    total: Mapped[float] = mapped_column(sa.Numeric(12, 2))
    currency: Mapped[str] = mapped_column(sa.String(3), nullable=False)


class Client(Base):
    __tablename__ = "clients"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(50))
'''

_LEGACY = '''
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class OldBase(DeclarativeBase):
    pass


class AuditLog(OldBase):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
'''

_VIEWS = '''
import sqlalchemy as sa
from .models import Order, Product, User
from .legacy import AuditLog

users = sa.table("users", sa.column("id"), sa.column("email"))


def notes(session):
    return session.query(User).filter(User.legacy_notes.is_not(None)).all()  # expect: CI001


def core_notes(conn):
    a = conn.execute(sa.select(users.c.legacy_notes)).all()  # expect: CI001
    b = conn.execute(sa.select(users.c["legacy_notes"])).all()  # expect: CI001
    return a, b, [row.legacy_notes for row in a]  # expect: CI001


def by_filter(session):
    return session.execute(sa.select(User).filter_by(legacy_notes="x")).all()  # expect: CI001


def raw(conn, uid):
    conn.execute(sa.text("SELECT fullname FROM users WHERE id = :id"), {"id": uid})  # expect: CI003
    conn.execute(sa.text(f"SELECT legacy_notes FROM users WHERE id = {uid}"))  # expect: CI001
    conn.execute(sa.text("SELECT label FROM customer"))  # expect: CI004
    conn.execute(sa.text("DELETE FROM audit_log"))  # expect: CI002
    conn.execute(sa.text("""
        SELECT u.email
        FROM users AS u
        WHERE u.legacy_notes LIKE %s
    """), ("x",))  # the line above: expect: CI001


def logs(session):
    return session.query(AuditLog).all()  # expect: CI002


def sign_up(session):
    session.add(User(email="a@b", name="A"))  # expect: CI005
    ok = User(email="a@b", name="A", country="DE")
    later = User(email="c@d", name="C")
    later.country = "FR"
    session.add_all([ok, later, Product(code="x" * 40, title="t")])  # expect: CI006


def order(conn):
    conn.execute(sa.insert(Order).values(user_id=1, total=3))  # expect: CI005
    conn.execute(sa.text("INSERT INTO users (email, name, country) VALUES ('x', 'y', 'DE')"))  # expect: CI005
'''

_QUERIES = '''-- weekly report
SELECT u.email,
       u.legacy_notes  -- expect: CI001
FROM users u;
INSERT INTO orders VALUES (1, 1, 9.5);  -- expect: CI007
INSERT INTO orders (user_id, total) VALUES (1, 2);  -- expect: CI005
UPDATE products SET sku = 'abc' WHERE id = 1;  -- expect: CI006
SELECT email, country FROM users;
'''

_CLEAN = '''
"""SELECT legacy_notes FROM users is what the old report did (a docstring, not code)."""
import sqlalchemy as sa
from .models import User

# User.legacy_notes was dropped; SELECT legacy_notes FROM users
LABEL = "legacy_notes"
OTHER = "SELECT legacy_notes FROM archive"
LOOKALIKE = "SELECT legacy_notes_v2, fullname_old FROM users"
PROSE = "Select the users who have legacy_notes"


class Report:
    legacy_notes_count = 0

    def f(self, row):
        return row.legacy_notes_count, User.email, User.country, self.legacy_notes_count


def ctes(conn):
    conn.execute(sa.text("WITH users AS (SELECT 1 AS legacy_notes) SELECT legacy_notes FROM users"))


def splat(data):
    return User(**data)


def update(session):
    session.execute(sa.update(User).values(country="DE"))


def sql_ok(conn):
    conn.execute(sa.text("INSERT INTO users (email, name, COUNTRY, nickname) VALUES ('a', 'b', 'c', 'd')"))
    return conn.execute(sa.text("SELECT email AS fullname FROM users ORDER BY fullname"))
'''

_UNRELATED = '''
def from_api(row):
    return row.legacy_notes, row["legacy_notes"], row.fullname
'''


def _expected(root: Path) -> set[tuple[str, str, int]]:
    found = set()
    for path in root.rglob("*"):
        if path.suffix in (".py", ".sql") and ".venv" not in path.parts:
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = _EXPECT.search(line)
                if m:
                    hit = n - 1 if "line above" in line else n
                    found |= {(code, path.relative_to(root).as_posix(), hit) for code in m.group(1).split()}
    return found


def _got(found):
    return {(f.code, f.evidence["file"], f.evidence["line"]) for f in found}


@pytest.fixture
def project(tmp_path):
    """A project whose package is uniquely named (it is imported), with its v1 -> v2 changes."""
    pkg = f"shop_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "proj"
    (root / pkg).mkdir(parents=True)
    (root / pkg / "__init__.py").write_text("")
    (root / pkg / "models.py").write_text(_MODELS)
    (root / pkg / "legacy.py").write_text(_LEGACY)
    (root / pkg / "views.py").write_text(_VIEWS)
    (root / "sql").mkdir()
    (root / "sql" / "queries.sql").write_text(_QUERIES)
    metadata = load_metadata(f"{pkg}.models:Base", root)
    result = diff(snapshot_metadata(_v1(), "sqlite"), snapshot_metadata(metadata, "sqlite"),
                  {"users.fullname": "users.name", "customer": "clients"})
    return root, pkg, metadata, result.changes


def _scan(root, pkg, metadata, changes, **kw):
    impact = code_impact.scan(root, changes, metadata=metadata, models=f"{pkg}.models:Base", dialect="sqlite", **kw)
    return impact, code_impact.findings(impact)


def test_every_kind_is_found_at_its_line(project):
    root, pkg, metadata, changes = project
    impact, found = _scan(root, pkg, metadata, changes)
    assert _got(found) == _expected(root)
    assert f"{pkg}/models.py" not in impact.scanned and impact.class_sources == ["models", "code"]
    assert impact.watch.classes["AuditLog"] == "audit_log"
    by_line = {(f.evidence["file"], f.evidence["line"]): f for f in found}
    insert = next(f for f in found if f.code == "CI005" and f.evidence["file"].endswith(".sql"))
    assert insert.object == "orders.currency" and insert.severity == "block" and "server default" in insert.fix
    sql_insert = next(f for f in found if f.code == "CI005" and "VALUES ('x'" in f.evidence["code"])
    assert sql_insert.object == "users.nickname"  # a Python-side default does not help raw SQL
    row = next(f for (file, _), f in by_line.items() if "row.legacy_notes" in f.evidence["code"])
    assert row.severity == "warn" and row.message.endswith("(matched by name)") and row.evidence["match"] == "name"
    assert all(f.severity == "block" for f in found if f.evidence["match"] != "name" and f.code != "CI006")
    assert all("\n" not in f.message and f.message.startswith(f.evidence["file"] + ":") for f in found)
    renamed = next(f for f in found if f.code == "CI003")
    assert renamed.evidence["new_name"] == "name" and renamed.object == "users.fullname"
    assert {r["where"] for r in code_impact.table(found)} == {f"{f}:{n}" for _, f, n in _expected(root)}
    assert json.loads(json.dumps(impact.to_json()))["references"]


def test_no_false_alarm_on_look_alikes_comments_and_unrelated_tables(project):
    root, pkg, metadata, changes = project
    for name in ("views.py", "legacy.py"):
        (root / pkg / name).unlink()
    (root / "sql" / "queries.sql").unlink()
    (root / pkg / "clean.py").write_text(_CLEAN)
    (root / pkg / "unrelated.py").write_text(_UNRELATED)
    impact, found = _scan(root, pkg, metadata, changes)
    assert found == [], [f.message for f in found]
    assert {f"{pkg}/clean.py", f"{pkg}/unrelated.py"} <= set(impact.scanned)
    assert "no code uses" in code_impact.summary(impact, found)


def test_skips_alembic_virtualenvs_runs_excluded_large_and_unreadable_files(project):
    root, pkg, metadata, changes = project
    bad = "def f(User):\n    return User.legacy_notes\n"
    (root / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    for folder in ("migrations/versions", ".venv/lib", "env2", "runs/r1", "scripts", "node_modules/x", "big"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "code.py").write_text(bad)
    (root / "env2" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / "big" / "code.py").write_text(bad + "#" * 5000)
    (root / "broken.py").write_text("def (:\n")
    (root / "latin.sql").write_bytes("SELECT legacy_notes FROM users -- caf\xe9".encode("latin-1"))
    (root / "nul.py").write_bytes(b"x = 1\x00\n")
    impact, found = _scan(root, pkg, metadata, changes, exclude=["scripts"], max_bytes=4000,
                          alembic_config=str(root / "alembic.ini"))
    reasons = {s["file"]: s["reason"] for s in impact.skipped}
    assert reasons["migrations/"] == "Alembic scripts" and reasons["env2/"] == "virtualenv"
    assert reasons["scripts/"] == "excluded" and reasons["big/code.py"] == "larger than 4000 bytes"
    assert reasons["latin.sql"] == "not UTF-8 text" and reasons["broken.py"].startswith("not valid Python")
    assert reasons["nul.py"].startswith("not valid Python")
    assert reasons[f"{pkg}/models.py"] == "the models (the new schema)"
    assert not any(s.startswith((".venv", "runs", "node_modules", "migrations", "env2", "scripts", "big"))
                   for s in impact.scanned)
    assert _got(found) == _expected(root)  # only the marked files produce findings


def test_source_dirs_limit_the_scan_and_must_be_inside_the_project(project):
    root, pkg, metadata, changes = project
    impact, found = _scan(root, pkg, metadata, changes, source_dirs=["sql"])
    assert impact.scanned == ["sql/queries.sql"] and {f.evidence["file"] for f in found} == {"sql/queries.sql"}
    for bad in ("nope", ".."):
        with pytest.raises(ConfigError, match="source_dirs"):
            _scan(root, pkg, metadata, changes, source_dirs=[bad])


def test_without_models_classes_come_from_tablename_or_by_name(project):
    root, pkg, metadata, changes = project
    (root / pkg / "models.py").unlink()
    (root / pkg / "guess.py").write_text("def f(Customer):\n    return Customer.label\n")
    impact = code_impact.scan(root, changes, dialect="sqlite")
    found = code_impact.findings(impact)
    assert impact.class_sources == ["code"]
    guessed = [f for f in found if f.evidence["file"].endswith("guess.py")]
    assert [(f.code, f.severity, f.evidence["match"]) for f in guessed] == [("CI004", "warn", "name")]
    matches = {(f.code, f.evidence["code"].split("#")[0].strip(), f.evidence["match"], f.severity) for f in found}
    assert ("CI002", "return session.query(AuditLog).all()", "model", "block") in matches  # __tablename__ in code
    assert ("CI001", "return session.query(User).filter(User.legacy_notes.is_not(None)).all()", "name",
            "warn") in matches  # no class User anywhere any more: by name


def test_hostile_names(tmp_path):
    before, after = sa.MetaData(), sa.MetaData()
    for md in (before, after):
        cols = [sa.Column("id", sa.Integer, primary_key=True)]
        if md is before:
            cols.append(sa.Column('note "x"', sa.Text))
        sa.Table("user data", md, *cols)
    sa.Table("select", before, sa.Column("id", sa.Integer, primary_key=True))
    changes = diff(snapshot_metadata(before, "postgresql"), snapshot_metadata(after, "postgresql")).changes
    root = tmp_path / "p r\u00f8j"
    root.mkdir()
    (root / "d\u00e9j\u00e0 vu.py").write_text(
        "import sqlalchemy as sa\nt = sa.table('user data')\n"
        "def f(conn):\n"
        "    conn.execute(sa.select(t.c['note \"x\"']))  # expect: CI001\n"
        "    conn.execute(sa.text('SELECT \"note \"\"x\"\"\" FROM \"user data\"'))  # expect: CI001\n"
        "    conn.execute(sa.text('SELECT \"NOTE \"\"x\"\"\" FROM \"user data\"'))\n"
        "    conn.execute(sa.text('SELECT * FROM \"select\"'))  # expect: CI002\n"
        "    conn.execute(sa.text('SELECT * FROM \"Select\"'))\n")
    impact = code_impact.scan(root, changes, dialect="postgresql")
    found = code_impact.findings(impact)
    assert _got(found) == _expected(root)
    assert {f.object for f in found} == {'user data.note "x"', "select"}


@pytest.mark.parametrize("old, new, narrows", [
    ("VARCHAR(64)", "VARCHAR(16)", True), ("VARCHAR(16)", "VARCHAR(64)", False), ("TEXT", "VARCHAR(10)", True),
    ("VARCHAR(10)", "TEXT", False), ("BIGINT", "INTEGER", True), ("INTEGER", "BIGINT", False),
    ("NUMERIC(12, 2)", "NUMERIC(10, 2)", True), ("NUMERIC(10, 2)", "NUMERIC(12, 2)", False),
    ("NUMERIC(10, 2)", "NUMERIC(10, 0)", True), ("VARCHAR(20)", "INTEGER", True), ("DATETIME", "DATE", True),
])
def test_narrows(old, new, narrows):
    assert code_impact.narrows(old, new) is narrows


def test_rules_are_registered_once_with_docs():
    rules = list(code_impact.registry)
    assert [r.code for r in rules] == [f"CI00{i}" for i in range(1, 8)]
    assert all(r.summary and r.why and r.safe for r in rules)
    docs = (REPO / "docs" / "code-impact.md").read_text()
    assert all(r.code in docs and r.name in docs for r in rules)


def _demo_lines() -> dict[str, list[int]]:
    source = (REPO / "dbrunbook" / "_templates" / "demo" / "demo_app" / "reports.py").read_text()
    lines = source.splitlines()
    return {"CI001": [n for n, line in enumerate(lines, 1) if re.search(r"\b(u|User)\.legacy_notes\b", line)],
            "CI005": [n for n, line in enumerate(lines, 1) if "User(email" in line or "INSERT INTO users" in line]}


def test_demo_stage_blocks_on_the_reports_module(demo, dialect, tmp_path):
    run, result = run_stages(demo.target(), tmp_path / "runs", ["06"])
    assert [s.status for s in run.stages] == ["block"], run.stages
    expected = _demo_lines()
    assert len(expected["CI001"]) == 3 and len(expected["CI005"]) == 2
    got = {code: sorted(f.evidence["line"] for f in result.findings if f.code == code) for code in expected}
    assert got == expected
    assert {f.evidence["file"] for f in result.findings} == {"demo_app/reports.py"}
    assert {f.object for f in result.findings} == {"users.legacy_notes", "users.country"}
    assert result.data["changes_from"] == "computed" and result.data["files_scanned"] >= 2
    saved = json.loads((run.path / result.data["references"]).read_text())
    assert {r["line"] for r in saved["references"]} == set(expected["CI001"])
    assert "demo_app/models.py" not in saved["scanned"] and "demo_app/reports.py" in saved["scanned"]


def test_stage_reads_the_changes_recorded_by_stage_01(sqlite_demo, tmp_path):
    """With a stage-01 sidecar in the run folder, its changes are used (here without the drop) and not recomputed."""
    import papermill

    from dbrunbook.core.db import make_engine
    from dbrunbook.core.results import StageResult, record
    from dbrunbook.stages import schema_analysis as analysis

    project = sqlite_demo
    engine = make_engine(project.db)
    try:
        changes = analysis.compare(engine, load_metadata(project.models, project.path))
    finally:
        engine.dispose()
    kept = [c.to_json() for c in changes if c.op != "remove_column"]
    run_dir = tmp_path / "run"
    record(StageResult("01-schema-analysis", "block", "", data={"changes": kept}), run_dir)
    template = REPO / "runbooks" / "06-code-impact.ipynb"
    papermill.execute_notebook(str(template), str(tmp_path / "06.ipynb"), kernel_name="python3", progress_bar=False,
                               parameters={"db": project.db, "models": project.models, "run_dir": str(run_dir),
                                           "alembic_config": str(project.path / "alembic.ini"),
                                           "project_dir": str(project.path)})
    result = load_result(run_dir, "06-code-impact")
    assert result.data["changes_from"] == "01-schema-analysis" and result.verdict == "block"
    assert sorted(f.evidence["line"] for f in result.findings) == _demo_lines()["CI005"]
