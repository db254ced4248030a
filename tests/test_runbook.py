"""Every stage template, executed with papermill against each dialect, on the demo project."""

import pytest
import sqlalchemy as sa

from dbrunbook import RunOptions, run_runbook, verify_run
from dbrunbook.core.db import make_engine
from dbrunbook.core.results import load_result
from dbrunbook.errors import UnknownParameterError, VerificationFailed
from dbrunbook.runbook import templates


def _state(url):
    """Schema and row counts: what 'the target is untouched' is checked against."""
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables = sorted(inspector.get_table_names())
        with engine.connect() as conn:
            counts = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in tables}
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        columns = {t: [c["name"] for c in inspector.get_columns(t)] for t in tables}
        return tables, counts, columns, version
    finally:
        engine.dispose()


def test_demo_run_blocks_on_the_real_data_problems_and_leaves_the_target_untouched(demo, dialect, tmp_path):
    before = _state(demo.db)
    run = run_runbook(demo.target(), RunOptions(out=tmp_path / "runs", dry_run=True))
    assert [s.name for s in run.stages] == [t.stem for t in templates()]
    assert run.verdict == "block"
    assert _state(demo.db) == before

    analysis = load_result(run.path, "01-schema-analysis")
    kinds = {c["object"]: c["kind"] for c in analysis.data["changes"]}
    assert kinds["users.legacy_notes"] == "destructive"
    assert kinds["users.country"] == "may-fail"
    dropped = next(f for f in analysis.findings if f.code == "SA001")
    assert dropped.severity == "block" and dropped.evidence["rows"] > 0

    migration = load_result(run.path, "03-migration")
    assert migration.verdict == "block" and len(migration.data["revisions"]) == 1
    upgrade_sql = (run.path / "03-migration" / "upgrade.sql").read_text()
    downgrade_sql = (run.path / "03-migration" / "downgrade.sql").read_text()
    assert "uq_users_email" in upgrade_sql and "legacy_notes" in downgrade_sql

    rehearsal = load_result(run.path, "04-dev-rehearsal")
    assert rehearsal.verdict == "block"
    failure = next(f for f in rehearsal.findings if f.code == "RH001")
    # The database's own words for one of the two problems the data holds.
    assert any(word in failure.message.lower() for word in ("null", "unique", "duplicate", "truncated"))
    assert rehearsal.data["target_revision_unchanged"] is True

    manifest = verify_run(run.path)
    assert manifest["verdict"] == "block" and manifest["secret_scan"]["clean"]
    assert set(manifest["templates"]) == {t.name for t in templates()}


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_verify_fails_after_one_byte_changes(demo, tmp_path):
    run = run_runbook(demo.target(), RunOptions(out=tmp_path / "runs", stages=["01"]))
    notebook = run.path / "01-schema-analysis.ipynb"
    data = bytearray(notebook.read_bytes())
    data[len(data) // 2] ^= 1
    notebook.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match="01-schema-analysis.ipynb was changed"):
        verify_run(run.path)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_unknown_parameter_is_an_error(demo, tmp_path):
    with pytest.raises(UnknownParameterError, match="no_such_thing"):
        run_runbook(demo.target(), RunOptions(out=tmp_path / "runs", parameters={"no_such_thing": 1}))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_optional_stages_run_after_the_analysis_and_before_the_production_plan(tmp_path):
    for name in ("01-a", "09-b", "10-c", "11-d", "rollback-plan", "notes"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert [t.stem for t in templates(tmp_path, RunOptions(rollback_plan=True))] == \
        ["01-a", "09-b", "rollback-plan", "10-c", "11-d"]
    assert [t.stem for t in templates(tmp_path, RunOptions())] == ["01-a", "09-b", "10-c", "11-d"]


def test_latest_can_mean_the_latest_run_holding_a_file(tmp_path):
    from dbrunbook.core.archive import find_run
    from dbrunbook.errors import UnknownRunError

    for name in ("20260101T000000Z-db-aaaaaa", "20260102T000000Z-db-bbbbbb"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
    (tmp_path / "20260101T000000Z-db-aaaaaa" / "10-production-plan.result.json").write_text("{}")
    assert find_run("latest", tmp_path).name.endswith("bbbbbb")
    assert find_run("latest", tmp_path, holding="10-production-plan.result.json").name.endswith("aaaaaa")
    with pytest.raises(UnknownRunError):
        find_run("bbbbbb", tmp_path, holding="10-production-plan.result.json")
