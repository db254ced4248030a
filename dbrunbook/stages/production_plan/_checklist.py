"""The pre-migration checklist of stage 10: each item ticked only by a fact an earlier stage's evidence recorded."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dbrunbook.core import codes, contract
from dbrunbook.core.contract import Recorded, StageSpec
from dbrunbook.core.evidence import (
    ChecklistRecord,
    DataChecksEvidence,
    DevRehearsalEvidence,
    MigrationEvidence,
    PerformanceEvidence,
    RollbackPlanEvidence,
    SchemaAnalysisEvidence,
    StagingEvidence,
    TestsEvidence,
)
from dbrunbook.core.notify import Delivery
from dbrunbook.core.results import Finding
from dbrunbook.errors import UsageError


@dataclass
class ChecklistItem(ChecklistRecord):
    """One pre-migration check as stage 10 decides it: the record its evidence keeps, and how to get what is missing."""

    #: How to get the missing evidence (for the finding's fix; not part of the sidecar).
    fix: str = field(default="", compare=False)

    def record(self) -> ChecklistRecord:
        """The item as stage 10's evidence records it (without the fix)."""
        return ChecklistRecord(**{f.name: getattr(self, f.name) for f in fields(ChecklistRecord)})

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()


def absent(run_dir: Path, stage: str) -> tuple[str, bool]:
    """Why ``stage`` (number or name) left no sidecar, and whether it raised.

    The manifest is written after the run, so stage 10 reads the executed notebook instead: a
    stage that raised leaves it with the error in a cell's outputs (papermill keeps them); one that
    did not run leaves none.
    """
    found = sorted([*run_dir.glob(f"{stage}.ipynb"), *run_dir.glob(f"{stage}-*.ipynb")])
    if not found:
        return f"stage {stage} did not run in this run", False
    notebook = found[0]
    try:
        cells = json.loads(notebook.read_text()).get("cells", [])
    except (OSError, ValueError):
        cells = []
    errors = [o for c in cells if isinstance(c, dict) for o in c.get("outputs", []) or []
              if isinstance(o, dict) and o.get("output_type") == "error"]
    if not errors:
        return f"stage {notebook.stem} ran but recorded no result (see {notebook.name})", True
    evalue = str(errors[0].get("evalue") or "").strip().splitlines()
    return f"stage {notebook.stem} raised {errors[0].get('ename')}: {evalue[0] if evalue else ''} " \
           f"(see {notebook.name})", True


def _blocks(result: Recorded[Any], prefix: str = "") -> list[Finding]:
    return [f for f in result.findings if f.severity == "block" and f.code.startswith(prefix)]


def _quote(findings: list[Finding], limit: int = 1) -> str:
    shown = "; ".join(f"{f.code}{f' [{f.object}]' if f.object else ''}: {f.message}" for f in findings[:limit])
    rest = [f"{f.code}{f' [{f.object}]' if f.object else ''}" for f in findings[limit:]]
    return shown + (f"; and {len(rest)} more: {', '.join(dict.fromkeys(rest))}" if rest else "")


_Verdict = tuple[bool, str, str]  # an item's verdict: ticked, evidence, how to get what is missing
#: How to get the rollback checked when the upgrade fails before its downgrade could be rendered.
_UPGRADE_FIRST = "make the upgrade run on a schema-only copy (stage 03), then the downgrade is rendered and checked"
#: Verdicts that say the evidence was not gathered, by the start of their "how" text.
_GATHER = (_UPGRADE_FIRST, "pass your test command", "give the target models", "run stage 09 on a migration",
           "run the rollback plan with take_backup", "run dbrunbook update with", "do not leave stage",
           "measure on the data once")
_Rule = Callable[[Recorded[Any], float], _Verdict]


def _no_block(how: str) -> _Rule:
    def rule(result: Recorded[Any], window: float) -> _Verdict:
        blocks = _blocks(result)
        if blocks:
            return False, f"{result.stage} blocks: {_quote(blocks)}", how
        return True, f"{result.stage}: {result.summary} (no block finding)", ""
    return rule


def _schema_analysed(result: Recorded[SchemaAnalysisEvidence], window: float) -> _Verdict:
    failed = [f for f in result.findings if f.code == codes.SA008.code]
    if failed:  # the revisions failed on the copy and no models were given: nothing was analysed
        return False, f"{result.stage}: {_quote(failed)}", \
            "give the target models (--models), or fix the revision that fails (stage 03 names it)"
    return True, f"{result.stage}: {result.summary}; snapshot {result.evidence.snapshot or 'none'}", ""


