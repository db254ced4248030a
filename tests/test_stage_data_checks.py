"""Stage 05, executed with papermill on the demo of each dialect: it blocks with the exact counts."""
from __future__ import annotations

import importlib.util
import json

import sqlalchemy as sa

from dbrunbook import RunOptions, run_runbook
from dbrunbook.core.db import make_engine
from dbrunbook.core.results import load_result
from dbrunbook.demo import DUPLICATE_EMAILS, MISSING_COUNTRY


def _facts(url):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            notes = conn.execute(sa.text("SELECT COUNT(legacy_notes) FROM users")).scalar_one()
            nulls = [r[0] for r in conn.execute(sa.text("SELECT id FROM users WHERE country IS NULL ORDER BY id"))]
            counts = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                      for t in ("users", "orders", "alembic_version")}
            tables = sorted(sa.inspect(conn).get_table_names())
        return notes, nulls, counts, tables
    finally:
        engine.dispose()


def test_demo_stage_blocks_with_exact_counts_and_samples(demo, dialect, tmp_path):
    notes, null_ids, counts, tables = _facts(demo.db)
    run = run_runbook(demo.target(), RunOptions(out=tmp_path / "runs", stages=["05"]))
    assert [s.status for s in run.stages] == ["block"], run.stages
    result = load_result(run.path, "05-data-checks")
    by_code = {f.code: f for f in result.findings}
    assert by_code["DC001"].evidence["count"] == MISSING_COUNTRY
    assert [row["id"] for row in by_code["DC001"].evidence["sample"]] == null_ids[:10]
    assert by_code["DC002"].evidence["count"] == DUPLICATE_EMAILS
    assert by_code["DC002"].evidence["groups"] == DUPLICATE_EMAILS
    emails = [row["email"] for row in by_code["DC002"].evidence["sample"]]
    assert emails and all(emails.count(e) >= 1 for e in emails) and len(set(emails)) < len(emails)
    assert by_code["DC006"].evidence["count"] == notes > 0
    assert all(by_code[c].severity == "block" for c in ("DC001", "DC002", "DC006"))
    assert "quarantine" in by_code["DC002"].fix and "UPDATE" in by_code["DC001"].fix

    folder = run.path / "05-data-checks"
    saved = json.loads((folder / "checks.json").read_text())
    assert {r["problem"] for r in saved["results"] if r["count"]} == {"null", "duplicate", "dropped"}
    profile = {p["table"]: p for p in result.data["profile"]}
    country = next(c for c in profile["users"]["columns"] if c["name"] == "country")
    assert country["nulls"] == MISSING_COUNTRY and not country["distinct_estimated"]
    plan = result.data["backfills"][0]
    assert plan["rows"] == MISSING_COUNTRY and plan["estimated_seconds"] is not None
    assert (folder / "backfill-users-country.sql").read_text().count("UPDATE") == plan["batches"]
    if importlib.util.find_spec("dbrunbook.data.fingerprint") is not None:
        assert result.data["fingerprint"] == "05-data-checks/fingerprint.json"
        assert (run.path / result.data["fingerprint"]).stat().st_size > 0
    assert _facts(demo.db) == (notes, null_ids, counts, tables)  # the target was not written


def test_with_nothing_to_check_the_stage_is_skipped_not_passed(tmp_path):
    """No models and no Alembic scripts: no target schema, so no check ran. That is "not gathered", not a pass,
    and stage 10 does not tick the data-checks item on it."""
    from dbrunbook.core.config import Target
    from dbrunbook.runbook.report import render_run

    url = f"sqlite:///{tmp_path / 'plain.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(sa.text("INSERT INTO notes (body) VALUES ('a'), ('b')"))
    engine.dispose()
    target = Target.from_url(url, project_dir=tmp_path)
    run = run_runbook(target, RunOptions(out=tmp_path / "runs", stages=["05", "10"], dry_run=True))
    status = {s.name: s.status for s in run.stages}
    assert status["05-data-checks"] == "skipped", run.stages
    result = load_result(run.path, "05-data-checks")
    assert result.verdict == "skipped" and "nothing to check" in result.summary
    assert "05-data-checks         SKIPPED" in render_run(run.path)
    plan = load_result(run.path, "10-production-plan")
    item = next(i for i in plan.data["checklist"] if i["id"] == "data-checks-pass")
    assert not item["ticked"], item
