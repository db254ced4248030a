"""keygen, sign and approve on a real run folder of the demo, as a user runs them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dbrunbook.core import archive
from dbrunbook.core.config import load_run_settings
from dbrunbook.core.signing import SIGNATURES, require_signatures, trusted_keys, verify_signatures
from dbrunbook.demo import write_demo
from dbrunbook.errors import EXIT_USAGE, EXIT_VERIFY, SignatureInvalid
from helpers.runs import dbrunbook
from test_cli import assert_one_line_error  # where it lives for now (tests/helpers/ is being filled)


@pytest.fixture(scope="module")
def signed_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo project with a plan run (stage 01), the team's keys, and two required approvals."""
    project = write_demo(tmp_path_factory.mktemp("signing") / "shop", users=400).path
    result = dbrunbook("update", "--dry-run", "--stages", "01", cwd=project)
    assert result.returncode in (0, 1), result.stderr
    lines = []
    for name in ("alice", "bob", "carol", "dave"):
        made = dbrunbook("keygen", str(project / "keys" / name), "--comment", f"{name}@example.com")
        assert made.returncode == 0, made.stderr
        if name != "bob":  # bob's key is not trusted
            lines.append(made.stdout.strip().splitlines()[-1])
    (project / "allowed_signers").write_text("\n".join(lines) + "\n")
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write('trusted_keys = "allowed_signers"\nrequired_approvals = 2\n')
    return project, next((project / "runs").iterdir())


@pytest.fixture
def project(signed_project: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the signed project for one test: the test may sign and tamper with its run."""
    copy = tmp_path / "shop"
    shutil.copytree(signed_project[0], copy)
    return copy, copy / "runs" / signed_project[1].name


def test_keygen_prints_the_allowed_signers_line_and_never_overwrites(signed_project):
    project, _ = signed_project
    public = (project / "keys" / "alice.pub").read_text().split()
    line = (project / "allowed_signers").read_text().splitlines()[0]
    assert line == f'alice@example.com namespaces="dbrunbook" {public[0]} {public[1]}'
    assert_one_line_error(dbrunbook("keygen", str(project / "keys" / "alice")), EXIT_USAGE, "already exists")


def test_sign_then_approve_until_the_approvals_are_enough(project):
    folder, run = project
    signed = dbrunbook("sign", run.name, "--key", "keys/alice", "--signer", "alice", cwd=folder)
    assert signed.returncode == 0, signed.stderr
    assert "signed as author by alice@example.com" in signed.stdout and "0 of 2 required" in signed.stdout
    own = dbrunbook("approve", "latest", "--key", "keys/alice", cwd=folder)
    assert own.returncode == 0 and "the author's own key" in own.stdout
    outsider = dbrunbook("approve", str(run), "--key", "keys/bob", cwd=folder)
    assert outsider.returncode == 0 and "note: not counted by dbrunbook apply" in outsider.stdout
    assert dbrunbook("approve", run.name[-6:], "--key", "keys/carol", cwd=folder).returncode == 0
    enough = dbrunbook("approve", "latest", "--key", str(folder / "keys" / "dave"), "--project", str(folder))
    assert enough.returncode == 0 and "2 of 2 required trusted approval(s)" in enough.stdout, enough.stdout
    trusted = trusted_keys(load_run_settings(folder))
    checks = require_signatures(run, trusted, required_approvals=2)
    assert sorted((c.role, c.status) for c in checks) == [("approver", "untrusted"), ("approver", "valid"),
                                                          ("approver", "valid"), ("approver", "valid"),
                                                          ("author", "valid")]


def test_a_forged_plan_run_is_refused_by_signature(project):
    folder, run = project
    assert dbrunbook("sign", "latest", "--key", "keys/alice", cwd=folder).returncode == 0
    manifest = json.loads((run / "manifest.json").read_text())
    sidecar = run / "01-schema-analysis.result.json"
    sidecar.write_text(sidecar.read_text().replace('"block"', '"pass"'))  # the finding waved through
    manifest["files"][sidecar.name] = archive.sha256(sidecar)  # and its hash recomputed
    manifest["verdict"] = "PASS"
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
    assert [c.status for c in verify_signatures(run, trusted_keys(load_run_settings(folder)))] == ["invalid"]
    assert_one_line_error(dbrunbook("approve", "latest", "--key", "keys/carol", cwd=folder), EXIT_VERIFY,
                          "manifest.json changed after it was signed")
    with pytest.raises(SignatureInvalid):
        require_signatures(run, trusted_keys(load_run_settings(folder)))


def test_sign_refuses_a_changed_folder_and_a_missing_key(project):
    folder, run = project
    assert_one_line_error(dbrunbook("sign", "latest", "--key", "keys/nobody", cwd=folder), EXIT_USAGE,
                          "signing key keys/nobody")
    (run / "01-schema-analysis.ipynb").write_text("{}")
    assert_one_line_error(dbrunbook("sign", "latest", "--key", "keys/alice", cwd=folder), EXIT_VERIFY,
                          "not signed: 01-schema-analysis.ipynb was changed")
    assert not (run / SIGNATURES).exists()
    assert_one_line_error(dbrunbook("approve", "no-such-run", "--key", "keys/carol", cwd=folder), EXIT_USAGE,
                          "no run matches")


@pytest.mark.skipif(not hasattr(archive, "SIGNATURES"),
                    reason="core/archive.py does not leave signatures/ out of the manifest's hashes yet")
def test_verify_passes_on_a_signed_run_and_fails_on_an_edited_field(project):
    folder, run = project
    assert dbrunbook("sign", "latest", "--key", "keys/alice", cwd=folder).returncode == 0
    verified = dbrunbook("verify", str(run), "--project", str(folder))
    assert verified.returncode == 0, verified.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "verdict": "PASS"}, indent=2))
    assert_one_line_error(dbrunbook("verify", str(run), "--project", str(folder)), EXIT_VERIFY,
                          "manifest.json changed after it was signed")
