"""Stage 10: the production plan, and its pre-migration checklist ticked by evidence.

:func:`checklist` ticks an item only when an earlier stage's sidecar holds the evidence (quoted
with the stage); an unticked item says what is missing and how to get it, and :func:`findings`
makes it a ``block`` when the evidence says the change is not ready, a ``warn`` when the evidence
was not gathered (a stage or option left out: ``dbrunbook apply`` still refuses until it is) or the
item is waived, with the reason. :func:`production_plan` turns the
same sidecars into the steps of the change window and :func:`render_plan` into Markdown.
Nothing here connects to a database or re-computes what a stage recorded.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .dialects import facts, supported
from .errors import ConfigError, UsageError
from .results import Finding, StageResult, load_result
from .rollback import decision_criteria
from .secrets import PASSWORD_ENV, mask_url, parse_url

#: The fallback abort limit: this many times the expected duration, never less than the floor.
ABORT_FACTOR, ABORT_FLOOR_SECONDS = 3.0, 30.0

#: How to bound lock waits, per dialect (the statement timeout comes from dialects.facts).
_LOCK_TIMEOUT_SQL = {
    "postgresql": "SET lock_timeout = '{ms}ms'",
    "mysql": "SET SESSION lock_wait_timeout = {seconds}",
    "mariadb": "SET SESSION lock_wait_timeout = {seconds}",
    "sqlite": "PRAGMA busy_timeout = {ms}",
}
_URL = re.compile(r"\b[a-z][a-z0-9+]*://[^\s'\"]+")
_LONGER_THAN = re.compile(r"longer than (\d+(?:\.\d+)?)s")


@dataclass
class ChecklistItem:
    """One pre-migration check: ticked only by evidence found in a stage's sidecar."""

    id: str
    title: str
    ticked: bool
    evidence: str
    stage: str
    waived: str = ""
    #: True when the evidence was not gathered (as opposed to evidence against the item).
    missing: bool = False
    #: How to get the missing evidence (for the finding's fix; not part of the sidecar).
    fix: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("id", "title", "ticked", "evidence", "stage", "waived", "missing")}


def _sidecar(run_dir: Path, stage: str) -> StageResult | None:
    """The result of ``stage`` (by number, as 06 and 08 may be named otherwise, or name); None if it did not run."""
    found = [*run_dir.glob(f"{stage}.result.json"), *run_dir.glob(f"{stage}-*.result.json")]
    names = sorted(p.name[: -len(".result.json")] for p in found)
    try:
        return load_result(run_dir, names[0]) if names else None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"sidecar {names[0]}.result.json in {run_dir} is unreadable: {exc}") from None


def _blocks(result: StageResult, prefix: str = "") -> list[Finding]:
    return [f for f in result.findings if f.severity == "block" and f.code.startswith(prefix)]


def _quote(findings: list[Finding], limit: int = 1) -> str:
    shown = "; ".join(f"{f.code}{f' [{f.object}]' if f.object else ''}: {f.message}" for f in findings[:limit])
    rest = [f"{f.code}{f' [{f.object}]' if f.object else ''}" for f in findings[limit:]]
    return shown + (f"; and {len(rest)} more: {', '.join(dict.fromkeys(rest))}" if rest else "")


_Verdict = tuple[bool, str, str]  # an item's verdict: ticked, evidence, how to get what is missing
#: Verdicts that say the evidence was not gathered, by the start of their "how" text.
_GATHER = ("pass your test command", "give the target models", "run stage 09 on a migration",
           "run the rollback plan with take_backup", "run dbrunbook update with", "do not leave stage",
           "measure on the data once")
_Rule = Callable[[StageResult, float], _Verdict]


def _no_block(how: str) -> _Rule:
    def rule(result: StageResult, window: float) -> _Verdict:
        blocks = _blocks(result)
        if blocks:
            return False, f"{result.stage} blocks: {_quote(blocks)}", how
        return True, f"{result.stage}: {result.summary} (no block finding)", ""
    return rule


