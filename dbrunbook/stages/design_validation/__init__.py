"""Stage 2: design validation rules for the target schema, one rule per module.

Each rule module registers one ``check(ctx)`` on :data:`registry` under a code (DV001 ...);
:func:`validate` runs the selected rules on the target design (the models rendered for the
target's dialect, or the live schema) and returns their findings.
"""
from __future__ import annotations

from dbrunbook.core.rules import Registry

registry = Registry("design", "dbrunbook.stages.design_validation")

from dbrunbook.stages.design_validation._runner import DesignContext, validate, validate_snapshot  # noqa: E402  (rules import the registry)
from dbrunbook.stages.design_validation._stage import DesignValidationOutcome, run  # noqa: E402

__all__ = ["DesignContext", "DesignValidationOutcome", "registry", "run", "validate", "validate_snapshot"]