def _rollback_present(result: Recorded[MigrationEvidence], window: float) -> _Verdict:
    planned = result.evidence
    if not planned.revisions:
        return True, f"{result.stage}: no revision to apply, nothing to roll back", ""
    rows = planned.review.reversibility
    # MG002 beside MG003/MG007: the downgrade was not rendered because the upgrade failed first; not missing.
    failed = [f for f in result.findings if f.code in ("MG003", "MG007")]
    unrendered = [f for f in result.findings if f.code == "MG002"] if failed else []
    missing = [f for f in result.findings if f.code in ("RB001", "RB002", "MG002") and f not in unrendered] \
        + _blocks(result, "RB")
    undone = [r for r in rows if not r.undone]
    if unrendered and not missing and not undone:
        return False, (f"{result.stage}: the rollback could not be checked: the upgrade fails, so the downgrade "
                       f"was not rendered ({_quote(failed)})"), _UPGRADE_FIRST
    if missing or undone:
        what = _quote(missing) if missing else f"the downgrade does not undo {undone[0].operation}"
        return False, f"{result.stage}: {what}", "write downgrade() so that it undoes every upgrade operation"
    lossy = [r.operation for r in rows if r.lossy]
    note = f"; {len(lossy)} lossy on the way back ({', '.join(lossy)})" if lossy else ""
    return True, (f"{result.stage}: the downgrade of {', '.join(planned.revisions)} undoes all "
                  f"{len(rows)} operation(s){note}"), ""


def _rehearsed(result: Recorded[DevRehearsalEvidence], window: float) -> _Verdict:
    rehearsal = result.evidence
    upgrade = rehearsal.upgrade
    if upgrade.ok:
        return True, (f"{result.stage}: upgrade {rehearsal.revision_before} -> {rehearsal.revision_after} "
                      f"applied on a {rehearsal.mode} copy in {upgrade.seconds:.2f}s"), ""
    failed = next((t.revision for t in rehearsal.revisions if not t.ok), "")
    at = f" at revision {failed}" if failed else ""
    return False, f"{result.stage}: the upgrade fails on a copy{at}: {upgrade.error or result.summary}", \
        ("fix the data or the migration until the rehearsal passes (stage 04 names the failing statement; "
         "stage 05 lists the offending rows where a data check covers the change)")


def _data_checks(result: Recorded[DataChecksEvidence], window: float) -> _Verdict:
    if result.evidence.checks is None:
        return False, f"{result.stage} ran no checks: {result.summary}", "give the target models (--models)"
    return _no_block("fix the offending rows or the migration (stage 05 lists them)")(result, window)


def _tests(result: Recorded[TestsEvidence], window: float) -> _Verdict:
    tests = result.evidence.tests
    if tests is None:
        why = result.evidence.tests_skipped or "no test command"
        return False, f"{result.stage} ran no tests: {why}", "pass your test command: dbrunbook update --test-cmd ..."
    if not tests.passed:
        return False, f"{result.stage}: `{tests.command}` fails (exit {tests.returncode})", \
            "fix the code or the migration until the tests pass on the migrated copy"
    return True, f"{result.stage}: `{tests.command}` passed on the migrated copy in {tests.seconds}s", ""


def _performance(result: Recorded[PerformanceEvidence], window: float) -> _Verdict:
    if _blocks(result) or not result.evidence.upgrade_error:
        return _no_block("fix the queries stage 08 lists")(result, window)
    return False, (f"{result.stage} compared plans on a schema-only copy only, untimed: the upgrade fails on "
                   f"the data ({result.evidence.upgrade_error})"), "measure on the data once the upgrade passes there"


def _staging(result: Recorded[StagingEvidence], window: float) -> _Verdict:
    blocks, predicted = _blocks(result), result.evidence.predicted_seconds
    if blocks:
        return False, f"{result.stage} blocks: {_quote(blocks)}", "make the upgrade pass on the grown copies"
    if predicted is None:
        return False, f"{result.stage} predicted no time: {result.summary}", "run stage 09 on a migration to time"
    facts = f"upgrade predicted at {predicted:.2f}s for {result.evidence.production_rows:,} rows"
    if predicted > window:
        return False, f"{result.stage}: {facts}, over the {window:g}s window", \
            "shorten the migration (batch it) or plan a longer window: -p window_seconds=..."
    return True, f"{result.stage}: {facts}, within the {window:g}s window", ""


