"""dbrunbook: safe database schema changes as a runbook of parameterised notebooks."""
from __future__ import annotations

__version__ = "0.1.0"

from .clone import scratch_copy
from .config import Target, load_metadata, load_target
from .db import check_connection, make_engine
from .errors import (
    ConfigError,
    DatabaseUnreachable,
    DbrunbookError,
    SecretLeak,
    StageFailed,
    ToolMissing,
    UnknownParameterError,
    UnknownRunError,
    UsageError,
    VerificationFailed,
)
from .results import Finding, StageResult, load_result, record
from .runbook import Run, RunOptions, export_run, find_run, list_runs, run_runbook, verify_run
from .secrets import mask_url
from .stage import Stage, open_stage

__all__ = [
    "ConfigError",
    "DatabaseUnreachable",
    "DbrunbookError",
    "Finding",
    "Run",
    "RunOptions",
    "SecretLeak",
    "Stage",
    "StageFailed",
    "StageResult",
    "Target",
    "ToolMissing",
    "UnknownParameterError",
    "UnknownRunError",
    "UsageError",
    "VerificationFailed",
    "__version__",
    "check_connection",
    "export_run",
    "find_run",
    "list_runs",
    "load_metadata",
    "load_result",
    "load_target",
    "make_engine",
    "mask_url",
    "open_stage",
    "record",
    "run_runbook",
    "scratch_copy",
    "verify_run",
]
