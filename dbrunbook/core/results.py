"""Stage results: findings, verdicts, and the one helper that records them.

A stage notebook records its result with :func:`record`. That shows the result as a display
with the ``application/vnd.dbrunbook.result+json`` mimetype (with a readable text/plain
form) and writes the same JSON as a sidecar, ``NN-stage.result.json``, in the run folder.
Later stages and the engine read sidecars with :func:`load_result`; nothing is scraped from
notebook outputs.

The display also carries ``text/html`` (:meth:`StageResult.html`, inline styles only), which JupyterLab,
nbconvert and ``dbrunbook export`` render where no renderer knows the dbrunbook mimetype.
"""
from __future__ import annotations

import ast
import html
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MIMETYPE = "application/vnd.dbrunbook.result+json"
SEVERITIES = ("info", "warn", "block")
VERDICTS = ("pass", "warn", "block")
#: The verdict of a stage that gathered no evidence (nothing to check, no test command): shown as "not gathered",
#: ranked with pass for the run's verdict and exit code, never counted as a pass by stage 10's checklist.
SKIPPED = "skipped"
_VERDICT_OF = {"info": "pass", "warn": "warn", "block": "block"}
#: Colour of each verdict, stage status and severity in HTML; ``skipped`` reads "not gathered", in grey.
COLOURS = {"pass": "#1b7f3b", "info": "#50606f", "warn": "#a85b00", "block": "#c0262d", "error": "#7b2cbf",
           "skipped": "#6b7280"}
_TINTS = {"pass": "#eaf6ee", "info": "#f1f4f7", "warn": "#fff4e0", "block": "#fdecec", "error": "#f3eafb",
          "skipped": "#f3f4f6"}
_LABELS = {"skipped": "not gathered"}


@dataclass
class Finding:
    """One thing a stage found: a coded, located, evidenced observation."""

    code: str
    severity: str
    message: str
    object: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")


