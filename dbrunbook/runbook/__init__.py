"""The runbook engine: stage templates executed headless, archived as an audit record."""
from dbrunbook.core.archive import export_run, find_run, list_runs, load_manifest, verify_run
from dbrunbook.runbook.engine import Run, RunOptions, StageRecord, run_runbook, stage_parameters, templates

__all__ = ["Run", "RunOptions", "StageRecord", "export_run", "find_run", "list_runs", "load_manifest",
           "run_runbook", "stage_parameters", "templates", "verify_run"]
