"""Stage 11 and ``dbrunbook apply``: the one place dbrunbook changes a target database, guarded.

- :func:`guards` checks that a plan run may still be applied to a target (its files unchanged,
  its checklist ticked, the same database, at the planned revision, with the planned schema,
  with its scripts); :func:`plan_apply` adds what would run and under which limits. Both only read.
- :func:`apply` is the doing twin: it refuses with :class:`ApplyRefused` when a guard failed and
  was not accepted, fingerprints the target, then upgrades it in one transaction where DDL is
  transactional (revision by revision elsewhere), monitored and aborted past the plan's limit.
- :func:`apply_run` is what the command runs: the ``runbooks/apply`` templates into an apply run.

See docs/apply.md.
"""
from __future__ import annotations

from ..errors import ApplyRefused
from ._guards import GUARDS, Guard, guards, read_plan
from ._monitor import APPLY_FACTS, ApplyFacts, plot
from ._run import ApplyAborted, ApplyOutcome, ApplyPlan, apply, plan_apply
from ._stage import GUARD_CODES, STAGE, apply_run, outcome_findings, plan_findings, stage_data, summary

__all__ = [
    "APPLY_FACTS", "ApplyAborted", "ApplyFacts", "ApplyOutcome", "ApplyPlan", "ApplyRefused", "GUARDS", "GUARD_CODES",
    "Guard", "STAGE", "apply", "apply_run", "guards", "outcome_findings", "plan_apply", "plan_findings", "plot",
    "read_plan", "stage_data", "summary",
]
