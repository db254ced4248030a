"""JupyterHub's Alembic history as it ships: update from 3c2384c5aae1 to head leaves the target as it was.

Its env.py is Alembic's older cookbook's: it calls ``.connect()`` on the connection it is handed; its revisions
inspect ``op.get_bind().engine``. Both run as they ship: the upgrade is rehearsed and the change analysed.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ._corpus import check_update

pytestmark = [pytest.mark.slow, pytest.mark.realworld]

#: Reached from head with JupyterHub's own downgrades (the one below it, 3c2384c5aae1's, fails as shipped:
#: ``op.drop_column('services', sa.Column('from_config'))``): manage_roles, service_timeout, pkce, user_info and
#: display_name are pending, with their ``server_default``s and new columns.
START = "3c2384c5aae1"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_update_jupyterhub_history(dialect: str, tmp_path: Path) -> None:
    outcome = check_update("jupyterhub", dialect, START, tmp_path)
    stages = {s["name"]: s for s in outcome.manifest["stages"]}
    # What JupyterHub's own upgrade does runs here too: rehearsed, rolled back and re-applied on copies.
    assert [stages[n]["status"] for n in ("04-dev-rehearsal", "rollback-plan")] == ["pass", "pass"], stages
    # Nine columns are added, and nothing else: InnoDB's own foreign-key indexes are no change of the migration.
    assert stages["01-schema-analysis"]["summary"] == "9 changes: 9 additive", stages["01-schema-analysis"]
