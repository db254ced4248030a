"""Notifications: tell a command or a webhook (a chat channel's) when an apply starts, waits, aborts or ends.

The targets are ``notify_command`` (run through the shell, the event as JSON on stdin, ``DBRUNBOOK_EVENT`` in
its environment) and ``notify_webhook`` (the event POSTed as JSON; ``env:NAME`` reads the URL from the
environment, as a webhook's URL is itself a secret) in ``[tool.dbrunbook]``, each bounded by
``notify_timeout`` seconds. :func:`notify` never raises because a target failed: an apply must not die because
the chat is down; the :class:`Delivery` it returns says what failed, and is what gets recorded, its URLs masked
(``https://hooks.example.com/***``). The event document carries a one-line ``text`` (what Slack-, Mattermost-
and Rocket.Chat-style incoming webhooks display) beside its fields. See docs/signing.md.
"""
from __future__ import annotations

import getpass
import http.client
import json
import os
import platform
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dbrunbook import __version__
from dbrunbook.core.secrets import MASK, PASSWORD_ENV, mask_url
from dbrunbook.errors import ConfigError, DbrunbookError, NotificationFailed, UsageError

if TYPE_CHECKING:
    from dbrunbook.core.config import RunSettings

#: The events, and when each is sent.
EVENTS = {
    "apply-started": "an apply passed its guards and is about to change the target",
    "apply-blocked": "an apply's lock wait timed out; it backs off and tries again (who blocked it is named)",
    "apply-aborted": "an apply was refused, aborted past its limit, or failed; the payload says what ran",
    "apply-finished": "an apply ended and the target is at the plan's head",
    "validation-failed": "the post-migration validation (stage 12) found a blocking problem",
    "test": "a test event (dbrunbook notify-test, stage 10's monitoring-and-alerting item)",
}
EVENT_ENV = "DBRUNBOOK_EVENT"
#: A URL inside a text (a summary, an error message): masked wherever it appears.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


@dataclass
class TargetDelivery:
    """One target's answer to one event: ``kind`` is ``command`` or ``webhook``, ``target`` is masked."""

    kind: str
    target: str
    ok: bool
    detail: str
    seconds: float = 0.0


@dataclass
class Delivery:
    """What became of one event: one :class:`TargetDelivery` per configured target (none when none is)."""

    event: str
    targets: list[TargetDelivery] = field(default_factory=list)

    @property
    def configured(self) -> bool:
        return bool(self.targets)

    @property
    def ok(self) -> bool:
        """Delivered to every configured target (and at least one is configured)."""
        return self.configured and all(t.ok for t in self.targets)

    @property
    def failed(self) -> list[TargetDelivery]:
        return [t for t in self.targets if not t.ok]

    def summary(self) -> str:
        """One line for a record or a checklist item."""
        if not self.configured:
            return f"{self.event}: no notification target (notify_command or notify_webhook in [tool.dbrunbook])"
        parts = [f"{t.kind} {t.target}: {'delivered' if t.ok else 'FAILED'} ({t.detail}, {t.seconds:.2f}s)"
                 for t in self.targets]
        return f"{self.event}: " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "ok": self.ok, "targets": [asdict(t) for t in self.targets]}

    def raise_for_failure(self) -> None:
        """Raise :class:`ConfigError` when no target is configured, :class:`NotificationFailed` when one failed."""
        if not self.configured:
            raise ConfigError("no notification target: set notify_command or notify_webhook in [tool.dbrunbook]")
        if self.failed:
            raise NotificationFailed(self.event, self.failed)


def mask_webhook(url: str) -> str:
    """A webhook URL as it may be shown: scheme and host kept, credentials, path and query masked."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return MASK
    port = f":{parts.port}" if parts.port else ""
    secret = parts.path.strip("/") or parts.query or parts.fragment or parts.username
    return f"{parts.scheme}://{parts.hostname}{port}" + (f"/{MASK}" if secret else "")


def event_document(event: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document of ``event``: its name, a one-line ``text``, when, where, and the payload, masked.

    Conventional payload keys: ``run_id`` (the apply run), ``plan_run``, ``target`` (a masked URL),
    ``summary`` (one line); any other key is passed on.
    """
    if event not in EVENTS:
        raise UsageError(f"unknown event {event!r} (events: {', '.join(EVENTS)})")
    given = _masked(dict(payload or {}))
    text = given.pop("text", None) or _text(event, given)
    return {"event": event, "text": text, "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(), "user": getpass.getuser(), "dbrunbook_version": __version__,
            **{k: v for k, v in given.items() if k not in ("event", "time")}}


