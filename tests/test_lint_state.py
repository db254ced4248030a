"""Lint follows the schema statement by statement: columns, new tables, batch copies and renames.

A migration over many revisions adds, recreates and renames; each rule must judge a statement
against the schema as it is at that statement, not against the target before the migration nor
against everything the migration ever creates.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.lint import LintConfig, lint_sql, parse_sql
from helpers.lint_project import BASE
from helpers.projects import write_project

TARGET = {("t", "id"): {"type": "int", "not_null": True}, ("t", "a"): {"type": "varchar(10)", "not_null": False},
          ("t", "b"): {"type": "text", "not_null": False}}


def _found(sql: str, dialect: str, *codes: str, known=None, downgrade=None) -> list[tuple[str, str, int]]:
    report = lint_sql(sql, dialect, LintConfig(include=codes), source="case.sql", downgrade_sql=downgrade,
                      known_columns=TARGET if known is None else known)
    return [(f.code, f.object, f.evidence.get("statement")) for f in report.findings]


def _columns(state, table):
    return sorted(state.tables[table].columns) if table in state.tables else None


# --- the replayed state -----------------------------------------------------------------------------

def test_state_follows_each_statement_from_the_targets_columns():
    migration = parse_sql(
        "ALTER TABLE t ADD COLUMN c int;"                      # 1
        "ALTER TABLE t RENAME COLUMN a TO a2;"                 # 2
        "ALTER TABLE t DROP COLUMN b;"                         # 3
        "ALTER TABLE t ALTER COLUMN a2 TYPE varchar(40);"      # 4
        "CREATE TABLE n (x int NOT NULL, y text);"             # 5
        "ALTER TABLE n RENAME TO n2;"                          # 6
        "ALTER TABLE t RENAME TO u;"                           # 7
        "DROP TABLE n2;"                                       # 8
        "SELECT 1", "postgresql")
    migration.known_columns = dict(TARGET)
    at = {s.index: migration.state_before(s) for s in migration.statements}
    assert _columns(at[1], "t") == ["a", "b", "id"]
    assert _columns(at[2], "t") == ["a", "b", "c", "id"]
    assert _columns(at[3], "t") == ["a2", "b", "c", "id"]
    assert migration.column_before(migration.statements[3], "t", "a2")["type"] == "varchar(10)"
    assert migration.column_before(migration.statements[4], "t", "a2")["type"] == "varchar(40)"
    assert at[6].is_new("n") and not at[6].is_new("t")
    assert _columns(at[7], "n2") == ["x", "y"] and at[7].is_new("n2")
    assert _columns(at[8], "u") == ["a2", "c", "id"] and "t" not in at[8].tables
    assert set(migration.final_state().tables) == {"u"}
    assert migration.final_state().tables["u"].created == {"c"}  # the others are the target's


def test_batch_copy_of_an_existing_table_holds_its_rows_and_of_a_new_table_does_not():
    sql = ("CREATE TABLE _alembic_tmp_t (id INT NOT NULL, a VARCHAR(10));"
           "INSERT INTO _alembic_tmp_t (id, a) SELECT t.id, t.a FROM t;"
           "DROP TABLE t; ALTER TABLE _alembic_tmp_t RENAME TO t;"
           "CREATE TABLE n (id INT);"
           "CREATE TABLE _alembic_tmp_n (id INT, m INT);"
           "INSERT INTO _alembic_tmp_n (id) SELECT n.id FROM n;"
           "DROP TABLE n; ALTER TABLE _alembic_tmp_n RENAME TO n; SELECT 1")
    migration = parse_sql(sql, "sqlite")
    migration.known_columns = dict(TARGET)
    last = migration.statements[-1]
    assert not migration.is_new(migration.statements[1], "_alembic_tmp_t")  # the copy holds the old rows
    assert not migration.is_new(last, "t") and migration.is_new(last, "n")
    assert _columns(migration.state_before(last), "t") == ["a", "id"]
    assert migration.state_before(last).tables["n"].created == {"id", "m"}


# --- item 1: DS002 against the table as it is at the batch ------------------------------------------

def test_batch_drop_names_only_what_the_copy_leaves_out_at_that_point():
    sql = ("CREATE TABLE _alembic_tmp_t (id INT NOT NULL, a VARCHAR(10));"           # drops b
           "INSERT INTO _alembic_tmp_t (id, a) SELECT t.id, t.a FROM t;"
           "DROP TABLE t; ALTER TABLE _alembic_tmp_t RENAME TO t;"
           "ALTER TABLE t ADD COLUMN later INT;"                                     # a later revision
           "CREATE TABLE _alembic_tmp_t (id INT NOT NULL, a VARCHAR(10), later INT);"  # keeps everything
           "INSERT INTO _alembic_tmp_t (id, a, later) SELECT t.id, t.a, t.later FROM t;"
           "DROP TABLE t; ALTER TABLE _alembic_tmp_t RENAME TO t")
    assert _found(sql, "sqlite", "DS002") == [("DS002", "t.b", 1)]
    # Without the target's columns lint knows only what the migration did: still no false drop.
    assert _found(sql, "sqlite", "DS002", known={}) == []


def test_batch_rename_is_a_rename_not_a_drop():
    sql = ("CREATE TABLE _alembic_tmp_t (id INT NOT NULL, label VARCHAR(10), b TEXT);"
           "INSERT INTO _alembic_tmp_t (id, label, b) SELECT t.id, t.a, t.b FROM t;"
           "DROP TABLE t; ALTER TABLE _alembic_tmp_t RENAME TO t")
    assert _found(sql, "sqlite", "DS002", "BC002") == [("BC002", "t.a", 1)]


def test_batch_without_a_column_by_column_copy_compares_with_the_columns_at_that_point():
    sql = ("ALTER TABLE t ADD COLUMN c INT;"
           "CREATE TABLE _alembic_tmp_t (id INT NOT NULL, a VARCHAR(10), c INT);"
           "INSERT INTO _alembic_tmp_t SELECT * FROM t;"
           "DROP TABLE t; ALTER TABLE _alembic_tmp_t RENAME TO t")
    assert _found(sql, "sqlite", "DS002") == [("DS002", "t.b", 2)]


@pytest.mark.parametrize("code,dialect,sql,expected", [
    # the second change narrows what the first widened: judged against varchar(20), not the target's varchar(10)
    ("LK002", "postgresql",
     "ALTER TABLE t ALTER COLUMN a TYPE varchar(20); ALTER TABLE t ALTER COLUMN a TYPE varchar(15)",
     [("LK002", "t.a", 2)]),
    # NOT NULL dropped, then added back: the second statement adds NOT NULL to a nullable column
    ("MF001", "mariadb", "ALTER TABLE t MODIFY id INT NULL; ALTER TABLE t MODIFY id INT NOT NULL",
     [("MF001", "t.id", 2)]),
    # an enum value added by the migration and removed again
    ("DS004", "mariadb", "ALTER TABLE t MODIFY e ENUM('x','y','z'); ALTER TABLE t MODIFY e ENUM('x','y')",
     [("DS004", "t.e", 2)]),
    # the type is already BIGINT when NOT NULL is added: in place, not a copy
    ("LK010", "mariadb", "ALTER TABLE t MODIFY id BIGINT NOT NULL; ALTER TABLE t MODIFY id BIGINT NULL",
     [("LK010", "t.id", 1)]),
])
def test_rules_compare_with_the_definition_at_that_statement(code, dialect, sql, expected):
    known = {**TARGET, ("t", "e"): {"type": "enum('x','y')", "not_null": False}}
    assert _found(sql, dialect, code, known=known) == expected


# --- item 2: what the migration created is new and empty --------------------------------------------

NEW_TABLE_SETUP = "CREATE TABLE t (id int NOT NULL, a varchar(10), b text, p int); "


@pytest.mark.parametrize("code,dialect,sql", [
    ("LK003", "postgresql", "CREATE INDEX ix ON t (a)"),
    ("LK004", "postgresql", "CREATE INDEX ix ON t (a); DROP INDEX ix"),
    ("LK005", "postgresql", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (p) REFERENCES p (id)"),
    ("LK006", "postgresql", "ALTER TABLE t ADD CONSTRAINT ck CHECK (p > 0)"),
    ("LK007", "postgresql", "ALTER TABLE t ADD CONSTRAINT uq UNIQUE (a)"),
    ("LK001", "postgresql", "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid()"),
    ("LK002", "postgresql", "ALTER TABLE t ALTER COLUMN a TYPE integer USING a::integer"),
    ("MF001", "postgresql", "ALTER TABLE t ALTER COLUMN a SET NOT NULL"),
    ("MF002", "postgresql", "ALTER TABLE t ADD COLUMN d int NOT NULL"),
    ("LK008", "postgresql", "ALTER TABLE t DROP CONSTRAINT x"),
    ("LK010", "mariadb", "ALTER TABLE t MODIFY p BIGINT"),
    ("BC001", "postgresql", "ALTER TABLE t RENAME TO u"),
    ("BC002", "postgresql", "ALTER TABLE t RENAME a TO a2"),
    ("BC002", "mariadb", "ALTER TABLE t CHANGE a a2 VARCHAR(10)"),
    ("DS001", "postgresql", "DROP TABLE t"),
    ("DS002", "postgresql", "ALTER TABLE t DROP COLUMN b"),
    ("DS003", "postgresql", "TRUNCATE t"),
    ("LK011", "sqlite", "CREATE TABLE _alembic_tmp_t (id INT NOT NULL, a VARCHAR(10), b TEXT, p INT);"
                        "INSERT INTO _alembic_tmp_t (id, a, b, p) SELECT t.id, t.a, t.b, t.p FROM t;"
                        "DROP TABLE t; ALTER TABLE _alembic_tmp_t RENAME TO t"),
])
def test_rules_stay_silent_on_a_table_the_migration_created(code, dialect, sql):
    existing = _found(sql, dialect, code)
    assert [c for c, *_ in existing] == [code]  # on the target's table t the rule fires
    assert _found(NEW_TABLE_SETUP + sql, dialect, code, known={}) == []


def test_a_real_drop_before_a_later_batch_of_the_same_name_is_reported():
    sql = ("DROP TABLE t; CREATE TABLE t (id INT);"
           "CREATE TABLE _alembic_tmp_t (id INT, c INT); INSERT INTO _alembic_tmp_t (id) SELECT t.id FROM t;"
           "DROP TABLE t; ALTER TABLE _alembic_tmp_t RENAME TO t")
    assert _found(sql, "sqlite", "DS001", "DS002") == [("DS001", "t", 1)]


def test_a_table_filled_from_an_existing_one_is_not_new():
    sql = ("CREATE TABLE t2 (id int, a varchar(10)); INSERT INTO t2 (id, a) SELECT t.id, t.a FROM t;"
           "CREATE INDEX ix ON t2 (a); INSERT INTO t2 (id) VALUES (1)")
    assert _found(sql, "postgresql", "LK003") == [("LK003", "t2", 3)]
    seeded = ("CREATE TABLE t2 (id int, a varchar(10)); INSERT INTO t2 (id, a) VALUES (1, 'x');"
              "CREATE INDEX ix ON t2 (a)")
    assert _found(seeded, "postgresql", "LK003") == []


def test_index_and_column_added_by_the_migration_to_an_existing_table():
    # The index is on the target's table: dropping it locks that table, built by the migration or not.
    assert _found("CREATE INDEX CONCURRENTLY ix ON t (a); DROP INDEX ix", "postgresql", "LK004") == [("LK004", "ix", 2)]
    # A column the migration added is used by no running code: renaming it breaks nobody.
    assert _found("ALTER TABLE t ADD COLUMN c int; ALTER TABLE t RENAME COLUMN c TO d", "postgresql", "BC002") == []
    assert _found("ALTER TABLE t RENAME COLUMN a TO d", "postgresql", "BC002") == [("BC002", "t.a", 1)]


# --- item 3: RENAME without COLUMN ---------------------------------------------------------------------

@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_rename_without_the_column_keyword_is_a_column_rename(dialect):
    action = parse_sql("ALTER TABLE t RENAME a TO a2", dialect).statements[0].actions[0]
    assert (action.kind, action.table, action.column, action.details["to"]) == ("rename_column", "t", "a", "a2")
    table = parse_sql("ALTER TABLE t RENAME TO u", dialect).statements[0].actions[0]
    assert (table.kind, table.table, table.details["to"]) == ("rename_table", "t", "u")
    assert _found("ALTER TABLE t RENAME a TO a2", dialect, "BC001", "BC002") == [("BC002", "t.a", 1)]


def test_column_rename_without_column_keyword_is_undone_by_its_downgrade():
    up = "ALTER TABLE jobs RENAME function_fullname TO job_name"
    known = {("jobs", "function_fullname"): {"type": "varchar(500)"}}
    back = "ALTER TABLE jobs RENAME job_name TO function_fullname"
    assert _found(up, "postgresql", "RB002", known=known, downgrade=back) == []
    assert _found(up, "postgresql", "RB002", known=known, downgrade="SELECT 1; ALTER TABLE jobs ADD COLUMN x int") \
        == [("RB002", "jobs.function_fullname", 1)]


# --- real capture: an Alembic history with batch operations on SQLite -----------------------------------

BATCH_NULLABLE = '''
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"


def upgrade():
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("email", existing_type=sa.String(100), nullable=False)


def downgrade():
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("email", existing_type=sa.String(100), nullable=True)
'''

ADD_PHONE = '''
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"


def upgrade():
    op.add_column("accounts", sa.Column("phone", sa.String(20)))
    op.create_table("audit", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("what", sa.String(20)))


def downgrade():
    op.drop_table("audit")
    op.drop_column("accounts", "phone")
'''

BATCH_DROP = '''
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"


def upgrade():
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("notes")
        batch.alter_column("name", new_column_name="display_name", existing_type=sa.String(50))
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("what")


def downgrade():
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("what", sa.String(20)))
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("display_name", new_column_name="name", existing_type=sa.String(50))
        batch.add_column(sa.Column("notes", sa.Text()))
'''


def test_sqlite_history_of_batch_revisions_is_judged_at_each_revision(tmp_path):
    from alembic.config import Config

    from dbrunbook.alembic_ops.migration import apply_upgrade
    from dbrunbook.lint.source import lint_revisions

    url = f"sqlite:///{tmp_path / 'app.db'}"
    target = write_project(tmp_path / "p", url, {"0001_base.py": BASE, "0002_nullable.py": BATCH_NULLABLE,
                                                 "0003_phone.py": ADD_PHONE, "0004_drop.py": BATCH_DROP})
    assert apply_upgrade(Config(target.alembic_config), url, "0001").ok
    report = lint_revisions(target, "")
    found = {(f.code, f.object) for f in report.findings if f.code in ("DS001", "DS002", "BC002", "LK011")}
    # 0002's copy of accounts predates phone (0003): phone is not dropped there; notes is dropped in 0004;
    # name is renamed, not dropped; audit is new, so neither its recreation nor its dropped column count.
    assert found == {("LK011", "accounts"), ("DS002", "accounts.notes"), ("BC002", "accounts.name")}
    assert sum(f.code == "LK011" for f in report.findings) == 2


# --- real history: MLflow's migrations on SQLite -------------------------------------------------------

MLFLOW_START = "2d6e25af4d3e"


def _mlflow_database(url: str, revision: str, capture: list[str] | None = None) -> None:
    """Bring a fresh SQLite database to ``revision`` with MLflow's own scripts, as MLflow does.

    With ``capture``, the database is first brought to :data:`MLFLOW_START` and the statements of
    the upgrade from there to ``revision`` are appended to it.
    """
    import mlflow
    from alembic import command
    from alembic.config import Config
    from mlflow.store.tracking.dbmodels.initial_models import Base

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(mlflow.__file__).parent / "store" / "db_migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    engine = sa.create_engine(url)
    try:
        Base.metadata.create_all(engine)  # MLflow's first revision alters tables its initial models create
        if capture is None:
            command.upgrade(cfg, revision)
            return
        command.upgrade(cfg, MLFLOW_START)

        def record(conn, cursor, statement, parameters, context, executemany):
            if not statement.lstrip().upper().startswith(("PRAGMA", "SELECT")):
                capture.append(statement)

        sa.event.listen(engine, "before_cursor_execute", record)
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn  # MLflow's env.py runs on the connection it is handed
            command.upgrade(cfg, revision)
            conn.commit()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def mlflow_history(tmp_path_factory):
    """MLflow's upgrade SQL from 2d6e25af4d3e to head on SQLite, the target's columns there, and the head schema."""
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow is not installed (pip install -e '.[test]')")
    from dbrunbook.core.config import Target
    from dbrunbook.lint.source import known_columns

    tmp = tmp_path_factory.mktemp("mlflow")
    start = f"sqlite:///{tmp / 'start.db'}"
    _mlflow_database(start, MLFLOW_START)
    known = known_columns(Target.from_url(start))
    # render_revisions cannot be used here: reversibility.operations_sql raises on a revision of
    # this history that reflects a table offline, so the SQL is captured as SQLite lint captures it.
    statements: list[str] = []
    _mlflow_database(f"sqlite:///{tmp / 'captured.db'}", "head", capture=statements)
    head_url = f"sqlite:///{tmp / 'head.db'}"
    _mlflow_database(head_url, "head")
    engine = sa.create_engine(head_url)
    try:
        inspector = sa.inspect(engine)
        head = {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}
    finally:
        engine.dispose()
    head.pop("alembic_version", None)
    return "".join(s.strip() + ";\n\n" for s in statements), known, head


def test_mlflow_history_drops_no_column_the_head_schema_still_has(mlflow_history):
    sql, known, head = mlflow_history
    report = lint_sql(sql, "sqlite", source="mlflow", known_columns=known)
    dropped = [f.object for f in report.findings if f.code == "DS002"]
    assert not [o for o in dropped if o.split(".")[1] in head.get(o.split(".")[0], set())]
    recreated = {f.object for f in report.findings if f.code == "LK011"}
    # Tables MLflow had at the start are recreated with their rows; tables it creates on the way are not counted.
    assert recreated and recreated <= {t for t, _ in known}


def test_mlflow_history_replays_to_the_head_schema(mlflow_history):
    sql, known, head = mlflow_history
    migration = parse_sql(sql, "sqlite", "mlflow", in_transaction=True)
    migration.known_columns = known
    assert {t: set(s.columns) for t, s in migration.final_state().tables.items()} == head
