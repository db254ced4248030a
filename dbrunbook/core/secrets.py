"""Keep database passwords out of notebooks, HTML, logs and manifests.

A URL given by the user may hold a password. dbrunbook only ever shows or stores the masked
form (``***`` in place of the password). The engine hands the password to stage kernels
through the ``DBRUNBOOK_PASSWORD`` environment variable, and :func:`resolve_url` puts it back
inside the kernel when an engine is made. After every run the folder is scanned for the
secret values (:func:`find_secrets`).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dbrunbook.dialects import aliased
from dbrunbook.errors import ConfigError, UsageError

PASSWORD_ENV = "DBRUNBOOK_PASSWORD"
MASK = "***"
# Query keys some drivers accept a password under, besides the URL's password field.
_PASSWORD_QUERY_KEYS = ("password", "passwd", "pwd")


def parse_url(url: str | URL) -> URL:
    """Parse ``url`` or raise a one-line :class:`UsageError` that never shows the password.

    ``postgres://`` (Heroku's and many hosts' spelling, which SQLAlchemy refuses) is read as
    ``postgresql://``, its driver kept (``postgres+psycopg://``), with a :class:`DbrunbookNote`.
    """
    if isinstance(url, URL):
        return url
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        shown = url.split("@")[-1] if "@" in url else url
        raise UsageError(f"malformed database URL ({exc.__class__.__name__}): ...{shown}") from None
    backend, plus, driver = parsed.drivername.partition("+")
    dialect = aliased(backend)
    if dialect is not None:
        import warnings

        from dbrunbook.errors import DbrunbookNote

        # One note per process (the warning's text and place never change), however often the URL is parsed.
        warnings.warn(f"a {backend}:// URL is read as {dialect.name}:// (SQLAlchemy's name for the dialect)",
                      DbrunbookNote, stacklevel=1)
        parsed = parsed.set(drivername=f"{dialect.name}{plus}{driver}")
    return parsed


def secret_values(url: str | URL) -> list[str]:
    """Every secret in ``url`` (password field and password-like query keys)."""
    parsed = parse_url(url)
    found = [parsed.password] if parsed.password and parsed.password != MASK else []
    for key in _PASSWORD_QUERY_KEYS:
        value = parsed.query.get(key)
        if isinstance(value, str) and value and value != MASK:
            found.append(value)
    return [str(v) for v in found]


def mask_url(url: str | URL) -> str:
    """The URL as it may be shown and stored: password and password-like query keys masked."""
    parsed = parse_url(url)
    query = {k: (MASK if k in _PASSWORD_QUERY_KEYS else v) for k, v in parsed.query.items()}
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    return shown.replace("%2A%2A%2A", MASK)


def kernel_environment(url: str | URL) -> dict[str, str]:
    """Environment variables a stage kernel needs to rebuild the real URL from the masked one."""
    secrets = secret_values(url)
    return {PASSWORD_ENV: secrets[0]} if secrets else {}


def resolve_url(url: str | URL) -> URL:
    """Put the password back into a masked URL, from ``DBRUNBOOK_PASSWORD``."""
    parsed = parse_url(url)
    if parsed.password != MASK:
        return parsed
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        raise ConfigError(f"the URL's password is masked; set {PASSWORD_ENV} to supply it")
    return parsed.set(password=password)


def _forms(secret: str) -> set[bytes]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
    return {f.encode() for f in forms if len(f) >= 3}


def find_secrets(folder: Path, secrets: Iterable[str]) -> list[Path]:
    """Files below ``folder`` that contain any of ``secrets`` (raw or URL-quoted)."""
    needles = set().union(*(_forms(s) for s in secrets)) if secrets else set()
    if not needles:
        return []
    hits = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(n in data for n in needles):
            hits.append(path)
    return hits


def redact_secrets(paths: Iterable[Path], secrets: Iterable[str]) -> None:
    """Replace every form of ``secrets`` in ``paths`` with the mask, in place."""
    needles = sorted(set().union(*(_forms(s) for s in secrets)), key=len, reverse=True)
    for path in paths:
        data = path.read_bytes()
        for needle in needles:
            data = data.replace(needle, MASK.encode())
        path.write_bytes(data)
