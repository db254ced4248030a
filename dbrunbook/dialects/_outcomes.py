"""What a migration does to rows that break a new rule: fails, loses their values, or keeps them.

Each dialect lists one :class:`Outcome` per problem the data checks look for (``null``,
``duplicate``, ``too_long`` ...); MariaDB/MySQL have a second list for a strict ``sql_mode``.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Effects, from worst to mildest; ``fails`` and ``loses`` block the run.
FAILS, LOSES, KEEPS = "fails", "loses", "keeps"
BLOCKING = (FAILS, LOSES)
#: The problems every dialect must say the outcome of (the ``problem`` names the check modules use).
PROBLEMS = ("null", "required", "duplicate", "orphan", "check", "too_long", "overflow", "bad_cast", "rounded",
            "reformatted",
            "enum", "dropped")


@dataclass(frozen=True)
class Outcome:
    """What the migration does with an offending row: ``effect`` and the words for it."""

    effect: str
    words: str


def fails(words: str = "the migration fails") -> Outcome:
    """The migration stops on the first offending row."""
    return Outcome(FAILS, words)


def loses(words: str) -> Outcome:
    """The migration runs and the offending values are changed or lost silently."""
    return Outcome(LOSES, words)


def keeps(words: str) -> Outcome:
    """The migration runs and the offending values stay as they are."""
    return Outcome(KEEPS, words)


#: Every dialect: the values of a dropped column go with it.
LOST_WITH_COLUMN = loses("the values are deleted with it")
