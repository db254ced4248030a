"""Buildbot's Alembic history as it ships: update from 062 to head leaves the target as it was.

The pending revisions backfill with Core UPDATEs (063 copies ``started_at``; 066 sets 0, then makes the column NOT
NULL: expand/contract), add a foreign key on a new column (065) and tables with foreign keys (067). 067's downgrade
fails as shipped on every dialect (it drops a table before the tables that refer to it, then that table's index):
the rollback is not proven, and the run says so.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ._corpus import check_update

pytestmark = [pytest.mark.slow, pytest.mark.realworld]

START = "062"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_update_buildbot_history(dialect: str, tmp_path: Path) -> None:
    outcome = check_update("buildbot", dialect, START, tmp_path)
    stages = {s["name"]: s for s in outcome.manifest["stages"]}
    assert stages["04-dev-rehearsal"]["status"] == "pass", stages["04-dev-rehearsal"]
    # 066's backfill fills every row before SET NOT NULL: no row is left to fail it.
    assert stages["05-data-checks"]["status"] == "pass", stages["05-data-checks"]
    # Nothing the server rewrote (PostgreSQL's '0'::smallint defaults) reads as a change, and a key on a column
    # added empty cannot fail on a row.
    summary = stages["01-schema-analysis"]["summary"]
    assert "neutral" not in summary and "may-fail" not in summary, summary
    assert stages["rollback-plan"]["status"] == "block" and "the downgrade fails" in outcome.stdout, outcome.stdout