def notify(event: str, payload: Mapping[str, Any] | None, settings: RunSettings) -> Delivery:
    """Send ``event`` to every target of ``settings``; never raises because a target failed (see :class:`Delivery`)."""
    body = json.dumps(event_document(event, payload), default=str)
    delivery = Delivery(event)
    if settings.notify_command:
        delivery.targets.append(_run_command(settings.notify_command, event, body, settings))
    if settings.notify_webhook:
        delivery.targets.append(_post(settings.notify_webhook, body, settings.notify_timeout))
    return delivery


def send_test(settings: RunSettings, summary: str = "") -> Delivery:
    """Send a ``test`` event to every target (``dbrunbook notify-test``; stage 10 ticks its item on delivery)."""
    return notify("test", {"summary": summary or "test notification: dbrunbook can reach this channel"}, settings)


def _text(event: str, payload: dict[str, Any]) -> str:
    run = f" {payload['run_id']}" if payload.get("run_id") else ""
    target = f" on {payload['target']}" if payload.get("target") else ""
    summary = f": {payload['summary']}" if payload.get("summary") else ""
    return f"[dbrunbook] {event}{run}{target}{summary}"


def _masked(value: Any) -> Any:
    """``value`` with every URL masked and the database password (if this process holds it) replaced."""
    if isinstance(value, dict):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    if not isinstance(value, str):
        return value
    password = os.environ.get(PASSWORD_ENV)
    if password and password in value:
        value = value.replace(password, MASK)
    return _URL.sub(lambda found: _mask_any_url(found.group()), value) if "://" in value else value


def _mask_any_url(url: str) -> str:
    if url.split("://", 1)[0].lower() in ("http", "https"):
        return mask_webhook(url)
    try:
        return mask_url(url)
    except DbrunbookError:  # not a database URL either: nothing of it is shown
        return MASK


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that must not be recorded: itself, its credentials, path and query."""
    parts = urlsplit(url)
    return [url, parts.netloc.rpartition("@")[0], parts.path, parts.query, parts.fragment]


def _run_command(command: str, event: str, body: str, settings: RunSettings) -> TargetDelivery:
    words = command.split()
    urls = [w for w in words if "://" in w]
    shown = " ".join(mask_webhook(w) if w in urls else w for w in words)
    secrets = [s for url in urls for s in _url_secrets(url)]
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}  # the database password is not the chat's
    env[EVENT_ENV] = event
    started = time.monotonic()
    try:
        # A session of its own, so that a timeout ends the command and whatever it started, not only the shell.
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=settings.project_dir, env=env,
                                start_new_session=True)
    except OSError as exc:
        return TargetDelivery("command", shown, False, _scrub(f"cannot start: {exc}", secrets))
    try:
        _, err = proc.communicate(body, timeout=settings.notify_timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return TargetDelivery("command", shown, False, f"timed out after {settings.notify_timeout:g}s",
                              time.monotonic() - started)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        last = [line for line in err.splitlines() if line.strip()][-1:]
        why = f"exit {proc.returncode}" + (f": {last[0].strip()}" if last else "")
        return TargetDelivery("command", shown, False, _scrub(why, secrets), seconds)
    return TargetDelivery("command", shown, True, "exit 0", seconds)


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (AttributeError, OSError):  # no process groups here, or it ended meanwhile
        proc.kill()
    proc.communicate()


def _post(configured: str, body: str, timeout: float) -> TargetDelivery:
    url = configured
    if configured.startswith("env:"):
        url = os.environ.get(configured[4:], "")
        if not url:
            return TargetDelivery("webhook", configured, False, f"environment variable {configured[4:]} is not set")
    shown = mask_webhook(url) + (f" ({configured})" if configured != url else "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return TargetDelivery("webhook", shown, False, "not an http(s) URL")
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"dbrunbook/{__version__}"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
            ok, detail = 200 <= status < 300, f"HTTP {status}"
    except urllib.error.HTTPError as exc:
        ok, detail = False, f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        ok, detail = False, (f"timed out after {timeout:g}s" if isinstance(reason, TimeoutError)
                             else f"unreachable: {reason}")
    except TimeoutError:
        ok, detail = False, f"timed out after {timeout:g}s"
    except (OSError, ValueError, http.client.HTTPException) as exc:  # a reset connection, a malformed answer
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return TargetDelivery("webhook", shown, ok, _scrub(detail, _url_secrets(url)), time.monotonic() - started)
