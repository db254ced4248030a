"""The runbook engine: stage templates executed headless, archived as an audit record.

The names are imported on first use: ``dbrunbook.runbook.progress`` and ``.report`` serve every
command of the CLI, and must not pay for the engine's imports (Alembic, papermill) on the way.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbrunbook.core.archive import find_run, list_runs, load_manifest, verify_run
    from dbrunbook.runbook.engine import Run, RunOptions, StageRecord, run_runbook, stage_parameters, templates
    from dbrunbook.runbook.report import export_run

_LAZY = {**dict.fromkeys(("find_run", "list_runs", "load_manifest", "verify_run"), "dbrunbook.core.archive"),
         "export_run": "dbrunbook.runbook.report",
         **dict.fromkeys(("Run", "RunOptions", "StageRecord", "run_runbook", "stage_parameters", "templates"),
                         "dbrunbook.runbook.engine")}

__all__ = ["Run", "RunOptions", "StageRecord", "export_run", "find_run", "list_runs", "load_manifest",
           "run_runbook", "stage_parameters", "templates", "verify_run"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dbrunbook.runbook' has no attribute {name!r}")
