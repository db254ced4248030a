"""The safe rewrite of an unsafe revision applies on PostgreSQL, passes lint, and gives the same schema."""
from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
from alembic.config import Config
from click.testing import CliRunner

from dbrunbook.alembic_ops.migration import apply_downgrade, apply_upgrade
from dbrunbook.cli import main
from dbrunbook.core.db import drop_database, make_engine
from dbrunbook.lint.source import lint_revisions
from dbrunbook.schema.diff import diff
from dbrunbook.schema.snapshot import snapshot
from dbrunbook.stages.migration.rewrite import plan_rewrite, render, rewrite_revision
from helpers.databases import new_database
from helpers.lint_project import BASE, UNSAFE, fill
from helpers.projects import write_project


def _schema(url):
    engine = make_engine(url)
    try:
        data = snapshot(engine, sizes=False).to_json()
    finally:
        engine.dispose()
    data.pop("taken_at"), data.pop("source")
    return data


def _migrate(target, url, tmp):
    cfg = Config(target.alembic_config)
    first = apply_upgrade(cfg, url, "0001")
    assert first.ok, first.error
    fill(url)
    result = apply_upgrade(cfg, url, "head")
    assert result.ok, (result.error, result.failed_statement)
    return result


@pytest.fixture
def pg_pair(tmp_path):
    urls = [new_database("postgresql", tmp_path / "a"), new_database("postgresql", tmp_path / "b")]
    yield urls
    for url in urls:
        drop_database(url)


def test_rewrite_applies_passes_lint_and_gives_the_same_schema(pg_pair, tmp_path):
    original_url, safe_url = pg_pair
    original = write_project(tmp_path / "original", original_url, {"0001_base.py": BASE, "0002_unsafe.py": UNSAFE})
    before = lint_revisions(original, "0002")
    assert {"LK003", "LK005", "LK006", "LK007", "MF001", "LK001", "DS002"} <= {f.code for f in before.findings}

    out = tmp_path / "rewritten"
    result = rewrite_revision(original, "0002", out)
    assert len(result.files) == 2 and result.findings == []
    safe = write_project(tmp_path / "safe", safe_url, {"0001_base.py": BASE})
    for path in result.files:
        shutil.copy(path, tmp_path / "safe" / "migrations" / "versions" / path.name)

    after = lint_revisions(safe, "0001:head")
    assert [f for f in after.findings if f.severity != "info"] == []
    assert {f.code for f in after.silenced} == {"DS002", "RB003"}

    _migrate(original, original_url, tmp_path)
    applied = _migrate(safe, safe_url, tmp_path)
    sql = " ".join(s["sql"] for s in applied.statements)
    assert "CONCURRENTLY" in sql and "NOT VALID" in sql and "USING INDEX" in sql
    assert _schema(safe_url) == _schema(original_url)


