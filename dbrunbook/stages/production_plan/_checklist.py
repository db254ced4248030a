"""The pre-migration checklist of stage 10: each item ticked only by a fact an earlier sidecar recorded."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dbrunbook.errors import ConfigError, UsageError
from dbrunbook.core.results import Finding, StageResult, load_result


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
    failed = next((str(t.get("revision")) for t in data.get("revisions") or [] if not t.get("ok")), "")
    at = f" at revision {failed}" if failed else ""
    return False, f"{result.stage}: the upgrade fails on a copy{at}: {upgrade.get('error') or result.summary}", \
        ("fix the data or the migration until the rehearsal passes (stage 04 names the failing statement; "
         "stage 05 lists the offending rows where a data check covers the change)")


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
            ticked, (evidence, raised) = False, absent(Path(run_dir), stage)
            if raised:  # not left out: it broke, and the run says so (exit 3); what it would prove is unknown
                fix = "fix what made it raise (its notebook shows the cell and the traceback), then run it again"
            else:
                fix = f"run dbrunbook update with {option}" if option else f"do not leave stage {stage} out (--stages)"
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