def _rollback_present(result: StageResult, window: float) -> _Verdict:
    if not result.data.get("revisions"):
        return True, f"{result.stage}: no revision to apply, nothing to roll back", ""
    rows = result.data.get("review", {}).get("reversibility", [])
    missing = [f for f in result.findings if f.code in ("RB001", "RB002", "MG002")] + _blocks(result, "RB")
    undone = [r for r in rows if not r.get("undone")]
    if missing or undone:
        what = _quote(missing) if missing else f"the downgrade does not undo {undone[0].get('operation')}"
        return False, f"{result.stage}: {what}", "write downgrade() so that it undoes every upgrade operation"
    lossy = [str(r.get("operation")) for r in rows if r.get("lossy")]
    note = f"; {len(lossy)} lossy on the way back ({', '.join(lossy)})" if lossy else ""
    return True, (f"{result.stage}: the downgrade of {', '.join(result.data['revisions'])} undoes all "
                  f"{len(rows)} operation(s){note}"), ""


def _rehearsed(result: StageResult, window: float) -> _Verdict:
    upgrade, data = result.data.get("upgrade") or {}, result.data
    if upgrade.get("ok"):
        return True, (f"{result.stage}: upgrade {data.get('revision_before')} -> {data.get('revision_after')} "
                      f"applied on a {data.get('mode', 'full')} copy in {float(upgrade.get('seconds') or 0):.2f}s"), ""
    return False, f"{result.stage}: the upgrade fails on a copy: {upgrade.get('error') or result.summary}", \
        "fix the data or the migration until the rehearsal passes (stage 05 lists the rows)"


def _data_checks(result: StageResult, window: float) -> _Verdict:
    if "checks" not in result.data:
        return False, f"{result.stage} ran no checks: {result.summary}", "give the target models (--models)"
    return _no_block("fix the offending rows or the migration (stage 05 lists them)")(result, window)


def _tests(result: StageResult, window: float) -> _Verdict:
    tests = result.data.get("tests")
    if not tests:
        why = result.data.get("tests_skipped") or "no test command"
        return False, f"{result.stage} ran no tests: {why}", "pass your test command: dbrunbook update --test-cmd ..."
    if not tests.get("passed"):
        return False, f"{result.stage}: `{tests.get('command')}` fails (exit {tests.get('returncode')})", \
            "fix the code or the migration until the tests pass on the migrated copy"
    return True, f"{result.stage}: `{tests.get('command')}` passed on the migrated copy in {tests.get('seconds')}s", ""


def _performance(result: StageResult, window: float) -> _Verdict:
    if _blocks(result) or not result.data.get("upgrade_error"):
        return _no_block("fix the queries stage 08 lists")(result, window)
    return False, (f"{result.stage} compared plans on a schema-only copy only, untimed: the upgrade fails on "
                   f"the data ({result.data['upgrade_error']})"), "measure on the data once the upgrade passes there"


def _staging(result: StageResult, window: float) -> _Verdict:
    blocks, predicted = _blocks(result), result.data.get("predicted_seconds")
    if blocks:
        return False, f"{result.stage} blocks: {_quote(blocks)}", "make the upgrade pass on the grown copies"
    if predicted is None:
        return False, f"{result.stage} predicted no time: {result.summary}", "run stage 09 on a migration to time"
    facts = f"upgrade predicted at {float(predicted):.2f}s for {result.data.get('production_rows', 0):,} rows"
    if float(predicted) > window:
        return False, f"{result.stage}: {facts}, over the {window:g}s window", \
            "shorten the migration (batch it) or plan a longer window: -p window_seconds=..."
    return True, f"{result.stage}: {facts}, within the {window:g}s window", ""