def test_rewrite_plan_orders_the_safe_steps(tmp_path):
    target = write_project(tmp_path / "p", "postgresql+psycopg://postgres@127.0.0.1/unused",
                           {"0001_base.py": BASE, "0002_unsafe.py": UNSAFE})
    plan = plan_rewrite(tmp_path / "p" / "migrations", "0002")
    sqls = [s.sql for s in plan.expand]
    assert sqls[:2] == ["SET lock_timeout = '5s'", "SET statement_timeout = '15min'"]
    check = next(i for i, s in enumerate(sqls) if "ck_accounts_email_not_null" in s and "NOT VALID" in s)
    assert "VALIDATE" in sqls[check + 1] and "SET NOT NULL" in sqls[check + 2]
    assert all("DROP COLUMN" not in s for s in sqls) and "DROP COLUMN" in plan.contract[0].sql
    source = render(plan, contract_id="c0ffee")[0][1]
    compile(source, "rewrite.py", "exec")
    assert "autocommit_block" in source and target.alembic_config


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_rewrite_on_sqlite_gives_advice_only(dialect, tmp_path):
    url = new_database("sqlite", tmp_path)
    sa.create_engine(url).connect().close()  # the target exists (dbrunbook never creates it)
    target = write_project(tmp_path / "p", url, {"0001_base.py": BASE, "0002_unsafe.py": UNSAFE.replace(
        'server_default=sa.text("gen_random_uuid()::text")', 'server_default="x"')})
    result = CliRunner().invoke(main, ["rewrite", "0002", "--project", str(tmp_path / "p"), "--db", url,
                                       "--alembic-config", target.alembic_config, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "advice:" in result.output and not (tmp_path / "out").exists()


TYPED_BASE = '''
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("stations", sa.Column("id", sa.Integer(), primary_key=True))
    op.create_table("readings", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("station_id", sa.Integer(), sa.ForeignKey("stations.id", name="fk_readings_station")),
                    sa.Column("value", sa.Integer(), nullable=False, server_default="0"),
                    sa.Column("note", sa.String(20)),
                    sa.CheckConstraint("value >= 0", name="ck_readings_value"),
                    sa.UniqueConstraint("station_id", "value", name="uq_readings_station_value"))
    op.create_index("ix_readings_value", "readings", ["value"])


def downgrade():
    op.drop_table("readings")
    op.drop_table("stations")
'''

TYPE_CHANGE = '''
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"


def upgrade():
    op.alter_column("readings", "value", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)
    op.alter_column("readings", "station_id", existing_type=sa.Integer(), type_=sa.BigInteger())


def downgrade():
    op.alter_column("readings", "station_id", existing_type=sa.BigInteger(), type_=sa.Integer())
    op.alter_column("readings", "value", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
'''


def _fill_readings(url):
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO stations (id) SELECT g FROM generate_series(1, 30) AS g"))
            conn.execute(sa.text("INSERT INTO readings (id, station_id, value, note) SELECT g, g % 30 + 1, g * 7, "
                                 "CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 25000) AS g"))
    finally:
        engine.dispose()


def _rows(url):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT id, station_id, value, note FROM readings ORDER BY id")).all()
    finally:
        engine.dispose()


def test_type_change_rewrite_keeps_schema_and_values(pg_pair, tmp_path):
    original_url, safe_url = pg_pair
    revisions = {"0001_base.py": TYPED_BASE, "0002_retype.py": TYPE_CHANGE}
    original = write_project(tmp_path / "original", original_url, revisions)
    assert "LK002" in {f.code for f in lint_revisions(original, "0002").findings}

    result = rewrite_revision(original, "0002", tmp_path / "rewritten")
    assert len(result.files) == 1 and result.findings == [] and result.advice == []
    safe = write_project(tmp_path / "safe", safe_url, {"0001_base.py": TYPED_BASE})
    shutil.copy(result.files[0], tmp_path / "safe" / "migrations" / "versions" / result.files[0].name)
    after = lint_revisions(safe, "0001:head")
    assert [f for f in after.findings if f.severity != "info"] == []
    # The swap's rename of value_new (added by the same migration) is no BC002: no running code uses it.
    assert {f.code for f in after.silenced} >= {"DS002"}

    for target, url in ((original, original_url), (safe, safe_url)):
        cfg = Config(target.alembic_config)
        assert apply_upgrade(cfg, url, "0001").ok
        _fill_readings(url)
        applied = apply_upgrade(cfg, url, "head")
        assert applied.ok, (applied.error, applied.failed_statement)
    sql = " ".join(s["sql"] for s in applied.statements)
    assert "CREATE TRIGGER" in sql and "CONCURRENTLY" in sql and "USING INDEX" in sql and "VALIDATE" in sql
    assert "ALTER COLUMN value TYPE" not in sql  # no table rewrite: the new column is filled in batches

    engines = [make_engine(url) for url in pg_pair]
    try:
        before, rewritten = (snapshot(e, sizes=False) for e in engines)
    finally:
        for e in engines:
            e.dispose()
    # The swapped column comes last in the table; the diff compares columns by name, not position.
    assert diff(before, rewritten).changes == []
    assert rewritten.tables["readings"].column("value").type == "BIGINT"
    assert not rewritten.tables["readings"].column("value").nullable
    assert _rows(safe_url) == _rows(original_url) and len(_rows(safe_url)) == 25000

    down = apply_downgrade(Config(safe.alembic_config), safe_url, "0001")
    assert down.ok, down.error


def test_type_change_of_a_primary_key_keeps_the_alter_with_advice(tmp_path):
    url = new_database("postgresql", tmp_path)
    try:
        retype_key = TYPE_CHANGE.replace('"readings", "value"', '"readings", "id"').replace(
            '    op.alter_column("readings", "station_id", existing_type=sa.Integer(), type_=sa.BigInteger())\n', "")
        target = write_project(tmp_path / "p", url, {"0001_base.py": TYPED_BASE, "0002_retype.py": retype_key})
        result = rewrite_revision(target, "0002", tmp_path / "out")
    finally:
        drop_database(url)
    assert any("readings.id" in line and "primary key" in line for line in result.advice)
    assert "LK002" in {f.code for f in result.findings}


STEP_BASE = '''
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("Events", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("Level", sa.Integer(), nullable=False))
    op.create_index("ix_events_level", "Events", ["Level"])


def downgrade():
    op.drop_table("Events")
'''

STEP_CHANGE = '''
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"


def upgrade():
    op.alter_column("Events", "Level", existing_type=sa.Integer(), type_=sa.BigInteger(),
                    postgresql_using='"Level"::bigint * 10')


def downgrade():
    op.alter_column("Events", "Level", existing_type=sa.BigInteger(), type_=sa.Integer())
'''


def test_type_change_rewrite_keeps_the_new_column_in_step_with_writes(tmp_path):
    """Writes between the steps (as the application makes them) reach the new column through the trigger."""
    url = new_database("postgresql", tmp_path)
    engine = make_engine(url)
    try:
        target = write_project(tmp_path / "p", url, {"0001_base.py": STEP_BASE, "0002_retype.py": STEP_CHANGE})
        assert apply_upgrade(Config(target.alembic_config), url, "0001").ok
        plan = plan_rewrite(tmp_path / "p" / "migrations", "0002", url)  # a bare config over the scripts
        assert plan.advice == [] and any("CREATE TRIGGER" in s.sql for s in plan.expand)
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(sa.text('INSERT INTO "Events" (id, "Level") SELECT g, g FROM generate_series(1, 25000) g'))
            writes = ['UPDATE "Events" SET "Level" = "Level" + 1 WHERE id % 1000 = 0',
                      'INSERT INTO "Events" (id, "Level") VALUES (30000, 3)']
            for step in plan.expand:
                if step.sql.startswith('DROP TRIGGER'):
                    conn.execute(sa.text('UPDATE "Events" SET "Level" = 7 WHERE id = 5'))
                    kept = conn.execute(sa.text('SELECT count(*) FROM "Events" '
                                                'WHERE "Level_new" IS DISTINCT FROM "Level" * 10')).scalar()
                    assert kept == 0
                    expected = conn.execute(sa.text('SELECT id, "Level" * 10 FROM "Events" ORDER BY id')).all()
                conn.exec_driver_sql(step.sql.replace("%", "%%"))
                if step.sql.startswith(("CREATE TRIGGER", "DO $$")) and writes:
                    conn.execute(sa.text(writes.pop(0)))
            after = conn.execute(sa.text('SELECT id, "Level" FROM "Events" ORDER BY id')).all()
            level_type = conn.execute(sa.text("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                              "WHERE attrelid = '\"Events\"'::regclass AND attname = 'Level'")).scalar()
            indexes = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE tablename = 'Events'"))\
                .scalars().all()
    finally:
        engine.dispose()
        drop_database(url)
    assert writes == [] and after == expected and len(after) == 25001 and after[4] == (5, 70)
    assert level_type == "bigint"
    assert any('ix_events_level ON public."Events" USING btree ("Level")' in i for i in indexes)


def test_type_change_without_a_server_keeps_the_alter_with_advice(tmp_path):
    write_project(tmp_path / "p", "postgresql+psycopg://postgres@127.0.0.1/unused",
                  {"0001_base.py": TYPED_BASE, "0002_retype.py": TYPE_CHANGE})
    plan = plan_rewrite(tmp_path / "p" / "migrations", "0002")
    assert [s.sql for s in plan.expand if "TYPE BIGINT" in s.sql] == [
        "ALTER TABLE readings ALTER COLUMN value TYPE BIGINT",
        "ALTER TABLE readings ALTER COLUMN station_id TYPE BIGINT"]
    assert len(plan.advice) == 2 and all("type change kept as is" in line for line in plan.advice)
