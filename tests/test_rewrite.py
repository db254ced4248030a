"""The safe rewrite of an unsafe revision applies on PostgreSQL, passes lint, and gives the same schema."""
from __future__ import annotations

import shutil

import pytest
from alembic.config import Config
from click.testing import CliRunner

from dbrunbook.cli import main
from dbrunbook.db import drop_database, make_engine
from dbrunbook.lint.source import lint_revisions
from dbrunbook.migration import apply_upgrade
from dbrunbook.rewrite import plan_rewrite, render, rewrite_revision
from dbrunbook.schema.snapshot import snapshot

from _lint_project import BASE, UNSAFE, fill, write_project
from conftest import new_database


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
    target = write_project(tmp_path / "p", url, {"0001_base.py": BASE, "0002_unsafe.py": UNSAFE.replace(
        'server_default=sa.text("gen_random_uuid()::text")', 'server_default="x"')})
    result = CliRunner().invoke(main, ["rewrite", "0002", "--project", str(tmp_path / "p"), "--db", url,
                                       "--alembic-config", target.alembic_config, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "advice:" in result.output and not (tmp_path / "out").exists()
