"""What the CLI prints for a run: stages, findings, verdict, and the next step once a plan is ready."""
import json

from dbrunbook.runbook.report import render_run


def _run(tmp_path, verdict, stages):
    (tmp_path / "manifest.json").write_text(json.dumps({
        "run_id": "20260101T000000Z-shop-abcdef", "target": "postgresql://app:***@db/shop", "verdict": verdict,
        "stages": [{"name": name, "status": verdict, "summary": "s"} for name in stages]}))
    return render_run(tmp_path)


def test_a_plan_without_stage_10_evidence_does_not_name_the_apply_command(tmp_path):
    # A manifest alone proves nothing apply would accept (the positive case: tests/test_apply.py).
    assert "next: dbrunbook apply" not in _run(tmp_path, "warn", ["01-schema-analysis", "10-production-plan"])


def test_no_apply_hint_when_blocked_or_without_a_plan(tmp_path):
    assert "next:" not in _run(tmp_path, "block", ["01-schema-analysis", "10-production-plan"])
    assert "next:" not in _run(tmp_path, "pass", ["01-schema-analysis"])
