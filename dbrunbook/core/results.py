"""Stage results: findings, verdicts, and the one helper that records them.

A stage notebook records its result with :func:`record`. That shows the result as a display
with the ``application/vnd.dbrunbook.result+json`` mimetype (with a readable text/plain
form) and writes the same JSON as a sidecar, ``NN-stage.result.json``, in the run folder.
Later stages and the engine read sidecars with :func:`load_result`; nothing is scraped from
notebook outputs.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MIMETYPE = "application/vnd.dbrunbook.result+json"
SEVERITIES = ("info", "warn", "block")
VERDICTS = ("pass", "warn", "block")
_VERDICT_OF = {"info": "pass", "warn": "warn", "block": "block"}


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


@dataclass
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
        lines = [f"{self.stage}: {self.verdict.upper()} - {self.summary}"]
        for f in self.findings:
            where = f" [{f.object}]" if f.object else ""
            lines.append(f"  {f.severity:5} {f.code}{where}: {f.message}")
        return "\n".join(lines)


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
    display({MIMETYPE: json.loads(json.dumps(payload, default=str)), "text/plain": result.text()},  # type: ignore[no-untyped-call]
            raw=True)
    return result


def load_result(run_dir: str | Path, stage: str) -> StageResult | None:
    """The recorded result of ``stage`` in ``run_dir``, or None if it recorded none."""
    path = sidecar_path(Path(run_dir), stage)
    if not path.exists():
        return None
    return StageResult.from_json(json.loads(path.read_text()))
