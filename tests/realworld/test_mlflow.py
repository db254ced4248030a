"""MLflow's Alembic history as it ships: update from 2d6e25af4d3e to head leaves the target as it was."""
from __future__ import annotations

from pathlib import Path

import pytest

from ._corpus import check_update

pytestmark = [pytest.mark.slow, pytest.mark.realworld]

#: "increase max param val length": the 45 revisions after it are what an old MLflow server meets.
START = "2d6e25af4d3e"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_update_mlflow_history(dialect: str, tmp_path: Path) -> None:
    check_update("mlflow", dialect, START, tmp_path)
