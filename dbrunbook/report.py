"""Plain-text renderings of runs for the CLI."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import EXIT_BLOCKED, EXIT_PASS, EXIT_STAGE_ERROR
from .results import load_result
from .runbook.archive import load_manifest

#: The stage whose plan ``dbrunbook apply`` follows.
_PLAN_STAGE = "10-production-plan"


def run_exit_code(run: Any) -> int:
    """The documented exit code of a finished run."""
    return {"error": EXIT_STAGE_ERROR, "block": EXIT_BLOCKED}.get(run.verdict, EXIT_PASS)


def render_run(run_dir: Path) -> str:
    """Stages, verdicts and findings of the run in ``run_dir``."""
    manifest = load_manifest(run_dir)
    lines = [f"run {manifest['run_id']}  target {manifest['target']}", f"  folder {run_dir}"]
    for stage in manifest["stages"]:
        lines.append(f"  {stage['name']:<22} {stage['status'].upper():<7} {stage.get('summary', '')}")
        if stage.get("error"):
            err = stage["error"]
            cell = f" in cell {err['cell']}" if err.get("cell") is not None else ""
            lines.append(f"      raised {err.get('ename')}{cell}: {err.get('evalue')}")
        result = load_result(run_dir, stage["name"])
        for f in result.findings if result else []:
            if f.severity != "info":
                where = f" [{f.object}]" if f.object else ""
                lines.append(f"      {f.severity:<5} {f.code}{where}: {f.message}")
    lines.append(f"verdict: {manifest['verdict'].upper()}")
    lines += _next_step(run_dir, manifest)
    return "\n".join(lines)


def _next_step(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """``dbrunbook apply`` as the next step, only when it would accept this plan run; else why not, or nothing.

    Only the guards that need no database are checked here (the checklist, the project's history);
    the apply checks the target itself.
    """
    stages = manifest["stages"]
    plan = next((s for s in stages if s["name"] == _PLAN_STAGE), None)
    if (plan is None or plan["status"] not in ("pass", "warn") or manifest["verdict"] not in ("pass", "warn")
            or any(s["status"] in ("error", "skipped") for s in stages)
            or manifest.get("status", "complete") != "complete"):  # an interrupted run does not verify
        return []
    result = load_result(run_dir, _PLAN_STAGE)
    if result is None or not (result.data.get("plan") or {}).get("revisions"):
        return []  # nothing to apply from this run
    from .apply import offline_guards

    refused = [g for g in offline_guards(run_dir) if not g.ok]
    if refused:
        return [f"not ready for dbrunbook apply: {g.id}: {g.detail}" for g in refused]
    return [f"next: dbrunbook apply {manifest['run_id']} --dry-run   (then without --dry-run)"]


def render_runs(manifests: list[dict[str, Any]]) -> str:
    """One line per archived run."""
    if not manifests:
        return "no runs"
    def state(m: dict[str, Any]) -> str:
        status = m.get("status", "complete")
        return "" if status == "complete" else f"  ({status.upper()} after {_last_stage(m)})"

    return "\n".join(f"{m['run_id']}  {m['verdict'].upper():<6} {m['target']}  {m['started']}{state(m)}"
                     for m in manifests)


def _last_stage(manifest: dict[str, Any]) -> str:
    done = [s["name"] for s in manifest.get("stages", []) if s.get("status") != "skipped"]
    return done[-1] if done else "no stage"
