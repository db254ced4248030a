"""dbrunbook: safe database schema changes as a runbook of parameterised notebooks.

The public API is listed in ``__all__``. The core (errors, results, stages, engines) is
imported eagerly; the stage modules are imported on first use, so that ``import dbrunbook``
stays quick in every stage kernel.
"""
from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import Any

from .config import Target, load_metadata, load_target
from .db import check_connection, make_engine
from .errors import (
    ApplyRefused,
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
from .secrets import mask_url
from .stage import Stage, open_stage

#: Public names imported on first use: name -> "module" or "module:attribute".
_LAZY = {
    # stages 1-2: schema snapshot, diff, impact, design rules
    "Snapshot": "schema", "SchemaDiff": "schema", "RenameHint": "schema", "load_snapshot": "schema",
    "snapshot_metadata": "schema", "diff_specs": "schema", "snapshot_schema": "schema:snapshot",
    "diff_schemas": "schema:diff", "validate_design": "design:validate",
    # runbook engine and archive
    "Run": "runbook", "RunOptions": "runbook", "run_runbook": "runbook", "verify_run": "runbook",
    "export_run": "runbook", "find_run": "runbook", "list_runs": "runbook",
    "scratch_copy": "clone",
    # stage 3: migration, lint, rewrite
    "plan_migration": "migration", "review_migration": "migration",
    "lint_sql": "lint", "parse_sql": "lint", "render_rules_markdown": "lint",
    "lint_revisions": "lint.source", "rewrite_revision": "rewrite",
    # stage 5: data checks, profile, backfill
    "run_checks": "checks", "CheckReport": "checks", "CheckResult": "checks",
    "profile_table": "profile", "profile_tables": "profile", "TableProfile": "profile",
    "plan_backfill": "backfill", "backfill_plans": "backfill", "time_backfill": "backfill",
    "BackfillPlan": "backfill",
    # stage 6: application code impact; stage 8: performance impact
    "scan_code": "code_impact:scan", "CodeImpact": "code_impact",
    "compare_performance": "performance", "load_queries": "performance",
    # stage 10: checklist ticked by evidence, production plan; stage 11: the guarded apply
    "ChecklistItem": "production", "ProductionPlan": "production", "production_plan": "production",
    "production_checklist": "production:checklist",
    "plan_apply": "apply", "apply_plan": "apply:apply", "apply_run": "apply", "ApplyPlan": "apply",
    "ApplyOutcome": "apply",
    # stage 12: post-migration validation
    "validate_migration": "validation:validate", "Validation": "validation",
    "prove_unchanged": "validation:unchanged",
    # stages 4, 7, 9 and rollback: rehearsal, volume, fingerprints, round trip, backup
    "rehearse": "rehearsal", "Rehearsal": "rehearsal",
    "Scale": "volume", "TimingCurve": "volume", "grow": "volume", "timing_curve": "volume",
    "fingerprint": "fingerprint", "Fingerprint": "fingerprint", "FingerprintDiff": "fingerprint",
    "plan_rollback": "rollback", "round_trip": "rollback", "RollbackPlan": "rollback", "RoundTrip": "rollback",
    "plan_backup": "backup", "take_backup": "backup", "verify_backup": "backup",
    "backup_and_verify": "backup",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, _, attribute = _LAZY[name].partition(":")
        value = getattr(importlib.import_module(f".{module}", __name__), attribute or name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dbrunbook' has no attribute {name!r}")


__all__ = sorted([
    "ApplyRefused", "ConfigError", "DatabaseUnreachable", "DbrunbookError", "Finding", "SecretLeak", "Stage", "StageFailed",
    "StageResult", "Target", "ToolMissing", "UnknownParameterError", "UnknownRunError", "UsageError",
    "VerificationFailed", "__version__", "check_connection", "load_metadata", "load_result", "load_target",
    "make_engine", "mask_url", "open_stage", "record", *_LAZY,
])