def _rollback_proven(result: StageResult, window: float) -> _Verdict:
    trip = result.data.get("round_trip") or {}
    if trip.get("lossless"):
        return True, (f"{result.stage}: upgrade, downgrade and upgrade again succeed on a copy of "
                      f"{trip.get('rows_before')} rows; schema and data come back exactly"), ""
    covered = (trip.get("plan") or {}).get("restore_from_backup") and not trip.get("schema_diff") \
        and not trip.get("reupgrade_schema_diff")
    if trip.get("completed") and covered:
        lost = [".".join(str(d[k]) for k in ("table", "column") if d.get(k)) for d in trip.get("data_diff", [])]
        return True, (f"{result.stage}: round trip completed; {', '.join(lost)} do not come back and are "
                      f"covered by the restore from backup"), ""
    how = "keep the data in upgrade(), or plan the restore: -p restore_from_backup=true" if trip.get("completed") \
        else "fix the migration so that upgrade, downgrade and upgrade again succeed on a copy"
    return False, f"{result.stage}: {result.summary}", how


def _backup_verified(result: StageResult, window: float) -> _Verdict:
    check = result.data.get("backup") or {}
    backup = check.get("backup")
    if not backup:
        return False, f"{result.stage}: a backup was planned but not taken", "run the rollback plan with take_backup"
    if not check.get("ok"):
        return False, (f"{result.stage}: the restored backup differs from the target in "
                       f"{len(check.get('diffs', []))} place(s)"), "find why the dump misses data, then take it again"
    size = float(backup.get("size") or 0) / 2 ** 20
    return True, (f"{result.stage}: backup of {size:.1f} MiB ({backup.get('tool')}) "
                  f"restored in {check.get('restore_seconds')}s, fingerprints equal over {check.get('rows')} rows"), ""


#: The checklist in order: id, title, stage (number or name), the option that runs it, and its rule.
_ITEMS: list[tuple[str, str, str, str, _Rule]] = [
    ("schema-analysed", "The live schema was analysed against the target models", "01", "",
     lambda r, _: (True, f"{r.stage}: {r.summary}; snapshot {r.data.get('snapshot') or 'none'}", "")),
    ("design-valid", "The new design passes the design rules", "02", "", _no_block("fix what stage 02 reports")),
    ("migration-reviewed", "The migration passes its review", "03", "", _no_block("fix what stage 03 reports")),
    ("rollback-present", "Every revision has a downgrade that undoes it", "03", "", _rollback_present),
    ("rehearsed", "The upgrade was rehearsed on a copy of the data", "04", "", _rehearsed),
    ("data-checks-pass", "No data check blocks", "05", "", _data_checks),
    ("code-impact-clear", "No code uses what the change breaks", "06", "", _no_block("change the code stage 06 lists")),
    ("tests-pass", "The application's tests pass on the migrated copy", "07", "--test-cmd", _tests),
    ("performance-ok", "Queries stay fast after the change", "08", "", _performance),
    ("staging-within-window", "The predicted duration fits the change window", "09", "", _staging),
    ("rollback-proven", "The rollback was proven on a copy", "rollback-plan", "--rollback-plan", _rollback_proven),
    ("backup-verified", "A backup was taken and restored", "rollback-plan", "--rollback-plan", _backup_verified),
]
CHECKLIST_IDS = [item[0] for item in _ITEMS]
#: One finding code per checklist item, in checklist order.
CODES = {item_id: f"PP{n:03d}" for n, item_id in enumerate(CHECKLIST_IDS, start=1)}


def checklist(run_dir: str | Path, *, window_seconds: float = 300.0,
              waive: dict[str, str] | None = None) -> list[ChecklistItem]:
    """The pre-migration checklist of the run in ``run_dir``, each item ticked only by a sidecar's evidence."""
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
    for item_id, title, stage, option, rule in _ITEMS:
        result = _sidecar(Path(run_dir), stage)
        if result is None:
            how = f"run dbrunbook update with {option}" if option else f"do not leave stage {stage} out (--stages)"
            ticked, evidence, fix = False, f"stage {stage} did not run in this run", how
        else:
            ticked, evidence, fix = rule(result, float(window_seconds))
        reason = "" if ticked else str(waive.get(item_id, "")).strip()
        missing = not ticked and fix.startswith(_GATHER)
        evidence += (f"; to tick it: {fix}" if fix and not ticked else "") + (f"; waived: {reason}" if reason else "")
        items.append(ChecklistItem(item_id, title, ticked, evidence, result.stage if result else stage, reason,
                                   missing, fix))
    return items


