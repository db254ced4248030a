"""Stage 11's steps (:func:`prepare`, then :func:`run`) and what it records: findings, evidence, summary."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbrunbook.core import codes, contract
from dbrunbook.core.evidence import GuardedApplyEvidence
from dbrunbook.core.results import Finding
from dbrunbook.errors import ApplyRefused
from dbrunbook.stages.guarded_apply._lock import LOCK_FACTS, ApplyLocked
from dbrunbook.stages.guarded_apply._monitor import plot
from dbrunbook.stages.guarded_apply._run import ApplyOutcome, ApplyPlan, apply, plan_apply

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage

STAGE = contract.GUARDED_APPLY.name
#: One finding code per guard, in :data:`~dbrunbook.stages.guarded_apply._guards.GUARDS` order.
GUARD_CODES = {"manifest-verified": "AP001", "signed": "AP021", "approved": "AP022", "plan-ready": "AP002",
               "same-target": "AP003", "revision-unchanged": "AP004", "no-schema-drift": "AP005",
               "scripts-present": "AP006", "project-history": "AP007"}
_GUARD_FIX = {
    "signed": "sign the plan run with a trusted key (dbrunbook sign RUN --key KEY, or DBRUNBOOK_SIGNING_KEY during "
              "update), or accept on the record: --accept unsigned",
    "approved": "reviewers run dbrunbook approve RUN --key THEIR_KEY on the plan run (their keys in trusted_keys)",
    "manifest-verified": "plan again with dbrunbook update: a plan run is evidence only while it is unchanged",
    "plan-ready": "tick the missing items (see the plan run's 10-production-plan) or waive them there with a reason",
    "same-target": "apply the plan run made for this database, or plan this database with dbrunbook update",
    "revision-unchanged": "plan again with dbrunbook update: the database moved since it was planned",
    "no-schema-drift": "plan again with dbrunbook update: the schema changed since it was planned",
    "scripts-present": "plan again with dbrunbook update: the plan run's scripts do not match its plan",
    "project-history": "give the project's alembic.ini (alembic_config) with a writable versions directory, or plan "
                       "again with dbrunbook update (without --dry-run it writes the generated revision there)",
}
#: Refusals :func:`~._run.apply` raises itself, beyond the guards: another apply holds the target.
LOCKED_CODE = "AP018"
_LOCKED_FIX = "wait until the other apply has finished (its apply run records the outcome), then check the guards again"
NOT_REVIEWED_CODE = "AP019"
RETRIED_CODE = "AP020"


def plan_findings(plan: ApplyPlan | None, execute: bool) -> list[Finding]:
    """Findings of the guards (block, or warn when accepted) and of a plan-only run."""
    if plan is None:
        return [Finding("AP000", "info", "no plan run given: nothing planned, nothing applied")]
    out = []
    for guard in plan.guards:
        if not guard.ok:
            accepted = " (accepted with --accept)" if guard.accepted else ""
            out.append(Finding(GUARD_CODES[guard.id], "warn" if guard.accepted else "block",
                               f"guard {guard.id} failed{accepted}: {guard.detail}", guard.id,
                               {"guard": guard.to_json()}, _GUARD_FIX[guard.id]))
    if plan.outside_transaction:
        out.append(Finding("AP016", "warn", f"{', '.join(plan.outside_transaction)} run statements outside a "
                                            "transaction (autocommit_block): the revisions are applied one by one, and "
                                            "a failure leaves the revisions before it applied", "",
                           {"revisions": plan.outside_transaction},
                           "keep non-transactional operations (CREATE INDEX CONCURRENTLY) in a revision of their own"))
    if plan.lock_holder and not execute:
        out.append(Finding(LOCKED_CODE, "warn", f"another apply holds the target now: {plan.lock_holder}; an apply "
                                                "started now would be refused", "", {"holder": plan.lock_holder},
                           _LOCKED_FIX))
    if not plan.revisions:
        out.append(Finding("AP015", "info", "the plan has no revision to apply"))
    elif not execute and not plan.refused:
        out.append(Finding("AP010", "info", f"plan only: {len(plan.revisions)} revision(s) would be applied, "
                                            f"{plan.revision_from or 'base'} -> {plan.revision_to}"))
        out += [Finding("AP017", "info", f"plan only: the generated revision {w['revision']} would be written to "
                                         f"{w['dest']} before the upgrade, so the project's history holds it",
                        w["revision"], {"written_to_project": w["dest"]}) for w in plan.history.write]
    return out


def outcome_findings(plan: ApplyPlan, outcome: ApplyOutcome) -> list[Finding]:
    """Findings of what the apply did: applied, failed (and what is left), aborted, blocking."""
    revision = {w["dest"]: w["revision"] for w in plan.history.write}
    out = [Finding("AP017", "warn", f"the generated revision {revision.get(dest, '')} was written to {dest} before "
                                    "the upgrade: the project's Alembic history holds the revision of the target",
                   revision.get(dest, ""), {"written_to_project": dest}, "commit it with the project")
           for dest in outcome.written_to_project]
    done = [r["revision"] for r in outcome.revision_timings if r["ok"]]
    evidence = {"revision_before": outcome.revision_before, "revision_after": outcome.revision_after,
                "revision_timings": outcome.revision_timings,
                "failed_statement": outcome.failed_statement.strip()[:500]}
    if outcome.applied:
        out.append(Finding("AP011", "info", f"applied {outcome.revision_before or 'base'} -> {outcome.revision_after} "
                                            f"in {outcome.seconds:.2f}s ({len(outcome.statements)} statements)"))
    failed = [a for a in outcome.attempts if not a["ok"]]
    if outcome.applied and failed:
        out.append(Finding(RETRIED_CODE, "warn", f"applied at attempt {len(failed) + 1}: {len(failed)} attempt(s) "
                                                 f"timed out waiting for a lock{_blocked_by(failed)}", "",
                           {"attempts": outcome.attempts},
                           "apply when the sessions named here are done, or shorten their transactions"))
    if outcome.sql_mismatch:
        out.append(_not_reviewed(outcome, done, evidence))
    elif outcome.error:
        if outcome.rolled_back:
            state = "the transaction was rolled back: the target is as it was"
            fix = "fix the cause, plan again with dbrunbook update, then apply the new plan"
        else:
            state = (f"revisions applied before the failure: {', '.join(done) or 'none'}; the target is at "
                     f"{outcome.revision_after or 'no revision'} and statements of the failed revision may have run")
            fix = ("restore the backup: " + outcome.restore_command if outcome.restore_command
                   else "repair by hand from the statements recorded here, or restore a backup")
        code, what = ("AP013", "the upgrade was aborted") if outcome.aborted else ("AP012", "the upgrade failed")
        out.append(Finding(code, "block", f"{what}: {outcome.error}{_blocked_by(failed)}; {state}",
                           outcome.revision_after or "",
                           {**evidence, "error_type": outcome.error_type, "attempts": outcome.attempts}, fix))
    blocked = max((s["blocked"] for s in outcome.monitor), default=0)
    if blocked:
        span = sum(1 for s in outcome.monitor if s["blocked"]) * 0.1
        out.append(Finding("AP014", "warn", f"the migration blocked up to {blocked} other session(s) "
                                            f"for about {span:.1f}s", "", {"max_blocked": blocked}))
    return out + notification_findings(outcome.notifications)


def notification_findings(notifications: list[dict[str, Any]]) -> list[Finding]:
    """A warning per notification that did not reach one of its targets (the apply went on regardless)."""
    return [codes.AP023.finding(f"{n['event']} not delivered to {t['kind']} {t['target']}: {t['detail']}",
                                t["target"], {"event": n["event"]})
            for n in notifications for t in n.get("targets", []) if not t.get("ok")]


def _blocked_by(failed: list[dict[str, Any]]) -> str:
    """``; in its way: ...`` naming the sessions the failed attempts waited for (empty when none was seen)."""
    seen: dict[str, dict[str, Any]] = {}
    for attempt in failed:
        for blocker in attempt.get("blockers", []):
            seen.setdefault(str(blocker.get("session")), blocker)
    if not seen:
        return ""
    named = [f"session {b.get('session')} ({b.get('user') or '?'}, {b.get('state') or '?'}: "
             f"{' '.join(str(b.get('query') or '').split())[:80]})" for b in seen.values()]
    return "; in its way: " + ", ".join(named)


def _not_reviewed(outcome: ApplyOutcome, done: list[str], evidence: dict[str, Any]) -> Finding:
    """AP019: the apply stopped at a statement that is not the reviewed SQL (and what state the target is in)."""
    mismatch = outcome.sql_mismatch
    if mismatch.get("before_upgrade"):
        state = "nothing ran: the target is as it was"
    elif outcome.rolled_back:
        state = "the transaction was rolled back: the target is as it was"
    else:
        state = (f"the statement did not run; revisions applied before it: {', '.join(done) or 'none'}; the target "
                 f"is at {outcome.revision_after or 'no revision'}")
    where = f"statement {mismatch.get('index')}" if mismatch.get("index") else "the scripts"
    return Finding(NOT_REVIEWED_CODE, "block", f"not the reviewed SQL: {mismatch.get('message', outcome.error)} "
                                               f"({mismatch.get('when', '')}); {state}", where,
                   {**evidence, "sql_mismatch": mismatch},
                   "plan again with dbrunbook update: the scripts (or what env.py runs) are not what was reviewed")


def refusal_findings(refused: ApplyRefused) -> list[Finding]:
    """Findings of a refusal :func:`~._run.apply` raised (another apply holds the target, the revision moved ...)."""
    out = []
    for guard in refused.guards:
        code = GUARD_CODES.get(guard.id, LOCKED_CODE)
        fix = _GUARD_FIX.get(guard.id, _LOCKED_FIX)
        out.append(Finding(code, "block", f"refused: {guard.detail}", guard.id, {"guard": guard.to_json()}, fix))
    return out


def sql_to_run(plan: ApplyPlan | None) -> str:
    """What an apply of ``plan`` would run, as a SQL script: the lock, the session limits, the reviewed statements."""
    if plan is None:
        return "-- no plan run given\n"
    lock = LOCK_FACTS.get(plan.dialect)
    lines = [f"-- dbrunbook apply {plan.plan_run_id}: {plan.revision_from or 'base'} -> {plan.revision_to} "
             f"on {plan.target}",
             f"-- one apply at a time: {lock.label if lock else 'no lock'} held for the whole apply",
             f"-- {'one transaction' if plan.transactional else 'revision by revision'}; a lock wait over "
             f"{plan.lock_timeout_ms} ms is retried, {plan.lock_retries} attempts in all within "
             f"{plan.retry_budget_seconds:g}s; abort after {plan.abort_after_seconds:g}s",
             *(f"{sql};" for sql in plan.session),
             f"-- the reviewed statements ({plan.sql_source}); nothing else runs:"]
    lines += [f"{statement.text};" for statement in plan.reviewed()]
    return "\n".join(lines) + "\n"


def evidence(plan: ApplyPlan | None, outcome: ApplyOutcome | None, run_dir: Path,
             refused: ApplyRefused | None = None) -> GuardedApplyEvidence:
    """Stage 11's evidence (docs/apply.md): the plan's limits and guards, then what the apply did; ``refused``:
    what :func:`~._run.apply` raised, if it refused.

    The plan's and the outcome's own JSON are merged (the outcome's keys win), as the sidecar always held
    them, and parsed strictly: a key either side renames fails here.
    """
    if plan is None:
        return GuardedApplyEvidence(plan_run="", plan_run_id="", applied=False, aborted=False)
    data = {**plan.to_json(), "applied": False, "aborted": False, "revision_before": plan.revision_now,
            "revision_after": plan.revision_now, "fingerprint_before": None, "statements": [], "error": "",
            "monitor": []}
    if outcome is not None:
        data.update(outcome.to_json(run_dir))
    if refused is not None:
        data["refused"] = {"message": str(refused), "guards": [g.to_json() for g in refused.guards],
                           "holder": refused.holder.to_json() if isinstance(refused, ApplyLocked) else None}
    return GuardedApplyEvidence.from_json(data, stage=STAGE)


def summary(plan: ApplyPlan | None, outcome: ApplyOutcome | None, refused: ApplyRefused | None = None) -> str:
    """One line for the stage result (``refused``: what :func:`~._run.apply` raised, if it refused)."""
    if plan is None:
        return "no plan run given"
    if refused is not None:
        return str(refused)
    if plan.refused:
        return f"refused: {len(plan.refused)} guard(s) failed ({', '.join(g.id for g in plan.refused)})"
    if outcome is None:
        writes = "".join(f"; would write {Path(w['dest']).name} into the project" for w in plan.history.write)
        return (f"plan only: {plan.revision_from or 'base'} -> {plan.revision_to}, "
                f"{sum(g.ok for g in plan.guards)} of {len(plan.guards)} guards hold{writes}")
    retried = sum(1 for a in outcome.attempts if not a["ok"])
    if outcome.applied:
        return (f"applied {outcome.revision_before or 'base'} -> {outcome.revision_after} in {outcome.seconds:.2f}s"
                + (f" at attempt {retried + 1} (lock waits)" if retried else "")
                + "".join(f"; wrote {Path(d).name} into the project" for d in outcome.written_to_project))
    if outcome.sql_mismatch:
        return f"refused: not the reviewed SQL: {outcome.error.removeprefix('not the reviewed SQL: ')[:120]}"
    if outcome.aborted:
        return f"aborted after {outcome.seconds:.2f}s; target at {outcome.revision_after or 'no revision'}"
    if outcome.error:
        return f"failed: {outcome.error[:120]}"
    return "nothing applied"


def prepare(stage: Stage, *, plan_run: str = "", execute: bool = False, accept: Sequence[str] = (),
            lock_timeout_ms: int = 0, lock_retries: int = 0) -> ApplyPlan | None:
    """Check every guard of applying ``plan_run`` to ``stage``'s target and say what would run (``sql-to-run.sql``
    in the stage folder); adds the guards' findings to ``stage``. Changes nothing; None without a plan run.

    ``lock_timeout_ms`` and ``lock_retries``: 0 for the plan's, else the defaults.
    """
    plan = plan_apply(plan_run, stage.target, accept=accept, lock_timeout_ms=lock_timeout_ms or None,
                      lock_retries=lock_retries or None) if plan_run else None
    stage.extend(plan_findings(plan, execute))
    if plan is not None:
        (stage.dir / "sql-to-run.sql").write_text(sql_to_run(plan) + "\n")
    return plan


@dataclass
class GuardedApplyOutcome:
    """What the apply did (``outcome`` None when it did not start, ``refused`` when it refused) and its chart,
    for the notebook to show, and stage 11's evidence."""

    plan: ApplyPlan | None
    outcome: ApplyOutcome | None
    refused: ApplyRefused | None
    chart: Path | None
    evidence: GuardedApplyEvidence
    summary: str


def run(stage: Stage, plan: ApplyPlan | None, *, execute: bool = False) -> GuardedApplyOutcome:
    """Apply ``plan`` to ``stage``'s target when ``execute`` is set and no guard refuses: guarded, monitored,
    fingerprinted first (``fingerprint-before.json``, read by stage 12); draws ``monitor.png`` and adds the
    findings to ``stage``. A refusal or a failed upgrade is recorded, never raised."""
    outcome = refused = chart = None
    if plan is not None and execute and not plan.refused:
        try:
            outcome = apply(plan, stage.target, stage.dir)
        except ApplyRefused as error:  # another apply holds the target, or the revision moved: a finding
            refused = error
            stage.extend(refusal_findings(error))
        else:
            stage.extend(outcome_findings(plan, outcome))
    if plan is not None and outcome is not None:
        chart = stage.dir / "monitor.png"
        plot(outcome.monitor, outcome.statements, plan.abort_after_seconds, outcome.aborted).savefig(chart, dpi=100)
    return GuardedApplyOutcome(plan, outcome, refused, chart, evidence(plan, outcome, stage.run_dir, refused),
                               summary(plan, outcome, refused))
