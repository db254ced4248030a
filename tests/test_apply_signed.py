"""`dbrunbook apply` with signatures, approvals and notifications configured, on each dialect's real database.

The project trusts two keys (an author's and a reviewer's), requires one approval and tells a local
webhook about its applies. A plan run signed by the author is refused until the reviewer approves it,
then applies; a forged plan (a script changed and the manifest's hashes recomputed) is refused by the
signature, and the same forgery signed again is refused by the comparison with the reviewed SQL.
"""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from conftest import new_database
from dbrunbook.core.archive import MANIFEST, sha256
from dbrunbook.core.db import drop_database
from dbrunbook.core.signing import KEY_ENV, allowed_signer_line, generate_key, sign_manifest
from dbrunbook.stages.guarded_apply import ApplyRefused, apply, plan_apply
from test_apply import Planned, _project
from test_notify import Hook


@pytest.fixture
def hook():
    server = Hook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def signed(dialect: str, tmp_path: Path, hook: Hook, monkeypatch: pytest.MonkeyPatch):
    """A project on ``dialect`` that trusts an author and a reviewer, wants one approval, and notifies ``hook``.

    The guards read files, not the database, but the Done-when asks for each dialect: the apply they let
    through, or stop, is real on each."""
    url = new_database(dialect, tmp_path)
    made = Planned(dialect, url, _project(tmp_path, url))
    keys = tmp_path / "keys"
    keys.mkdir()
    author, reviewer = keys / "author", keys / "reviewer"
    lines = [allowed_signer_line(generate_key(author, "author@example.com")),
             allowed_signer_line(generate_key(reviewer, "reviewer@example.com"))]
    (made.project / "allowed_signers").write_text("\n".join(lines) + "\n")
    with (made.project / "pyproject.toml").open("a") as settings:
        settings.write(f'trusted_keys = "allowed_signers"\nrequired_approvals = 1\nnotify_webhook = "{hook.url()}"\n')
    made.reset()
    monkeypatch.setenv(KEY_ENV, str(author))  # update signs its run as the author when it completes
    made.plan_run = made.plan(tmp_path)
    monkeypatch.delenv(KEY_ENV)
    yield made, reviewer
    drop_database(url)


def _events(hook: Hook) -> list[str]:
    return [event["event"] for event in hook.received]


def test_a_signed_plan_applies_once_approved_and_the_webhook_hears_of_it(signed, hook, tmp_path):
    made, reviewer = signed
    assert (made.plan_run / "signatures").is_dir()  # signed by the author as the run completed
    assert _events(hook) == ["test"]  # stage 10's test notification ticked the monitoring item
    plan = plan_apply(made.plan_run, made.target())
    by_id = {g.id: g for g in plan.guards}
    assert by_id["signed"].ok and "author@example.com" in by_id["signed"].detail
    assert [g.id for g in plan.refused] == ["approved"] and "0 of 1" in by_id["approved"].detail
    with pytest.raises(ApplyRefused, match="approved"):
        apply(plan, made.target(), tmp_path / "refused")
    assert made.state()[0] == "0001" and _events(hook)[-1] == "apply-aborted"

    sign_manifest(made.plan_run, reviewer, role="approver", signer="reviewer@example.com")
    plan = plan_apply(made.plan_run, made.target())
    assert plan.refused == [], plan.guards
    outcome = apply(plan, made.target(), tmp_path / "apply" / "11-guarded-apply")
    assert outcome.applied and made.state()[0] == "0002"
    assert _events(hook)[-2:] == ["apply-started", "apply-finished"]
    finished = hook.received[-1]
    assert finished["revision_to"] == "0002" and "applied 0001 -> 0002" in finished["text"]
    assert [n["event"] for n in outcome.notifications] == ["apply-started", "apply-finished"]
    assert all(n["ok"] for n in outcome.notifications)


def test_approvals_cannot_be_accepted_on_the_record(signed):
    made, _ = signed
    with pytest.raises(Exception, match="approved cannot be accepted"):
        plan_apply(made.plan_run, made.target(), accept=["approved"])


def _forge(plan_run: Path, dest: Path) -> Path:
    """A copy of ``plan_run`` whose revision adds another column, with the manifest's hashes recomputed."""
    forged = dest / plan_run.name
    shutil.copytree(plan_run, forged)
    script = next((forged / "03-migration" / "alembic" / "versions").glob("0002*.py"))
    source = script.read_text()
    assert "def upgrade():\n" in source
    script.write_text(source.replace("def upgrade():\n", "def upgrade():\n    op.add_column('orders', "
                                                          "sa.Column('forged', sa.Integer()))\n", 1))
    manifest = json.loads((forged / MANIFEST).read_text())
    relative = str(script.relative_to(forged))
    assert relative in manifest["files"]
    manifest["files"][relative] = sha256(script)
    (forged / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return forged


def test_a_forged_plan_is_refused_by_its_signature_then_by_the_reviewed_sql(signed, tmp_path):
    made, reviewer = signed
    sign_manifest(made.plan_run, reviewer, role="approver", signer="reviewer@example.com")
    forged = _forge(made.plan_run, tmp_path / "forged")
    plan = plan_apply(forged, made.target())
    by_id = {g.id: g for g in plan.guards}
    assert by_id["manifest-verified"].ok  # the hashes were recomputed: only the signatures know
    assert not by_id["signed"].ok and "do not verify" in by_id["signed"].detail
    assert {"signed", "approved"} <= {g.id for g in plan.refused}
    before = made.state()  # revision, schema and data
    with pytest.raises(ApplyRefused):
        apply(plan, made.target(), tmp_path / "refused")
    assert made.state() == before

    # The forger signs again with the trusted keys (stolen, say): the SQL that would run is not the reviewed SQL.
    for old in (forged / "signatures").iterdir():
        old.unlink()
    sign_manifest(forged, tmp_path / "keys" / "author", role="author", signer="author@example.com")
    sign_manifest(forged, reviewer, role="approver", signer="reviewer@example.com")
    plan = plan_apply(forged, made.target())
    assert plan.refused == [], plan.guards
    outcome = apply(plan, made.target(), tmp_path / "apply" / "11-guarded-apply")
    assert not outcome.applied and outcome.sql_mismatch and "not the reviewed SQL" in outcome.error
    assert made.state() == before