def findings(items: list[ChecklistItem]) -> list[Finding]:
    """One finding per unticked item: ``block`` on evidence against it, ``warn`` when waived or not gathered."""
    return [Finding(CODES[i.id], "warn" if i.waived or i.missing else "block", f"not ticked: {i.evidence}", i.id,
                    {"stage": i.stage, "waived": i.waived, "missing": i.missing}, i.fix)
            for i in items if not i.ticked]


@dataclass
class ProductionPlan:
    """The change window, step by step, from the run's evidence (the ``plan`` of the contract)."""

    run_id: str
    target: str
    dialect: str
    revision_from: str | None
    revision_to: str | None
    revisions: list[str]
    script_dir: str | None
    upgrade_sql: str | None
    downgrade_sql: str | None
    schema_before: str | None
    expected_seconds: float | None
    expected_from: str
    abort_after_seconds: float
    lock_timeout_ms: int
    restore_command: str | None
    window_seconds: float = 300.0
    lock_impact: list[dict[str, Any]] = field(default_factory=list)
    criteria: list[dict[str, str]] = field(default_factory=list)
    steps: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mask_text(text: str) -> str:
    masked = _URL.sub(lambda m: mask_url(m.group(0)), text)
    secret = os.environ.get(PASSWORD_ENV)
    return masked.replace(secret, "***") if secret and len(secret) >= 3 else masked


def _expected(folder: Path) -> tuple[float | None, str]:
    staging, rehearsal = _sidecar(folder, "09"), _sidecar(folder, "04")
    points = staging.data.get("points", []) if staging else []
    if staging and staging.data.get("predicted_seconds") is not None and points and all(p.get("ok") for p in points):
        return float(staging.data["predicted_seconds"]), f"{staging.stage} prediction"
    upgrade = (rehearsal.data.get("upgrade") or {}) if rehearsal else {}
    if rehearsal and upgrade.get("ok"):
        return float(upgrade.get("seconds") or 0), f"{rehearsal.stage} rehearsal time"
    return None, "unknown: no successful rehearsal or staging run"


def _abort_after(criteria: list[dict[str, str]], expected: float | None) -> float:
    # The rollback plan's own limit wins; it is stated in words, so it is read back from them.
    found = [m for m in (_LONGER_THAN.search(row.get("threshold", "")) for row in criteria) if m]
    return float(found[0].group(1)) if found else max(ABORT_FLOOR_SECONDS, ABORT_FACTOR * (expected or 0))


