"""Which stage may start when: a stage waits only for the stages whose records it reads.

Each stage runs in a fresh kernel of its own and writes only into its own folder of the run, so two stages
that read nothing of each other can run side by side. The contract (:mod:`dbrunbook.core.contract`) says what
each stage reads; a template the contract does not know waits for every stage before it, and the stages after it
wait for it, as they always did.
Scratch copies are per stage (each names its own), so stages running together never share one.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dbrunbook.core import contract


def prerequisites(chosen: Sequence[Path]) -> dict[str, set[str]]:
    """For each chosen template, the chosen templates before it that must have finished before it starts."""
    names = [template.stem for template in chosen]
    unknown = {name for name in names if contract.by_name(name) is None}
    waits: dict[str, set[str]] = {}
    for index, name in enumerate(names):
        earlier = set(names[:index])
        spec = contract.by_name(name)
        # A template the contract does not know may read or write anything: it waits for every stage before it,
        # and every stage after it waits for it.
        waits[name] = (earlier if spec is None or "*" in spec.reads
                       else earlier & (set(spec.reads) | unknown))
    return waits


def default_jobs() -> int:
    """Stages run at once by default: one per core, at most two (each stage's kernel is one busy process, and
    the machine also runs the databases)."""
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def ready(pending: Sequence[Path], waits: dict[str, set[str]], finished: set[str]) -> list[Path]:
    """The pending templates whose prerequisites have all finished, in run order."""
    return [template for template in pending if waits[template.stem] <= finished]
