"""dbrunbook: safe database schema changes as a runbook of parameterised notebooks.

The public API is listed in ``__all__``. Only the exception tree is imported eagerly; every other
public name is imported on first use (PEP 562 ``__getattr__``), so that ``import dbrunbook`` costs
next to nothing: ``dbrunbook --help`` and ``lint`` start fast, and each stage kernel pays only for
what its notebook uses.
"""
from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

from dbrunbook import _compat
from dbrunbook.errors import (
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

if TYPE_CHECKING:  # the names type checkers see; at run time __getattr__ imports them when first used
    from dbrunbook.core.config import Target, load_metadata, load_target
    from dbrunbook.core.db import check_connection, make_engine
    from dbrunbook.core.results import Finding, StageResult, load_result, record
    from dbrunbook.core.secrets import mask_url
    from dbrunbook.core.stage import Stage, open_stage

_compat.install()

#: Public names imported on first use: name -> "module" or "module:attribute".
_LAZY = {
    # the core: targets, connections, results, stages
    "Target": "core.config", "load_metadata": "core.config", "load_target": "core.config",
    "check_connection": "core.db", "make_engine": "core.db", "mask_url": "core.secrets",
    "Finding": "core.results", "StageResult": "core.results", "load_result": "core.results", "record": "core.results",
    "Stage": "core.stage", "open_stage": "core.stage",
    # stages 1-2: schema snapshot, diff, impact, design rules
    "Snapshot": "schema", "SchemaDiff": "schema", "RenameHint": "schema", "load_snapshot": "schema",
    "snapshot_metadata": "schema", "diff_specs": "schema", "snapshot_schema": "schema:snapshot",
    "diff_schemas": "schema:diff", "validate_design": "stages.design_validation:validate",
    # runbook engine and archive
    "Run": "runbook", "RunOptions": "runbook", "run_runbook": "runbook", "verify_run": "runbook",
    "export_run": "runbook", "find_run": "runbook", "list_runs": "runbook",
    "scratch_copy": "data.clone",
    # stage 3: migration, lint, rewrite
    "plan_migration": "stages.migration", "review_migration": "stages.migration",
    "lint_sql": "lint", "parse_sql": "lint", "render_rules_markdown": "lint",
    "lint_revisions": "lint.source", "rewrite_revision": "stages.migration.rewrite",
    # stage 5: data checks, profile, backfill
    "run_checks": "stages.data_checks", "CheckReport": "stages.data_checks", "CheckResult": "stages.data_checks",
    "profile_table": "stages.data_checks.profile", "profile_tables": "stages.data_checks.profile", "TableProfile":
    "stages.data_checks.profile",
    "plan_backfill": "stages.data_checks.backfill", "backfill_plans": "stages.data_checks.backfill",
    "time_backfill": "stages.data_checks.backfill",
    "BackfillPlan": "stages.data_checks.backfill",
    # stage 6: application code impact; stage 8: performance impact
    "scan_code": "stages.code_impact:scan", "CodeImpact": "stages.code_impact",
    "compare_performance": "stages.performance", "load_queries": "stages.performance",
    # stage 10: checklist ticked by evidence, production plan; stage 11: the guarded apply
    "ChecklistItem": "stages.production_plan", "ProductionPlan": "stages.production_plan", "production_plan":
    "stages.production_plan",
    "production_checklist": "stages.production_plan:checklist",
    "plan_apply": "stages.guarded_apply", "apply_plan": "stages.guarded_apply:apply", "apply_run": "runbook.apply",
    "ApplyPlan": "stages.guarded_apply",
    "ApplyOutcome": "stages.guarded_apply",
    # stage 12: post-migration validation
    "validate_migration": "stages.post_migration:validate", "Validation": "stages.post_migration",
    "prove_unchanged": "stages.post_migration:unchanged",
    # stages 4, 7, 9 and rollback: rehearsal, volume, fingerprints, round trip, backup
    "rehearse": "stages.dev_rehearsal", "Rehearsal": "stages.dev_rehearsal",
    "Scale": "stages.staging", "TimingCurve": "stages.staging", "grow": "stages.staging", "timing_curve":
    "stages.staging",
    "fingerprint": "data.fingerprint", "Fingerprint": "data.fingerprint", "FingerprintDiff": "data.fingerprint",
    "plan_rollback": "stages.rollback_plan", "round_trip": "stages.rollback_plan", "RollbackPlan":
    "stages.rollback_plan", "RoundTrip": "stages.rollback_plan",
    "plan_backup": "stages.rollback_plan.backup", "take_backup": "stages.rollback_plan.backup", "verify_backup":
    "stages.rollback_plan.backup",
    "backup_and_verify": "stages.rollback_plan.backup",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, _, attribute = _LAZY[name].partition(":")
        value = getattr(importlib.import_module(f".{module}", __name__), attribute or name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dbrunbook' has no attribute {name!r}")


__all__ = [
    "ApplyOutcome", "ApplyPlan", "ApplyRefused", "BackfillPlan", "CheckReport", "CheckResult", "ChecklistItem",
    "CodeImpact", "ConfigError", "DatabaseUnreachable", "DbrunbookError", "Finding", "Fingerprint",
    "FingerprintDiff", "ProductionPlan", "Rehearsal", "RenameHint", "RollbackPlan", "RoundTrip", "Run",
    "RunOptions", "Scale", "SchemaDiff", "SecretLeak", "Snapshot", "Stage", "StageFailed", "StageResult",
    "TableProfile", "Target", "TimingCurve", "ToolMissing", "UnknownParameterError", "UnknownRunError",
    "UsageError", "Validation", "VerificationFailed", "__version__", "apply_plan", "apply_run", "backfill_plans",
    "backup_and_verify", "check_connection", "compare_performance", "diff_schemas", "diff_specs", "export_run",
    "find_run", "fingerprint", "grow", "lint_revisions", "lint_sql", "list_runs", "load_metadata", "load_queries",
    "load_result", "load_snapshot", "load_target", "make_engine", "mask_url", "open_stage", "parse_sql",
    "plan_apply", "plan_backfill", "plan_backup", "plan_migration", "plan_rollback", "production_checklist",
    "production_plan", "profile_table", "profile_tables", "prove_unchanged", "record", "rehearse",
    "render_rules_markdown", "review_migration", "rewrite_revision", "round_trip", "run_checks", "run_runbook",
    "scan_code", "scratch_copy", "snapshot_metadata", "snapshot_schema", "take_backup", "time_backfill",
    "timing_curve", "validate_design", "validate_migration", "verify_backup", "verify_run",
]