def _lock_impact(review: dict[str, Any]) -> list[dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for row in review.get("locks", []):
        seen = tables.setdefault(row.get("table", ""), {**{k: row.get(k, "") for k in ("table", "lock", "blocks")},
                                                        "statements": 0, "blocked_seconds": 0.0})
        seen["statements"] += 1
        seen["blocked_seconds"] = round(seen["blocked_seconds"] + float(row.get("blocked_seconds") or 0), 3)
    return sorted(tables.values(), key=lambda t: -t["blocked_seconds"])


def _timeouts(dialect: str, lock_ms: int, abort: float) -> list[str]:
    # The statement timeout is a dialect fact already; an unknown dialect gets no SQL here.
    lock = _LOCK_TIMEOUT_SQL.get(dialect)
    statement = facts(dialect).statement_timeout_sql if dialect in supported() else None
    return [sql.format(ms=ms, seconds=max(1, math.ceil(ms / 1000))) for sql, ms in
            ((lock, lock_ms), (statement, int(abort * 1000))) if sql]


def _steps(plan: ProductionPlan) -> list[dict[str, str]]:
    tables = ", ".join(f"{t['table']} ({t['blocked_seconds']}s)" for t in plan.lock_impact) or "none estimated"
    expected = f"{plan.expected_seconds:.2f}s" if plan.expected_seconds is not None else "unknown"
    restore = plan.restore_command or "no verified backup in this run: run dbrunbook update --rollback-plan"
    timeouts = "; ".join(_timeouts(plan.dialect, plan.lock_timeout_ms, plan.abort_after_seconds))
    abort, back = f"{plan.abort_after_seconds:g}s", plan.revision_from or "base"
    known = plan.revision_to is not None or bool(plan.revisions)
    change = f"{back} -> {plan.revision_to}" if known else "an unknown migration (stage 03 did not run)"
    apply = f"dbrunbook apply {plan.run_id} (guarded apply, then post-migration validation)" if known else \
        "nothing to apply from this run: run dbrunbook update with stage 03, then dbrunbook apply on that run"
    return [{"step": step, "do": do} for step, do in [
        ("announce", f"announce the change window: {change} on {plan.target}; "
                     f"expected {expected}, abort after {abort}; writes blocked on: {tables}"),
        ("back up", f"take a fresh verified backup (dbrunbook backup --db <target> --verify); it restores like "
                    f"the rehearsed one: {restore}"),
        ("set timeouts", f"lock timeout {plan.lock_timeout_ms} ms, statement timeout {abort}: "
                         f"{timeouts or 'set them in the session'}"),
        ("apply", apply),
        ("watch", f"lock waits on the migrated tables and the elapsed time; abort on any criterion below "
                  f"(longer than {abort}, a failing statement, piling lock waits)"),
        ("validate", f"post-migration validation: revision {plan.revision_to or 'at head'}, the schema matches the "
                     f"models, data fingerprints and row counts hold, the application's smoke tests pass"),
        ("roll back", f"only on an abort criterion: downgrade to {back} with {plan.downgrade_sql or 'no downgrade SQL'}"
                      f" (alembic downgrade {back}); if data was lost, restore: {restore}"),
    ]]


def production_plan(run_dir: str | Path, *, db: str = "", lock_timeout_ms: int = 5000,
                    window_seconds: float = 300.0) -> ProductionPlan:
    """The production plan of the run in ``run_dir``, from its sidecars and artifacts; reads no database."""
    if lock_timeout_ms <= 0:
        raise UsageError(f"lock_timeout_ms must be a positive number of milliseconds, not {lock_timeout_ms!r}")
    folder = Path(run_dir)
    migration, analysis, rollback = (_sidecar(folder, s) for s in ("03", "01", "rollback-plan"))
    data = migration.data if migration else {}

    def artifact(*candidates: str) -> str | None:
        return next((c for c in candidates if (folder / c).is_file()), None)

    criteria = list(rollback.data.get("decision_criteria", [])) if rollback else []
    expected, source = _expected(folder)
    abort = _abort_after(criteria, expected)
    # One limit everywhere: a threshold left in words (no rehearsal then) gets the number used here.
    criteria = [{**c, "threshold": f"longer than {abort:g}s"} if c.get("threshold", "").startswith("longer than")
                else c for c in criteria or decision_criteria(None, abort)]
    backup = (rollback.data.get("backup") or {}) if rollback else {}
    restore = (backup.get("backup") or backup.get("planned") or {}).get("restore_command")
    dialect = parse_url(db).get_backend_name() if db else ""
    plan = ProductionPlan(
        run_id=folder.name, target=mask_url(db) if db else "", dialect=dialect,
        revision_from=data.get("current"), revision_to=data.get("head"), revisions=list(data.get("revisions", [])),
        script_dir=data.get("script_dir"), upgrade_sql=artifact("03-migration/upgrade.sql"),
        downgrade_sql=artifact("03-migration/downgrade.sql", "rollback-plan/downgrade.sql"),
        schema_before=analysis.data.get("snapshot") if analysis else None, expected_seconds=expected,
        expected_from=source, abort_after_seconds=abort, lock_timeout_ms=int(lock_timeout_ms),
        restore_command=_mask_text(restore) if restore else None, window_seconds=float(window_seconds),
        lock_impact=_lock_impact(data.get("review", {})), criteria=criteria)
    plan.steps = _steps(plan)
    return plan


def checklist_table(items: list[ChecklistItem]) -> list[dict[str, str]]:
    """Rows for showing the checklist: a check mark for ticked items."""
    return [{"": "[x]" if i.ticked else ("[~]" if i.waived else "[ ]"), "item": i.id, "stage": i.stage,
             "evidence": i.evidence} for i in items]


def render_plan(plan: ProductionPlan, items: list[ChecklistItem]) -> str:
    """The production plan and its checklist as Markdown (``10-production-plan/plan.md``)."""
    def _cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    ticked, unticked = sum(i.ticked for i in items), sum(not i.ticked and not i.waived for i in items)
    ready = f"NOT READY: {unticked} item(s) unticked" if unticked else "READY"
    rows = "\n".join(f"| {r['']} | {r['item']} | {r['stage']} | {_cell(r['evidence'])} |"
                     for r in checklist_table(items))
    if plan.revision_to is None and not plan.revisions:  # stage 03 did not name a migration
        change = "The migration is unknown: stage 03 did not run in this run, so there is nothing to apply yet."
    else:
        change = (f"Revision {plan.revision_from or 'base'} -> {plan.revision_to} "
                  f"({', '.join(plan.revisions) or 'nothing to apply'}); scripts `{plan.script_dir}`, "
                  f"upgrade SQL `{plan.upgrade_sql}`, downgrade SQL `{plan.downgrade_sql}`.")
    expected = plan.expected_from if plan.expected_seconds is None else \
        f"{plan.expected_seconds:.2f}s ({plan.expected_from})"
    locks = "\n".join(f"| {t['table']} | {_cell(t['lock'])} | {_cell(t['blocks'])} | {t['statements']} | "
                      f"{t['blocked_seconds']} |" for t in plan.lock_impact) or "| (none estimated) | | | | |"
    steps = "\n".join(f"{n}. **{s['step']}**: {s['do']}" for n, s in enumerate(plan.steps, start=1))
    criteria = "\n".join(f"| {_cell(c['signal'])} | {_cell(c['threshold'])} | {_cell(c['action'])} |"
                         for c in plan.criteria)
    return (f"# Production plan: run {plan.run_id}\n\n{ready} ({ticked} of {len(items)} ticked)\n\n"
            f"Target: `{plan.target or 'unknown'}`\n\n{change}\n\n"
            f"Expected duration: {expected}; window {plan.window_seconds:g}s; "
            f"abort after {plan.abort_after_seconds:g}s; lock timeout {plan.lock_timeout_ms} ms.\n\n"
            f"## Pre-migration checklist\n\n|  | item | stage | evidence |\n|---|---|---|---|\n{rows}\n\n"
            f"## Steps\n\n{steps}\n\n"
            f"## Lock impact (stage 03)\n\n| table | lock | blocks | statements | blocked seconds |\n"
            f"|---|---|---|---|---|\n{locks}\n\n"
            f"## Abort criteria\n\n| signal | threshold | action |\n|---|---|---|\n{criteria}\n\n"
            f"## Rollback\n\nDowngrade SQL: `{plan.downgrade_sql or 'none'}`\n\n"
            f"Restore command:\n\n```\n{plan.restore_command or 'no verified backup in this run'}\n```\n")


def summary(items: list[ChecklistItem], plan: ProductionPlan) -> str:
    """One line for the stage result."""
    ticked, waived = sum(i.ticked for i in items), sum(bool(i.waived) for i in items)
    change = f"{plan.revision_from} -> {plan.revision_to}" if plan.revision_to else "migration unknown"
    return (f"{ticked} of {len(items)} checklist items ticked" + (f", {waived} waived" if waived else "")
            + f"; plan {change}, abort after {plan.abort_after_seconds:g}s")

