"""Notifications reach a local webhook and a command; a target that fails is reported, never raised."""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from dbrunbook.cli import main
from dbrunbook.core.config import RunSettings, load_run_settings
from dbrunbook.core.notify import EVENT_ENV, EVENTS, Delivery, event_document, mask_webhook, notify, send_test
from dbrunbook.core.secrets import PASSWORD_ENV
from dbrunbook.errors import EXIT_BLOCKED, EXIT_USAGE, ConfigError, NotificationFailed, UsageError


class Hook(ThreadingHTTPServer):
    """A chat channel's incoming webhook on 127.0.0.1: records what it is sent, answers ``status`` after ``delay``."""

    status = 200
    delay = 0.0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict] = []
        self.headers: list[dict] = []

    def url(self, path: str = "/hooks/T000/B000/SECRET-TOKEN-42") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and left before the answer: expected of the slow hook


class _Handler(BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:  # http.server calls it by this name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))
        self.server.headers.append(dict(self.headers))
        time.sleep(self.server.delay)
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def settings(tmp_path: Path, **notify: object) -> RunSettings:
    return replace(RunSettings(tmp_path / "runs", project_dir=tmp_path), **notify)


def closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nobody listens there
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PAYLOAD = {"run_id": "20261124T003333Z-shop-251ab5", "target": "postgresql+psycopg://app:***@db/shop",
           "summary": "0001 -> 0002", "plan_run": "runs/20261124T000000Z-shop-aaaaaa"}


def test_a_local_webhook_receives_every_event(tmp_path, hook):
    config = settings(tmp_path, notify_webhook=hook.url())
    for event in EVENTS:
        delivery = notify(event, PAYLOAD, config)
        assert delivery.ok and delivery.targets[0].detail == "HTTP 200", delivery.summary()
    assert [e["event"] for e in hook.received] == list(EVENTS)
    started = hook.received[0]
    assert started["run_id"] == PAYLOAD["run_id"] and started["target"] == PAYLOAD["target"]
    assert started["text"] == f"[dbrunbook] apply-started {PAYLOAD['run_id']} on {PAYLOAD['target']}: 0001 -> 0002"
    assert hook.headers[0]["Content-Type"] == "application/json"


def test_the_webhooks_secret_is_masked_in_what_is_recorded(tmp_path, hook):
    delivery = notify("apply-finished", PAYLOAD, settings(tmp_path, notify_webhook=hook.url()))
    recorded = json.dumps(delivery.to_json()) + delivery.summary()
    assert "SECRET-TOKEN-42" not in recorded and "hooks" not in recorded
    assert delivery.targets[0].target == f"http://127.0.0.1:{hook.server_address[1]}/***"
    assert mask_webhook("https://user:pw@hooks.example.com:8443/services/T/B/X?token=1") == \
        "https://hooks.example.com:8443/***"
    assert mask_webhook("https://hooks.example.com") == "https://hooks.example.com"


def test_the_payload_is_masked_too(tmp_path, hook, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "pw-in-the-kernel-991")
    payload = {"target": "postgresql://app:hunter2@db/shop", "hook": hook.url(),
               "summary": "failed: password pw-in-the-kernel-991 rejected, see https://chat.example.com/T/SECRET-5 now",
               "nested": [{"url": hook.url()}]}
    document = event_document("apply-aborted", payload)
    text = json.dumps(document)
    assert "hunter2" not in text and "pw-in-the-kernel-991" not in text and "SECRET" not in text
    assert document["target"] == "postgresql://app:***@db/shop"
    assert document["summary"] == "failed: password *** rejected, see https://chat.example.com/*** now"


def test_an_unreachable_webhook_is_a_failed_delivery_not_an_error(tmp_path):
    config = settings(tmp_path, notify_webhook=f"http://127.0.0.1:{closed_port()}/hook/SECRET-1", notify_timeout=2.0)
    started = time.monotonic()
    delivery = notify("apply-started", PAYLOAD, config)
    assert time.monotonic() - started < 2.5
    assert not delivery.ok and delivery.configured and "unreachable" in delivery.failed[0].detail
    assert "SECRET-1" not in delivery.summary()
    with pytest.raises(NotificationFailed, match="apply-started notification not delivered: webhook"):
        delivery.raise_for_failure()


def test_an_error_status_and_a_slow_hook_fail_within_the_timeout(tmp_path, hook):
    hook.status = 500
    delivery = notify("apply-aborted", PAYLOAD, settings(tmp_path, notify_webhook=hook.url()))
    assert not delivery.ok and delivery.failed[0].detail.startswith("HTTP 500")
    hook.status, hook.delay = 200, 3.0
    started = time.monotonic()
    delivery = notify("apply-aborted", PAYLOAD, settings(tmp_path, notify_webhook=hook.url(), notify_timeout=0.5))
    assert not delivery.ok and "timed out" in delivery.failed[0].detail
    assert time.monotonic() - started < 2.5


def test_a_webhook_url_from_the_environment(tmp_path, hook, monkeypatch):
    config = settings(tmp_path, notify_webhook="env:CHAT_WEBHOOK_URL")
    monkeypatch.delenv("CHAT_WEBHOOK_URL", raising=False)
    missing = notify("test", {}, config)
    assert not missing.ok and missing.failed[0].detail == "environment variable CHAT_WEBHOOK_URL is not set"
    monkeypatch.setenv("CHAT_WEBHOOK_URL", hook.url())
    delivered = notify("test", {}, config)
    assert delivered.ok and delivered.targets[0].target.endswith("/*** (env:CHAT_WEBHOOK_URL)")
    for url in ("file:///etc/passwd", "not a url"):
        assert notify("test", {}, settings(tmp_path, notify_webhook=url)).failed[0].detail == "not an http(s) URL"


def test_a_command_gets_the_event_as_json_on_stdin(tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "kernel-secret-77")
    command = f'printf %s "${EVENT_ENV}" > event.txt; env > env.txt; cat > event.json'
    delivery = notify("validation-failed", PAYLOAD, settings(tmp_path, notify_command=command))
    assert delivery.ok and delivery.targets[0].kind == "command", delivery.summary()
    received = json.loads((tmp_path / "event.json").read_text())  # the command ran in the project folder
    assert received["event"] == "validation-failed" and received["run_id"] == PAYLOAD["run_id"]
    assert (tmp_path / "event.txt").read_text() == "validation-failed"
    assert "kernel-secret-77" not in (tmp_path / "env.txt").read_text()


def test_a_failing_or_hanging_command_is_reported(tmp_path):
    failing = notify("apply-finished", PAYLOAD, settings(
        tmp_path, notify_command="echo 'posting to https://hooks.example.com/T/SECRET-9 failed' >&2; exit 3"))
    assert not failing.ok and failing.failed[0].detail.startswith("exit 3: posting to")
    assert "SECRET-9" not in json.dumps(failing.to_json())
    started = time.monotonic()
    hanging = notify("apply-finished", PAYLOAD, settings(tmp_path, notify_command="sleep 30; true",
                                                         notify_timeout=0.5))
    assert not hanging.ok and hanging.failed[0].detail == "timed out after 0.5s"
    assert time.monotonic() - started < 5  # the shell and its sleep were ended, not waited for


def test_both_targets_are_told_and_one_failing_does_not_stop_the_other(tmp_path, hook):
    config = settings(tmp_path, notify_command="exit 1", notify_webhook=hook.url())
    delivery = notify("apply-started", PAYLOAD, config)
    assert [t.ok for t in delivery.targets] == [False, True] and len(hook.received) == 1


def test_nothing_configured_and_an_unknown_event(tmp_path):
    delivery = send_test(settings(tmp_path))
    assert delivery == Delivery("test") and not delivery.ok and not delivery.configured
    with pytest.raises(ConfigError, match="no notification target"):
        delivery.raise_for_failure()
    with pytest.raises(UsageError, match="unknown event"):
        notify("apply-exploded", {}, settings(tmp_path))


def test_settings_from_pyproject(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.dbrunbook]\nnotify_command = "cat > /dev/null"\n'
                         'notify_webhook = "env:CHAT_WEBHOOK_URL"\nnotify_timeout = 2\n')
    config = load_run_settings(tmp_path)
    assert (config.notify_command, config.notify_webhook, config.notify_timeout) == \
        ("cat > /dev/null", "env:CHAT_WEBHOOK_URL", 2.0)
    pyproject.write_text("[tool.dbrunbook]\nnotify_timeout = 0\n")
    with pytest.raises(ConfigError, match="notify_timeout"):
        load_run_settings(tmp_path)


def test_notify_test_command(tmp_path, hook):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f'[tool.dbrunbook]\nnotify_webhook = "{hook.url()}"\n')
    result = CliRunner().invoke(main, ["notify-test", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("delivered: webhook http://127.0.0.1:") and "SECRET" not in result.output
    assert hook.received[0]["event"] == "test"
    pyproject.write_text(f'[tool.dbrunbook]\nnotify_webhook = "http://127.0.0.1:{closed_port()}/x"\n')
    result = CliRunner().invoke(main, ["notify-test", "--project", str(tmp_path)])
    assert result.exit_code == EXIT_BLOCKED and "error: test notification not delivered" in result.output
    pyproject.write_text("[tool.dbrunbook]\n")
    result = CliRunner().invoke(main, ["notify-test", "--project", str(tmp_path)])
    assert result.exit_code == EXIT_USAGE and "no notification target" in result.output
