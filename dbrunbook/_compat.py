"""Old import paths (before the package was laid out by layer and stage) keep working.

``import dbrunbook.rehearsal`` or ``from dbrunbook import checks`` import the module at its new
place (:mod:`dbrunbook.stages.dev_rehearsal`, :mod:`dbrunbook.stages.data_checks`) and bind the old
name to the *same* module object, so attributes set through either name are seen through both.
New code imports the new paths; these aliases are for users' code and notebooks written before.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

#: old path (after ``dbrunbook.``) -> new path (after ``dbrunbook.``)
MOVED = {
    "_alembic_child": "alembic_ops._child",
    "_plugins": "stages.tests._plugins",
    "_revision_shapes": "alembic_ops._shapes",
    "_rewrite_type": "stages.migration._rewrite_type",
    "_volume_plan": "stages.staging._plan",
    "_volume_values": "stages.staging._values",
    "alembic_project": "core.project",
    "analysis": "stages.schema_analysis",
    "apply": "stages.guarded_apply",
    "backfill": "stages.data_checks.backfill",
    "backup": "stages.rollback_plan.backup",
    "checks": "stages.data_checks",
    "clone": "data.clone",
    "code_impact": "stages.code_impact",
    "codes": "core.codes",
    "commands": "cli.commands",
    "config": "core.config",
    "db": "core.db",
    "design": "stages.design_validation",
    "fence": "core.fence",
    "fingerprint": "data.fingerprint",
    "lint._actions": "sql._actions",
    "lint._pg": "sql._pg",
    "lint._pg_alter": "sql._pg_alter",
    "lint.model": "sql.model",
    "lint.state": "sql.state",
    "locks": "lint.locks",
    "migration": "stages.migration",
    "performance": "stages.performance",
    "probes": "stages.dev_rehearsal.probes",
    "production": "stages.production_plan",
    "profile": "stages.data_checks.profile",
    "progress": "runbook.progress",
    "querycount": "stages.tests",
    "rehearsal": "stages.dev_rehearsal",
    "report": "runbook.report",
    "runbook.archive": "core.archive",
    "results": "core.results",
    "reversibility": "lint.reversibility",
    "rewrite": "stages.migration.rewrite",
    "rollback": "stages.rollback_plan",
    "rules": "core.rules",
    "secrets": "core.secrets",
    "stage": "core.stage",
    "validation": "stages.post_migration",
    "volume": "stages.staging",
}


def new_name(old: str) -> str | None:
    """The new dotted name of ``dbrunbook.<old>`` (a moved module or one inside a moved package), or None."""
    parts = old.split(".")
    for i in range(len(parts), 0, -1):
        head = ".".join(parts[:i])
        if head in MOVED:
            return ".".join([MOVED[head], *parts[i:]])
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module ran under its new name; give back the spec the import system just overwrote."""
        module.__spec__ = self.spec


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("dbrunbook."):
            return None
        new = new_name(fullname[len("dbrunbook."):])
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(f"dbrunbook.{new}"))


def install() -> None:
    """Resolve the old paths (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
