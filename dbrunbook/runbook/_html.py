"""The HTML of ``dbrunbook export``: an index page of the run and a summary banner for each stage page.

Everything a page needs is inline (one stylesheet here, pygments' inline styles in the code blocks), so an
exported folder reads the same offline, from a file share or an archive. Verdicts carry a class
(``verdict-block``) and the colours of :data:`dbrunbook.core.results.COLOURS`.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from dbrunbook.core.results import COLOURS, badge, counted, findings_html, label

if TYPE_CHECKING:
    from dbrunbook.core.results import StageResult

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 0; background: #fafbfc; }
main { max-width: 1180px; margin: 0 auto; padding: 18px 28px 60px; }
h1 { font-size: 1.5em; margin: .2em 0 .4em; } h2 { font-size: 1.15em; margin: 0; }
a { color: #0b5cad; } code { font-size: .92em; }
.run-head { display: flex; align-items: center; gap: 14px; padding: 14px 18px; border-radius: 6px; color: #fff; }
.run-head h1 { margin: 0; font-size: 1.35em; } .run-head .verdict { font-size: 1.6em; font-weight: 700; }
.meta { border-collapse: collapse; margin: 12px 0 18px; font-size: .93em; }
.meta th { text-align: left; color: #57606a; font-weight: 500; padding: 2px 16px 2px 0; vertical-align: top; }
.meta td { padding: 2px 0; }
table.stages { border-collapse: collapse; width: 100%; background: #fff; font-size: .93em; margin-bottom: 24px; }
table.stages th, table.stages td { border-bottom: 1px solid #e5e7eb; padding: 6px 8px; text-align: left;
  vertical-align: top; }
table.stages td.num { text-align: right; white-space: nowrap; color: #57606a; }
table.stages td.name, table.stages td.count { white-space: nowrap; }
section.stage { background: #fff; border: 1px solid #e5e7eb; border-left-width: 6px; border-radius: 4px;
  padding: 10px 14px; margin: 0 0 14px; }
section.stage .head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
section.stage .summary { margin: 4px 0 2px; } section.stage .muted, .muted { color: #57606a; font-size: .9em; }
.error { background: #f3eafb; border-radius: 4px; padding: 6px 8px; margin: 6px 0; white-space: pre-wrap; }
.next { background: #eef4fb; border-radius: 4px; padding: 8px 12px; margin: 0 0 18px; }
"""

