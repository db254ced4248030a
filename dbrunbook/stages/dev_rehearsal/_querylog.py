"""Where the query-counting pytest plugin of stage 07 lives, how a command loads it, and how its log is read.

Stage 04's rehearsal runs the test command (with the plugin loaded when it is pytest) and stage 07
(:mod:`dbrunbook.stages.tests`) reports the counts: this module sits with the rehearsal so that stage 07 can
build on the rehearsal without the rehearsal depending on stage 07. ``dbrunbook.stages.tests`` re-exports it.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The plugin's module name, its folder (nothing else lives there, so nothing else becomes
#: importable) and the variable naming its log.
PLUGIN = "dbrunbook_querycount"
PLUGIN_DIR = Path(__file__).resolve().parents[1] / "tests" / "_plugins"
LOG_ENV = "DBRUNBOOK_QUERY_LOG"


def plugin_environment(query_log: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables that make a pytest run load the plugin and log to ``query_log``.

    The plugin folder is prepended to the caller's ``PYTHONPATH`` and ``-p`` appended to its
    ``PYTEST_ADDOPTS``; a command that is not pytest ignores them.
    """
    env = os.environ if environ is None else environ
    path, addopts = env.get("PYTHONPATH", ""), env.get("PYTEST_ADDOPTS", "")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(PLUGIN_DIR), path) if p),
            "PYTEST_ADDOPTS": f"{addopts} -p {PLUGIN}".strip(), LOG_ENV: str(query_log)}


def parse_log(text: str) -> list[dict[str, Any]]:
    """The plugin's JSON lines as dicts; a line cut short (a killed run) is skipped."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("test"), str):
            records.append(record)
    return records