def _rollback_proven(result: Recorded[RollbackPlanEvidence], window: float) -> _Verdict:
    trip = result.evidence.round_trip
    if trip.lossless:
        return True, (f"{result.stage}: upgrade, downgrade and upgrade again succeed on a copy of "
                      f"{trip.rows_before} rows; schema and data come back exactly"), ""
    covered = trip.plan.restore_from_backup and not trip.schema_diff and not trip.reupgrade_schema_diff
    if trip.completed and covered:
        lost = [".".join(part for part in (d.table, d.column) if part) for d in trip.data_diff]
        return True, (f"{result.stage}: round trip completed; {', '.join(lost)} do not come back and are "
                      f"covered by the restore from backup"), ""
    how = "keep the data in upgrade(), or plan the restore: -p restore_from_backup=true" if trip.completed \
        else "fix the migration so that upgrade, downgrade and upgrade again succeed on a copy"
    return False, f"{result.stage}: {result.summary}", how


def _backup_verified(result: Recorded[RollbackPlanEvidence], window: float) -> _Verdict:
    check = result.evidence.backup
    backup = check.backup
    if backup is None:
        return False, f"{result.stage}: a backup was planned but not taken", "run the rollback plan with take_backup"
    if not check.ok:
        return False, (f"{result.stage}: the restored backup differs from the target in "
                       f"{len(check.diffs or [])} place(s)"), "find why the dump misses data, then take it again"
    size = backup.size / 2 ** 20
    return True, (f"{result.stage}: backup of {size:.1f} MiB ({backup.tool}) "
                  f"restored in {check.restore_seconds}s, fingerprints equal over {check.rows} rows"), ""


@dataclass(frozen=True)
class _Item:
    """A checklist item: its id, its code (literal, never renumbered), title, the stage whose evidence ticks
    it, the option that runs that stage, and the rule that reads the evidence."""

    id: str
    code: codes.Code
    title: str
    stage: StageSpec[Any]
    option: str
    rule: _Rule


#: The checklist in order. Each item keeps its code for good: a new item takes the next free code.
_ITEMS: tuple[_Item, ...] = (
    _Item("schema-analysed", codes.PP001, "The live schema was analysed against the target models",
          contract.SCHEMA_ANALYSIS, "", _schema_analysed),
    _Item("design-valid", codes.PP002, "The new design passes the design rules", contract.DESIGN_VALIDATION, "",
          _no_block("fix what stage 02 reports")),
    _Item("migration-reviewed", codes.PP003, "The migration passes its review", contract.MIGRATION, "",
          _no_block("fix what stage 03 reports")),
    _Item("rollback-present", codes.PP004, "Every revision has a downgrade that undoes it", contract.MIGRATION, "",
          _rollback_present),
    _Item("rehearsed", codes.PP005, "The upgrade was rehearsed on a copy of the data", contract.DEV_REHEARSAL, "",
          _rehearsed),
    _Item("data-checks-pass", codes.PP006, "No data check blocks", contract.DATA_CHECKS, "", _data_checks),
    _Item("code-impact-clear", codes.PP007, "No code uses what the change breaks", contract.CODE_IMPACT, "",
          _no_block("change the code stage 06 lists")),
    _Item("tests-pass", codes.PP008, "The application's tests pass on the migrated copy", contract.TESTS,
          "--test-cmd", _tests),
    _Item("performance-ok", codes.PP009, "Queries stay fast after the change", contract.PERFORMANCE, "",
          _performance),
    _Item("staging-within-window", codes.PP010, "The predicted duration fits the change window", contract.STAGING,
          "", _staging),
    _Item("rollback-proven", codes.PP011, "The rollback was proven on a copy", contract.ROLLBACK_PLAN,
          "--rollback-plan", _rollback_proven),
    _Item("backup-verified", codes.PP012, "A backup was taken and restored", contract.ROLLBACK_PLAN,
          "--rollback-plan", _backup_verified),
)
#: Items no earlier stage's evidence ticks: stage 10 decides them from the project's settings (and, for the
#: approvals, leaves them to apply's ``approved`` guard). Their codes follow on from the items above.
_SETTINGS_ITEMS: tuple[tuple[str, codes.Code, str], ...] = (
    ("team-approval", codes.PP013, "The team approved the plan"),
    ("monitoring-configured", codes.PP014, "Monitoring and alerting are configured"),
)
CHECKLIST_IDS = [item.id for item in _ITEMS] + [item_id for item_id, _, _ in _SETTINGS_ITEMS]
#: The finding code of each checklist item: literal (codes.PP001 ...), so a new item renumbers nothing.
CODES = {item.id: item.code.code for item in _ITEMS} | {item_id: code.code for item_id, code, _ in _SETTINGS_ITEMS}


