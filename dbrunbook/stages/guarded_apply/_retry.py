"""Short lock waits, retried: a lock timeout ends an attempt that did nothing, and another follows after a backoff.

The migration session waits for a lock at most ``lock_timeout_ms`` (2 s unless the plan or the apply says
otherwise), so the sessions queued behind its request are not held up long. A lock timeout is then retried:

- where the whole upgrade is one transaction (PostgreSQL, SQLite), the transaction is rolled back and run again;
- revision by revision (MariaDB/MySQL, or a plan with ``autocommit_block``), a revision is run again only when
  its *first* statement timed out: nothing of it ran (the statement log says so), so nothing is run twice.

At most ``attempts`` attempts in all (``lock_retries``, default 5), within ``budget_seconds`` from the first,
each after an exponential backoff with jitter (so two waiting appliers do not retry in step). Every attempt is
recorded (its number, how long it waited, the error, the sessions in its way).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

DEFAULT_LOCK_TIMEOUT_MS = 2000
DEFAULT_LOCK_RETRIES = 5
DEFAULT_BACKOFF_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and for how long, an upgrade that timed out waiting for a lock is tried again."""

    #: Attempts in all, the first included (``lock_retries``).
    attempts: int = DEFAULT_LOCK_RETRIES
    #: No attempt starts later than this many seconds after the first one began.
    budget_seconds: float = 30.0
    #: The first backoff; each next one doubles, up to ``cap_seconds``.
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    cap_seconds: float = BACKOFF_CAP_SECONDS

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, capped, half of it jittered."""
        full = min(self.cap_seconds, self.backoff_seconds * 2.0 ** (attempt - 1))
        jitter: float = (rng or random).uniform(0, full / 2)
        return full / 2 + jitter

    def stop(self, attempt: int, spent: float, delay: float) -> str:
        """Why no attempt follows attempt ``attempt`` ("" when one may), ``spent`` seconds after the first began."""
        if attempt >= self.attempts:
            return f"lock_retries: {self.attempts} attempt(s) made"
        if spent + delay > self.budget_seconds:
            return f"the retry budget of {self.budget_seconds:g}s would be spent"
        return ""


def error_code(exc: BaseException) -> str:
    """The database's own code of an error: SQLSTATE, MySQL error number, or SQLite primary result code."""
    orig: Any = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL/mysqlclient: the error number (their sqlstate is often HY000)
        return str(args[0])
    value = getattr(orig, "sqlite_errorcode", None)
    if isinstance(value, int):
        return str(value & 0xFF)  # the extended code's primary part (SQLITE_BUSY_* are all SQLITE_BUSY)
    for attribute in ("sqlstate", "pgcode"):  # psycopg 3, psycopg2
        found = getattr(orig, attribute, None)
        if found:
            return str(found)
    return ""


def is_lock_timeout(exc: BaseException, codes: tuple[str, ...]) -> bool:
    """``exc`` says a lock wait timed out (``codes``: the dialect's, from :data:`~._monitor.APPLY_FACTS`)."""
    return bool(codes) and error_code(exc) in codes
