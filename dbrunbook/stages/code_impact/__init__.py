"""Stage 6: which application code breaks against the changed schema, and during the deploy window.

:func:`scan` reads a project's Python (with :mod:`ast`) and SQL files (with sqlglot) for
references to what the schema changes touch: dropped and renamed tables and columns, columns
made NOT NULL without a default (INSERTs that leave them out), and columns whose type narrows.
:func:`findings` runs the code-impact rules (CI001 ...) over the scan, one rule per module,
registered on :data:`registry`. Nothing is imported from the scanned code except the models.
"""
from __future__ import annotations

from dbrunbook.core.rules import Registry

registry = Registry("code_impact", "dbrunbook.stages.code_impact")

from dbrunbook.stages.code_impact._model import InsertSite, Reference, Watch, build_watch, narrows  # noqa: E402
from dbrunbook.stages.code_impact._runner import ImpactContext, findings  # noqa: E402  (rules import the registry)
from dbrunbook.stages.code_impact._scan import MAX_BYTES, SKIP_DIRS, CodeImpact, mapped_classes, scan  # noqa: E402
from dbrunbook.stages.code_impact._stage import CodeImpactOutcome, run  # noqa: E402  (the stage's step, on the above)
from dbrunbook.stages.code_impact._table import summary, table  # noqa: E402

__all__ = ["CodeImpact", "CodeImpactOutcome", "ImpactContext", "InsertSite", "MAX_BYTES", "Reference", "SKIP_DIRS",
           "Watch", "build_watch", "findings", "mapped_classes", "narrows", "registry", "run", "scan", "summary",
           "table"]