def checklist(run_dir: str | Path, *, window_seconds: float = 300.0, waive: dict[str, str] | None = None,
              required_approvals: int = 0, delivery: Delivery | None = None) -> list[ChecklistItem]:
    """The pre-migration checklist of the run in ``run_dir``, each item ticked only by a sidecar's evidence.

    The last two items come from the project's settings: ``required_approvals`` (ticked when none are
    required, else deferred to apply's ``approved`` guard) and ``delivery``, the test notification stage 10
    sent (ticked when delivered; None when none was sent).
    """
    if not isinstance(window_seconds, (int, float)) or window_seconds <= 0:
        raise UsageError(f"window_seconds must be a positive number of seconds, not {window_seconds!r}")
    if not isinstance(waive or {}, dict):
        raise UsageError(f"waive must map checklist item ids to reasons, not {waive!r}")
    waive = waive or {}
    for name, reason in waive.items():
        if name not in CHECKLIST_IDS or not str(reason or "").strip():
            why = "needs a reason" if name in CHECKLIST_IDS else f"no such item (items: {', '.join(CHECKLIST_IDS)})"
            raise UsageError(f"cannot waive {name!r}: {why}")
    items = []
    for item in _ITEMS:
        result = contract.recorded(run_dir, item.stage)
        if result is None:
            ticked, (evidence, raised) = False, absent(Path(run_dir), item.stage.key)
            if raised:  # not left out: it broke, and the run says so (exit 3); what it would prove is unknown
                fix = "fix what made it raise (its notebook shows the cell and the traceback), then run it again"
            else:
                fix = (f"run dbrunbook update with {item.option}" if item.option
                       else f"do not leave stage {item.stage.key} out (--stages)")
        else:
            ticked, evidence, fix = item.rule(result, float(window_seconds))
        reason = "" if ticked else str(waive.get(item.id, "")).strip()
        missing = not ticked and fix.startswith(_GATHER)
        evidence += (f"; to tick it: {fix}" if fix and not ticked else "") + (f"; waived: {reason}" if reason else "")
        items.append(ChecklistItem(item.id, item.title, ticked, evidence,
                                   result.stage if result else item.stage.key, reason, missing, fix=fix))
    return items + _settings_items(required_approvals, delivery, waive)


def _settings_items(required: int, delivery: Delivery | None, waive: dict[str, str]) -> list[ChecklistItem]:
    """The team-approval and monitoring-configured items, decided by stage 10 from the project's settings."""
    stage = contract.PRODUCTION_PLAN.key
    (approval_id, _, approval_title), (monitoring_id, _, monitoring_title) = _SETTINGS_ITEMS
    if required <= 0:
        approval = ChecklistItem(approval_id, approval_title, True, "no approvals required "
                                 "(required_approvals in [tool.dbrunbook] is 0)", stage)
    else:
        # Approvers sign the finished plan run, so this run cannot see them: apply's guard counts them.
        approval = ChecklistItem(approval_id, approval_title, False,
                                 f"{required} approval(s) from distinct trusted keys required; checked by "
                                 "dbrunbook apply (guard approved)", stage, deferred="approved",
                                 fix="reviewers run dbrunbook approve RUN --key THEIR_KEY")
    if delivery is not None and delivery.ok:
        monitoring = ChecklistItem(monitoring_id, monitoring_title, True,
                                   f"test notification delivered: {delivery.summary()}", stage)
    else:
        how = "set notify_command or notify_webhook in [tool.dbrunbook] (dbrunbook notify-test checks it)"
        said = delivery.summary() if delivery is not None else "no test notification was sent"
        reason = str(waive.get(monitoring_id, "")).strip()
        monitoring = ChecklistItem(monitoring_id, monitoring_title, False,
                                   f"{said}; to tick it: {how}" + (f"; waived: {reason}" if reason else ""), stage,
                                   reason, missing=delivery is None or not delivery.configured, fix=how)
    return [approval, monitoring]


def findings(items: list[ChecklistItem]) -> list[Finding]:
    """One finding per unticked item: ``block`` on evidence against it, ``warn`` when waived or not gathered,
    ``info`` when apply checks it instead (deferred)."""
    def severity(item: ChecklistItem) -> str:
        return "info" if item.deferred else "warn" if item.waived or item.missing else "block"

    return [Finding(CODES[i.id], severity(i), f"{'deferred' if i.deferred else 'not ticked'}: {i.evidence}", i.id,
                    {"stage": i.stage, "waived": i.waived, "missing": i.missing, "deferred": i.deferred}, i.fix)
            for i in items if not i.ticked]
