"""Dagster's Alembic history as it ships: update from 043 (run_tags run_id index) to head leaves the target as is."""
from __future__ import annotations

from pathlib import Path

import pytest

from ._corpus import check_update

pytestmark = [pytest.mark.slow, pytest.mark.realworld]

#: Reached from head with Dagster's own downgrades; below it, 043's downgrade fails on MySQL/MariaDB (it drops
#: an index a foreign key needs). Ahead: a column, a table and an index added, a unique index built on
#: populated run_tags (CONCURRENTLY on PostgreSQL), a NOT NULL boolean with a default, TEXT -> LONGTEXT on MySQL.
START = "284a732df317"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_update_dagster_history(dialect: str, tmp_path: Path) -> None:
    check_update("dagster", dialect, START, tmp_path)