_BANNER_CSS = """
.dbrunbook-banner { font-family: system-ui, sans-serif; max-width: 1180px; margin: 12px auto 4px; padding: 10px 16px;
  border-radius: 4px; border-left: 6px solid; }
.dbrunbook-banner .head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; font-size: 1.1em; }
.dbrunbook-banner a { color: #0b5cad; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _colour(status: str) -> str:
    return COLOURS.get(status, COLOURS["info"])


def _meta_rows(manifest: dict[str, Any], status: str) -> str:
    project = manifest.get("project") or {}
    commit = project.get("commit")
    rows = [("target", f"<code>{_e(manifest.get('target', ''))}</code>"),
            ("run status", _e(status)),
            ("started", _e(manifest.get("started") or "")), ("ended", _e(manifest.get("ended") or "not recorded")),
            ("project", f"<code>{_e(project.get('path', ''))}</code>"
                        + (f" at commit <code>{_e(commit)}</code>" if commit else "")
                        + (" (uncommitted changes)" if project.get("dirty") else "")),
            ("models", f"<code>{_e(manifest.get('models') or 'none')}</code>"),
            ("options", _e(", ".join(f"{k}={v}" for k, v in (manifest.get("options") or {}).items()) or "none")),
            ("run by", _e(f"{manifest.get('user', '?')} on {manifest.get('host', '?')}")),
            ("dbrunbook", _e(manifest.get("dbrunbook_version") or "unknown"))]
    return "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)


def _stage_link(stage: dict[str, Any], page: str | None) -> str:
    name = _e(stage["name"])
    return f'<a href="{_e(page)}">{name}</a>' if page else name


def _error(stage: dict[str, Any]) -> str:
    err = stage.get("error") or {}
    if not err:
        return ""
    cell = f" in cell {err['cell']}" if err.get("cell") is not None else ""
    return f'<div class="error">raised {_e(err.get("ename", "an error"))}{cell}: {_e(err.get("evalue", ""))}</div>'


def index_page(manifest: dict[str, Any], status: str, stages: list[tuple[dict[str, Any], StageResult | None,
               str | None]], next_step: dict[str, Any] | None) -> str:
    """The index of an exported run: verdict, metadata, the stages at a glance, then each stage's findings.

    ``stages``: each stage of the manifest with its recorded result (None when it recorded none) and the
    file name of its page (None when it has no executed notebook).
    """
    verdict = manifest["verdict"]
    rows, sections = [], []
    for stage, result, page in stages:
        state = stage["status"]
        found = counted(result.findings) if result else "no result recorded"
        rows.append(f'<tr class="stage-row status-{_e(state)}"><td class="name">{_stage_link(stage, page)}</td>'
                    f"<td>{badge(state)}</td><td>{_e(stage.get('summary', ''))}</td>"
                    f'<td class="count">{_e(found)}</td>'
                    f'<td class="num">{float(stage.get("seconds", 0.0)):.1f}s</td></tr>')
        opened = f' &middot; <a href="{_e(page)}">open the stage page</a>' if page else ""
        table = findings_html(result.findings) if result and result.findings else \
            '<div class="muted">no findings</div>'
        sections.append(
            f'<section class="stage status-{_e(state)}" id="{_e(stage["name"])}" '
            f'style="border-left-color:{_colour(state)}"><div class="head">{badge(state)}'
            f'<h2>{_e(stage["name"])}</h2><span class="muted">{_e(found)}{opened}</span></div>'
            f'<div class="summary">{_e(stage.get("summary", ""))}</div>{_error(stage)}{table}</section>')
    state_note = "" if status == "complete" else f" ({_e(status)})"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>dbrunbook run {_e(manifest["run_id"])}: '
            f"{_e(label(verdict))}</title><style>{_CSS}</style></head>"
            f'<body class="verdict-{_e(verdict)}"><main>'
            f'<header class="run-head verdict-{_e(verdict)}" style="background:{_colour(verdict)}">'
            f'<span class="verdict">{_e(label(verdict))}</span><h1>dbrunbook run {_e(manifest["run_id"])}'
            f"{state_note}</h1></header>"
            f'<table class="meta">{_meta_rows(manifest, status)}</table>{_next(next_step)}'
            f'<table class="stages"><thead><tr><th>stage</th><th>verdict</th><th>summary</th><th>findings</th>'
            f'<th class="num">time</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'{"".join(sections)}</main></body></html>')


def _next(step: dict[str, Any] | None) -> str:
    if step is None:
        return ""
    if step["refused"]:
        items = "".join(f"<li><b>{_e(g['guard'])}</b>: {_e(g['detail'])}</li>" for g in step["refused"])
        return f'<div class="next">Not ready for <code>dbrunbook apply</code>:<ul>{items}</ul></div>'
    return f'<div class="next">Next: <code>{_e(step["command"])}</code> (then without --dry-run)</div>'


def stage_banner(stage: dict[str, Any], result: StageResult | None) -> str:
    """The summary at the top of a stage page: verdict, headline, findings count, and the way back."""
    state = stage["status"]
    found = counted(result.findings) if result else "no result recorded"
    return (f"<style>{_BANNER_CSS}</style>"
            f'<div class="dbrunbook-banner status-{_e(state)}" style="border-left-color:{_colour(state)};'
            f'background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)"><div class="head">{badge(state)}'
            f'<b>{_e(stage["name"])}</b><span>{_e(stage.get("summary", ""))}</span></div>'
            f'<div style="color:#57606a;font-size:.9em;margin-top:3px">{_e(found)} &middot; '
            f'{float(stage.get("seconds", 0.0)):.1f}s &middot; <a href="index.html#{_e(stage["name"])}">'
            f"back to the run</a></div>{_error(stage)}</div>")
