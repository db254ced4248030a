"""Stage 4: apply the migration to a scratch copy of the target, and record what happened.

:func:`rehearse` copies the target (:func:`dbrunbook.clone.scratch_copy`), runs the upgrade
on the copy with every statement timed, and returns the outcome, including the database's
exact error when it fails. The target is only read; the copy is always dropped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .clone import scratch_copy
from .config import Target
from .db import make_engine
from .migration import ApplyResult, alembic_config, apply_upgrade, current_revision
from .results import Finding


@dataclass
class Rehearsal:
    """The outcome of one rehearsal."""

    revision_before: str | None
    revision_after: str | None
    upgrade: ApplyResult
    target_revision_unchanged: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rehearse(target: Target, script_dir: Path, mode: str = "full") -> Rehearsal:
    """Upgrade a scratch copy of ``target`` to head with the scripts in ``script_dir``."""
    cfg = alembic_config(target, script_dir)
    engine = make_engine(target.db)
    before = current_revision(engine)
    engine.dispose()  # PostgreSQL copies by TEMPLATE only when nobody is connected
    with scratch_copy(target.db, mode=mode) as url:
        result = apply_upgrade(cfg, url, "head")
        copy = make_engine(url)
        after = current_revision(copy)
        copy.dispose()
    engine = make_engine(target.db)
    unchanged = current_revision(engine) == before
    engine.dispose()
    return Rehearsal(before, after, result, unchanged)


def findings(rehearsal: Rehearsal) -> list[Finding]:
    """Findings of a rehearsal: the failure with its statement, or the timing."""
    up = rehearsal.upgrade
    out = []
    if not up.ok:
        out.append(Finding("RH001", "block", f"the upgrade fails on a copy of the data: {up.error}",
                           up.error_type, {"statement": up.failed_statement.strip()[:2000], "error": up.error},
                           "fix the offending rows or change the migration; see stage 05 for the rows"))
    if not rehearsal.target_revision_unchanged:
        out.append(Finding("RH002", "block", "the target's revision changed during the rehearsal", "target"))
    if up.ok:
        out.append(Finding("RH000", "info", f"upgrade applied on a copy in {up.seconds:.2f}s "
                                            f"({len(up.statements)} statements)", "", {"seconds": up.seconds}))
    return out