@dataclass(repr=False)
class StageResult:
    """What a stage concluded, as recorded in its sidecar."""

    stage: str
    verdict: str
    summary: str
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    recorded_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StageResult:
        findings = [Finding(**f) for f in raw.get("findings", [])]
        return cls(**{**raw, "findings": findings})

    def text(self) -> str:
        """A readable plain-text rendering (the display's text/plain form)."""
        lines = [f"{self.stage}: {label(self.verdict)} - {self.summary}"]
        for f in self.findings:
            where = f" [{f.object}]" if f.object else ""
            lines.append(f"  {f.severity:5} {f.code}{where}: {f.message}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<{self.stage}: {label(self.verdict)} - {self.summary} ({counted(self.findings)})>"

    def html(self) -> str:
        """The result as an HTML block: verdict badge, summary and the findings (inline styles, no stylesheet)."""
        colour, tint = COLOURS.get(self.verdict, COLOURS["info"]), _TINTS.get(self.verdict, _TINTS["info"])
        return (f'<div class="dbrunbook-result verdict-{_e(self.verdict)}" style="border-left:6px solid {colour};'
                f'background:{tint};padding:8px 12px;margin:4px 0;font-family:system-ui,sans-serif">'
                f'<div style="font-size:1.05em">{badge(self.verdict)} <b>{_e(self.stage)}</b> &mdash; '
                f'{_e(self.summary)} <span style="color:#555">({counted(self.findings)})</span></div>'
                f"{findings_html(self.findings)}</div>")

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_markdown_(self) -> str:
        rows = "".join(f"\n| {f.severity} | {f.code} | {_md(f.object)} | {_md(f.message)} | {_md(f.fix)} |"
                       for f in self.findings)
        table = f"\n\n| severity | code | object | message | fix |\n|---|---|---|---|---|{rows}" if rows else ""
        return f"**{self.stage}: {label(self.verdict)}** - {_md(self.summary)}{table}"

    def bundle(self) -> dict[str, Any]:
        """The display's mimebundle: the dbrunbook mimetype (the JSON), HTML, and plain text."""
        return {MIMETYPE: json.loads(json.dumps(self.to_json(), default=str)), "text/html": self.html(),
                "text/plain": self.text()}

    def _ipython_display_(self) -> None:
        # record() shows the result once; the same cell's echo of finish()'s return value would repeat it.
        from IPython import get_ipython
        from IPython.display import display

        cell = getattr(get_ipython(), "execution_count", None)
        if cell is not None and self.__dict__.get("_shown_in") == cell:
            return
        self.__dict__["_shown_in"] = cell
        display(self.bundle(), raw=True)  # type: ignore[no-untyped-call]


def verdict_of(findings: Iterable[Finding]) -> str:
    """The worst verdict the findings call for: block > warn > pass."""
    worst = "pass"
    for f in findings:
        v = _VERDICT_OF[f.severity]
        if VERDICTS.index(v) > VERDICTS.index(worst):
            worst = v
    return worst


def sidecar_path(run_dir: Path, stage: str) -> Path:
    """Where the sidecar of ``stage`` lives in ``run_dir``."""
    return Path(run_dir) / f"{stage}.result.json"


def record(result: StageResult, run_dir: str | Path) -> StageResult:
    """Show ``result`` in the notebook and write its JSON sidecar to ``run_dir``."""
    result.recorded_at = result.recorded_at or datetime.now(UTC).isoformat(timespec="seconds")
    payload = result.to_json()
    path = sidecar_path(Path(run_dir), result.stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return result
    display(result)  # type: ignore[no-untyped-call]
    return result


def load_result(run_dir: str | Path, stage: str) -> StageResult | None:
    """The recorded result of ``stage`` in ``run_dir``, or None if it recorded none."""
    path = sidecar_path(Path(run_dir), stage)
    if not path.exists():
        return None
    return StageResult.from_json(json.loads(path.read_text()))


# --- HTML and Markdown renderings, shared by the notebook display and ``dbrunbook export`` ---------------

_SQL_START = re.compile(r"\s*(?:--|/\*|(?:select|insert|update|delete|create|alter|drop|with|begin|commit|set|"
                        r"analyze|vacuum|lock|truncate|comment|grant|rename)\b)", re.IGNORECASE)


def label(status: str) -> str:
    """How a verdict or stage status reads to people (``skipped``: NOT GATHERED)."""
    return _LABELS.get(status, status).upper()


def badge(status: str) -> str:
    """A coloured verdict or severity badge."""
    colour = COLOURS.get(status, COLOURS["info"])
    return (f'<span class="dbrunbook-badge badge-{_e(status)}" style="background:{colour};color:#fff;'
            f'padding:1px 7px;border-radius:3px;font-size:.85em;font-weight:600;white-space:nowrap">'
            f"{_e(label(status))}</span>")


def counted(findings: Iterable[Finding]) -> str:
    """``3 findings: 1 block, 2 warn`` (info findings counted but not named)."""
    found = list(findings)
    worst = [f"{n} {s}" for s in ("block", "warn") if (n := sum(f.severity == s for f in found))]
    noun = "finding" if len(found) == 1 else "findings"
    return f"{len(found)} {noun}" + (f": {', '.join(worst)}" if worst else "")


def guess_language(text: str) -> str:
    """``sql``, ``python`` or ``text``: how a remedy or fix should be highlighted."""
    stripped = text.strip()
    # Generated SQL is upper case or ends its statements; "set notify_command in ..." is advice, not SQL.
    if _SQL_START.match(stripped) and (stripped[:2] in ("--", "/*") or stripped.split()[0].isupper()
                                       or stripped.endswith(";")):
        return "sql"
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return "text"
    return "python" if "(" in text else "text"  # a bare word parses as Python too: it is prose


def code_html(text: str, language: str = "") -> str:
    """``text`` as a highlighted block (pygments, inline styles); prose as a paragraph."""
    language = language or guess_language(text)
    if language == "text":
        return f'<div class="dbrunbook-prose" style="white-space:pre-wrap">{_e(text)}</div>'
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
    except ImportError:  # pragma: no cover - pygments ships with IPython
        body = _e(text)
    else:
        body = highlight(text, get_lexer_by_name(language), HtmlFormatter(nowrap=True, noclasses=True))
    return (f'<pre class="dbrunbook-code language-{language}" data-language="{language}" style="background:#f6f8fa;'
            f'border:1px solid #e1e4e8;border-radius:4px;padding:6px 8px;margin:2px 0;white-space:pre-wrap;'
            f'font-size:.9em;text-align:left">{body.rstrip()}</pre>')


@dataclass(frozen=True)
class Code:
    """A snippet to show highlighted in its language (``sql``, ``python``; guessed when empty), under a title."""

    text: str
    language: str = ""
    title: str = ""

    def _repr_html_(self) -> str:
        title = f'<div style="color:#555;font-style:italic">{_e(self.title)}</div>' if self.title else ""
        return title + code_html(self.text, self.language)

    def _repr_markdown_(self) -> str:
        language = self.language or guess_language(self.text)
        title = f"*{self.title}*\n\n" if self.title else ""
        return f"{title}```{'' if language == 'text' else language}\n{self.text}\n```"

    def __repr__(self) -> str:
        return (f"-- {self.title}\n" if self.title else "") + self.text


def fix_html(finding: Finding) -> str:
    """A finding's fix: prose, or code blocks each under its title (the remedies of data checks).

    Remedies the evidence lists with their language (``[{"name", "language", "code"}]``) are shown in it;
    otherwise the fix's blocks headed ``-- name`` or ``# name`` are, in the language they read as.
    """
    listed = finding.evidence.get("remedies")
    if isinstance(listed, list) and listed and all(isinstance(r, dict) and "code" in r for r in listed):
        return "".join(Code(str(r["code"]), str(r.get("language") or ""), str(r.get("name") or ""))._repr_html_()
                       for r in listed)
    parts = []
    for block in re.split(r"\n\n(?=(?:--|#) )", finding.fix.strip()):
        title, _, body = block.partition("\n")
        if title.startswith(("-- ", "# ")) and body.strip():
            parts.append(Code(body, title=title.split(" ", 1)[1])._repr_html_())
        elif block:
            parts.append(code_html(block))
    return "".join(parts)


def findings_html(findings: Iterable[Finding]) -> str:
    """The findings as a table, worst first, with full messages and their fixes; empty when there are none."""
    order = {s: n for n, s in enumerate(reversed(SEVERITIES))}
    rows = [f'<tr class="finding severity-{_e(f.severity)}"><td style="{_NARROW}">{badge(f.severity)}</td>'
            f'<td style="{_NARROW}"><code>{_e(f.code)}</code></td>'
            f'<td style="{_NARROW}">{f"<code style={_NOWRAP}>{_e(f.object)}</code>" if f.object else ""}</td>'
            f'<td style="{_CELL};width:50%;white-space:pre-wrap">{_e(f.message)}</td>'
            f'<td style="{_CELL};width:47%">{fix_html(f)}</td></tr>'
            for f in sorted(findings, key=lambda f: order.get(f.severity, 9))]
    if not rows:
        return ""
    head = "".join(f'<th style="{_CELL};font-weight:600">{h}</th>' for h in ("", "code", "object", "message", "fix"))
    # table-layout:auto: JupyterLab's stylesheet fixes the layout, which gives the badge as much room as the message
    return (f'<table class="dbrunbook-findings" style="border-collapse:collapse;table-layout:auto;margin-top:6px;'
            f'width:100%;font-size:.92em;background:#fff"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


_CELL = "border:1px solid #ddd;padding:3px 6px;vertical-align:top;text-align:left"
_NARROW = _CELL + ";width:1%;white-space:nowrap"
_NOWRAP = '"white-space:nowrap"'


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")
