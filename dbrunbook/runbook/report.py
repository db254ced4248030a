"""Renderings of runs: plain text for people, versioned JSON documents for tools, and an HTML export.

Every JSON document names its ``schema`` (``dbrunbook.run/1`` ...); docs/json.md describes each. Within
a version, fields are only ever added; a field removed or changed in meaning is a new version.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from dbrunbook.core import contract
from dbrunbook.core.archive import load_manifest, not_run, run_status
from dbrunbook.core.evidence import EvidenceError, ProductionPlanEvidence
from dbrunbook.core.results import MIMETYPE, StageResult, load_result, sidecar_path
from dbrunbook.errors import EXIT_BLOCKED, EXIT_PASS, EXIT_STAGE_ERROR
from dbrunbook.runbook._html import index_page, stage_banner

#: The stage whose plan ``dbrunbook apply`` follows.
_PLAN_STAGE = contract.PRODUCTION_PLAN.name
RUN_SCHEMA = "dbrunbook.run/1"
RUNS_SCHEMA = "dbrunbook.runs/1"
VERIFY_SCHEMA = "dbrunbook.verify/1"


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
    step = _next_step(run_dir, manifest)
    if step is not None and step["refused"]:
        lines += [f"not ready for dbrunbook apply: {g['guard']}: {g['detail']}" for g in step["refused"]]
    elif step is not None:
        lines.append(f"next: {step['command']}   (then without --dry-run)")
    return "\n".join(lines)


def _next_step(run_dir: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """``dbrunbook apply`` as the next step when it would accept this plan run, else the refusing guards.

    None when the run is no plan to apply (no stage 10, a blocked or incomplete run, nothing to apply).
    Only the guards that need no database are checked here (the checklist, the project's history);
    the apply checks the target itself.
    """
    stages = manifest["stages"]
    plan = next((s for s in stages if s["name"] == _PLAN_STAGE), None)
    if (plan is None or plan["status"] not in ("pass", "warn") or manifest["verdict"] not in ("pass", "warn")
            or any(s["status"] == "error" or not_run(s) for s in stages)
            or manifest.get("status", "complete") != "complete"):  # an interrupted run does not verify
        return None
    try:
        production = contract.load(run_dir, ProductionPlanEvidence)
    except EvidenceError as exc:  # shown as the reason apply would refuse, not as a crash of `show`
        return {"ready": False, "refused": [{"guard": "plan-ready", "detail": str(exc)}], "command": ""}
    if production is None or not production.plan.revisions:
        return None  # nothing to apply from this run
    from dbrunbook.stages.guarded_apply import offline_guards

    refused = [{"guard": g.id, "detail": g.detail} for g in offline_guards(run_dir) if not g.ok]
    return {"ready": not refused, "refused": refused,
            "command": "" if refused else f"dbrunbook apply {manifest['run_id']} --dry-run"}


def run_json(run_dir: Path) -> dict[str, Any]:
    """The run in ``run_dir`` as a ``dbrunbook.run/1`` document, from its manifest and stage results."""
    manifest = load_manifest(run_dir)
    stages = []
    for stage in manifest["stages"]:
        result = load_result(run_dir, stage["name"])
        stages.append({
            "name": stage["name"], "status": stage["status"], "seconds": stage.get("seconds", 0.0),
            "summary": stage.get("summary", ""), "notebook": stage.get("notebook") or None,
            "result": sidecar_path(Path(), stage["name"]).name if result else None,
            "error": stage.get("error") or None,
            "findings": [asdict(f) for f in result.findings] if result else [],
        })
    return {
        "schema": RUN_SCHEMA,
        "run_id": manifest["run_id"],
        "path": str(run_dir),
        "status": run_status(manifest),
        "verdict": manifest["verdict"],
        "target": manifest["target"],
        "started": manifest.get("started"),
        "ended": manifest.get("ended"),
        "dbrunbook_version": manifest.get("dbrunbook_version"),
        "stages": stages,
        "next": _next_step(run_dir, manifest),
    }


def runs_json(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The archived runs (as :func:`dbrunbook.runbook.list_runs` gives them) as a ``dbrunbook.runs/1`` document."""
    return {"schema": RUNS_SCHEMA, "runs": [
        {"run_id": m["run_id"], "path": str(Path(m["path"]).resolve()) if m.get("path") else None,
         "status": m.get("status", "complete"), "verdict": m["verdict"], "target": m["target"],
         "started": m.get("started"), "ended": m.get("ended"),
         "last_stage": _last_stage(m) if m.get("stages") else None} for m in manifests]}


def verify_json(run_dir: Path, manifest: dict[str, Any] | None, problems: list[str],
                signatures: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A verification's outcome as a ``dbrunbook.verify/1`` document (``manifest`` None when it failed)."""
    return {"schema": VERIFY_SCHEMA, "path": str(run_dir), "run_id": run_dir.name, "ok": not problems,
            "files": len(manifest["files"]) if manifest else None, "problems": list(problems),
            "signatures": list(signatures or [])}


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
    done = [s["name"] for s in manifest.get("stages", []) if not not_run(s)]
    return done[-1] if done else "no stage"


def export_run(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run as HTML: an index page (verdicts, findings, metadata) and one page per executed stage.

    Each stage page is its executed notebook (inputs hidden) under a banner with the stage's verdict; the
    archive itself is only read. Nothing is fetched from the network when a page is opened. Returns the index.
    """
    import nbformat

    manifest = load_manifest(run_dir)
    out = out or run_dir.parent / f"{run_dir.name}-html"
    out.mkdir(parents=True, exist_ok=True)
    stages = []
    for stage in manifest["stages"]:
        result, page = load_result(run_dir, stage["name"]), None
        notebook = run_dir / stage["notebook"] if stage.get("notebook") else None
        if notebook is not None and notebook.is_file():
            page = f"{stage['name']}.html"
            executed = nbformat.read(notebook, as_version=4)  # type: ignore[no-untyped-call]
            (out / page).write_text(_stage_page(executed, stage, result))
        stages.append((stage, result, page))
    index = out / "index.html"
    index.write_text(index_page(manifest, run_status(manifest), stages, _next_step(run_dir, manifest)))
    return index


#: The lab template without its scripts from a CDN (require.js, MathJax, mermaid), and with the stage's banner
#: (``resources["dbrunbook_banner"]``) first in the body.
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}{{ super() }}{{ resources.dbrunbook_banner }}{%- endblock body_header -%}
"""


def _stage_page(executed: Any, stage: dict[str, Any], result: StageResult | None) -> str:
    """One executed notebook as HTML (inputs hidden), offline, with the stage's summary banner on top."""
    import jinja2
    from nbconvert import HTMLExporter

    _readable_outputs(executed)
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        extra_loaders=[jinja2.DictLoader({"dbrunbook-stage.html.j2": _TEMPLATE})],
        template_file="dbrunbook-stage.html.j2",
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(executed, resources={"dbrunbook_banner": stage_banner(stage, result)})
    return str(body)


def _readable_outputs(executed: Any) -> None:
    """Outputs of runs recorded before results rendered as HTML: the result shown as HTML, no bare repr."""
    for cell in executed.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if output.get("output_type") == "execute_result" and set(data) == {"text/plain"} \
                    and str(data["text/plain"]).startswith("StageResult("):
                continue  # the echo of finish(): the display just before holds the same result
            if MIMETYPE in data and "text/html" not in data:
                data["text/html"] = StageResult.from_json(dict(data[MIMETYPE])).html()
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
