"""The error of a source lint cannot read at all (re-exported by :mod:`.model`)."""
from __future__ import annotations

from dbrunbook.errors import UsageError


class UnreadableSource(UsageError):
    """A file lint cannot read at all (SQL with an unterminated quote, Python that does not parse); exit 2."""
