"""Optuna's Alembic history as it ships: update from v2.6.0.a to head leaves the target as it was."""
from __future__ import annotations

from pathlib import Path

import pytest

from ._corpus import check_update

pytestmark = [pytest.mark.slow, pytest.mark.realworld]

#: The v3.0.0.a-d revisions rewrite trial params, values and intermediate values in Python.
START = "v2.6.0.a"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_update_optuna_history(dialect: str, tmp_path: Path) -> None:
    check_update("optuna", dialect, START, tmp_path)
