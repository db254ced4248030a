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
    planned = any(stage["name"] == _PLAN_STAGE for stage in manifest["stages"])
    if planned and manifest["verdict"] != "block":
        lines.append(f"next: dbrunbook apply {manifest['run_id']} --dry-run   (then without --dry-run)")
    return "\n".join(lines)


def render_runs(manifests: list[dict[str, Any]]) -> str:
    """One line per archived run."""
    if not manifests:
        return "no runs"
    return "\n".join(f"{m['run_id']}  {m['verdict'].upper():<6} {m['target']}  {m['started']}" for m in manifests)
