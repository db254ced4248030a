"""Signed audit records: a signature covers every field of the manifest and, through its hashes, every file."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dbrunbook.core.archive import sha256
from dbrunbook.core.config import load_run_settings
from dbrunbook.core.signing import (
    PASSPHRASE_ENV,
    SIGNATURES,
    allowed_signer_line,
    approvals,
    author_signed,
    canonical,
    generate_key,
    load_private_key,
    parse_allowed_signers,
    require_signatures,
    sign_manifest,
    trusted_keys,
    verify_signatures,
    verify_signed_run,
)
from dbrunbook.errors import ConfigError, SignatureInvalid, SigningKeyError, VerificationFailed

SSH_KEYGEN = shutil.which("ssh-keygen")


def make_run(folder: Path, **fields: object) -> Path:
    """A complete run folder: two files and a manifest naming their hashes, as the archive writes it."""
    folder.mkdir(parents=True)
    (folder / "01-schema-analysis.result.json").write_text('{"verdict": "block"}\n')
    (folder / "03-migration").mkdir()
    (folder / "03-migration" / "upgrade.sql").write_text("ALTER TABLE users ADD COLUMN email TEXT;\n")
    manifest = {"run_id": folder.name, "status": "complete", "target": "sqlite:///shop.db", "verdict": "BLOCK",
                "stages": [{"name": "01-schema-analysis", "status": "block", "summary": "1 blocking finding"}],
                "files": {}, **fields}
    write_manifest(folder, manifest)
    return folder


def write_manifest(folder: Path, manifest: dict[str, object], rehash: bool = True) -> None:
    if rehash:
        manifest["files"] = {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*"))
                             if p.is_file() and p.name != "manifest.json" and SIGNATURES not in p.parts}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def manifest_of(folder: Path) -> dict[str, object]:
    return dict(json.loads((folder / "manifest.json").read_text()))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four people's keys; alice, carol and dave are allowed signers, bob is not."""
    folder = tmp_path_factory.mktemp("keys")
    return {name: _key(folder, name) for name in ("alice", "bob", "carol", "dave")}


def _key(folder: Path, name: str) -> Path:
    generate_key(folder / name, f"{name}@example.com")
    return folder / name


@pytest.fixture(scope="module")
def trusted(keys: dict[str, Path]) -> list:
    lines = [allowed_signer_line(keys[n].with_suffix(".pub").read_text()) for n in ("alice", "carol", "dave")]
    return parse_allowed_signers("\n".join(lines))


def test_a_signed_run_verifies_for_a_trusted_key(tmp_path, keys, trusted):
    run = make_run(tmp_path / "run-1")
    written = sign_manifest(run, keys["alice"], role="author", signer="alice")
    assert written.parent == run / SIGNATURES and written.name.startswith("author-") and written.suffix == ".sig"
    record = json.loads(written.read_text())
    assert record["run_id"] == "run-1" and record["role"] == "author" and record["signer"] == "alice"
    assert record["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    [check] = verify_signatures(run, trusted)
    assert check.ok and check.principal == "alice@example.com" and check.role == "author"
    assert author_signed(run, trusted).ok
    assert require_signatures(run, trusted) == [check]


@pytest.mark.parametrize("edit", [
    pytest.param(lambda m: m.update(verdict="PASS"), id="verdict"),
    pytest.param(lambda m: m["stages"][0].update(status="pass"), id="stage-status"),
    pytest.param(lambda m: m.update(target="postgresql://app:***@prod/shop"), id="target"),
    pytest.param(lambda m: m.update(reviewed_by="nobody"), id="added-field"),
    pytest.param(lambda m: m.pop("stages"), id="removed-field"),
])
def test_a_forged_manifest_field_fails_the_signature(tmp_path, keys, trusted, edit):
    run = make_run(tmp_path / "run-forged")
    sign_manifest(run, keys["alice"])
    manifest = manifest_of(run)
    edit(manifest)
    write_manifest(run, manifest, rehash=False)
    [check] = verify_signatures(run, trusted)
    assert check.status == "invalid" and check.detail == "manifest.json changed after it was signed"
    assert not author_signed(run, trusted).ok
    with pytest.raises(SignatureInvalid, match="changed after it was signed"):
        require_signatures(run, trusted)


def test_the_signature_covers_the_fields_not_the_layout(tmp_path, keys, trusted):
    run = make_run(tmp_path / "run-layout")
    sign_manifest(run, keys["alice"])
    (run / "manifest.json").write_text(json.dumps(manifest_of(run)))  # no indentation, same fields
    assert [c.status for c in verify_signatures(run, trusted)] == ["valid"]


def test_a_changed_file_with_recomputed_hashes_fails_the_signature(tmp_path, keys, trusted):
    run = make_run(tmp_path / "run-injected")
    sign_manifest(run, keys["alice"])
    script = run / "03-migration" / "upgrade.sql"
    script.write_text(script.read_text() + "DROP TABLE audit_log;\n")
    write_manifest(run, manifest_of(run))  # hashes recomputed: the archive's own check passes again
    [check] = verify_signatures(run, trusted)
    assert check.status == "invalid"
    with pytest.raises(SignatureInvalid):
        require_signatures(run, trusted)


def test_an_untrusted_key_is_reported_as_such(tmp_path, keys, trusted):
    run = make_run(tmp_path / "run-bob")
    sign_manifest(run, keys["bob"], signer="bob")
    [check] = verify_signatures(run, trusted)
    assert check.status == "untrusted" and check.principal == "" and check.fingerprint in check.detail
    authored = author_signed(run, trusted)
    assert not authored.ok and not authored.invalid
    assert "bob" in authored.detail and "key not in the allowed signers" in authored.detail
    with pytest.raises(SignatureInvalid, match="0 of 1 required trusted author signature"):
        require_signatures(run, trusted)


def test_approvals_count_distinct_trusted_keys_once_and_never_the_authors(tmp_path, keys, trusted):
    run = make_run(tmp_path / "run-approved")
    sign_manifest(run, keys["alice"], role="author")
    sign_manifest(run, keys["alice"], role="approver")  # the author approving her own plan
    first = sign_manifest(run, keys["carol"], role="approver")
    again = sign_manifest(run, keys["carol"], role="approver")  # the same key signing again replaces its file
    assert first == again
    shutil.copy(first, run / SIGNATURES / "approver-copy.sig")  # the same approval under another name
    sign_manifest(run, keys["bob"], role="approver")  # untrusted
    check = approvals(run, trusted, required=2)
    assert not check.ok and len(check.counted) == 1 and check.counted[0].startswith("carol@example.com")
    assert any("the author's own key" in i for i in check.ignored)
    assert any("same key as another approval" in i for i in check.ignored)
    assert any("key not in the allowed signers" in i for i in check.ignored)
    with pytest.raises(SignatureInvalid, match="1 of 2 required"):
        require_signatures(run, trusted, required_approvals=2)
    sign_manifest(run, keys["dave"], role="approver")
    assert approvals(run, trusted, required=2).ok
    assert len(require_signatures(run, trusted, required_approvals=2)) == 6
    assert approvals(run, trusted, required=0).ok


def test_an_edited_signature_record_is_invalid(tmp_path, keys, trusted):
    run = make_run(tmp_path / "run-record")
    path = sign_manifest(run, keys["carol"], role="approver")
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "role": "author"}))  # an approval passed off as the author's signature
    [check] = verify_signatures(run, trusted)
    assert check.status == "invalid" and check.detail == "the signature does not match its record"
    path.write_text(json.dumps({**record, "signer": "the CTO"}))
    assert verify_signatures(run, trusted)[0].status == "invalid"
    (run / SIGNATURES / "notes.txt").write_text("looks good to me")
    assert [c.status for c in verify_signatures(run, trusted)] == ["invalid", "invalid"]


def test_sign_refuses_a_folder_that_does_not_match_or_a_forged_manifest(tmp_path, keys):
    run = make_run(tmp_path / "run-changed")
    (run / "01-schema-analysis.result.json").write_text('{"verdict": "pass"}\n')
    with pytest.raises(VerificationFailed, match="not signed: 01-schema-analysis.result.json was changed"):
        sign_manifest(run, keys["alice"])
    running = make_run(tmp_path / "run-running", status="running", host="elsewhere")
    with pytest.raises(VerificationFailed, match="the run is running"):
        sign_manifest(running, keys["alice"])
    forged = make_run(tmp_path / "run-forged-then-approved")
    sign_manifest(forged, keys["alice"])
    write_manifest(forged, {**manifest_of(forged), "verdict": "PASS"}, rehash=False)
    with pytest.raises(SignatureInvalid, match="changed after it was signed"):
        sign_manifest(forged, keys["carol"], role="approver")


def test_keys_are_never_overwritten_and_stay_private(tmp_path):
    public = generate_key(tmp_path / "k", "me@example.com")
    assert public.startswith("ssh-ed25519 ") and public.endswith(" me@example.com")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert (tmp_path / "k").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    with pytest.raises(SigningKeyError, match="already exists"):
        generate_key(tmp_path / "k")
    with pytest.raises(SigningKeyError, match="No such file"):
        load_private_key(tmp_path / "missing")
    (tmp_path / "k.pub").replace(tmp_path / "not-a-key")
    with pytest.raises(SigningKeyError, match="not a private key"):
        load_private_key(tmp_path / "not-a-key")


def test_a_passphrase_protected_pem_key(tmp_path, monkeypatch):
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"correct horse")))
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    with pytest.raises(SigningKeyError, match=f"passphrase-protected: set {PASSPHRASE_ENV}"):
        load_private_key(path)
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    assert load_private_key(path).public_key() == key.public_key()
    run = make_run(tmp_path / "run-pem")
    sign_manifest(run, path)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert [c.status for c in verify_signatures(run, [pem.decode()])] == ["valid"]


def test_allowed_signers_as_git_writes_them(keys):
    alice, carol, bob = (keys[n].with_suffix(".pub").read_text().split() for n in ("alice", "carol", "bob"))
    text = "\n".join([
        "# the team's keys",
        f"alice@example.com,a.smith@example.com {alice[0]} {alice[1]}",
        f'carol@example.com namespaces="git,dbrunbook" {carol[0]} {carol[1]} laptop',
        f'bob@example.com namespaces="git" {bob[0]} {bob[1]}',  # trusted for commits, not for dbrunbook
        "erin@example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",  # another key type: skipped
        "",
        f"{alice[0]} {alice[1]} alice-again@example.com",  # a bare public key line: merged with alice's
    ])
    found = {k.name: k for k in parse_allowed_signers(text)}
    assert sorted(found) == ["alice@example.com,a.smith@example.com,alice-again@example.com", "carol@example.com"]
    with pytest.raises(ConfigError, match="line 2"):
        parse_allowed_signers(f"# a key pasted short\nalice {alice[0]} AAAAnotbase64")


def test_trusted_keys_and_required_approvals_from_pyproject(tmp_path, keys):
    allowed = tmp_path / "keys" / "allowed_signers"
    allowed.parent.mkdir()
    allowed.write_text(allowed_signer_line(keys["carol"].with_suffix(".pub").read_text()) + "\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.dbrunbook]\ntrusted_keys = "keys/allowed_signers"\nrequired_approvals = 2\n')
    settings = load_run_settings(tmp_path)
    assert settings.trusted_keys == allowed and settings.required_approvals == 2
    assert [k.name for k in trusted_keys(settings)] == ["carol@example.com"]
    assert trusted_keys(load_run_settings(tmp_path / "keys")) == []  # none configured
    for bad, words in (("required_approvals = -1", "required_approvals"), ("required_approvals = true", "whole"),
                       ("trusted_keys = 3", "trusted_keys")):
        pyproject.write_text(f"[tool.dbrunbook]\n{bad}\n")
        with pytest.raises(ConfigError, match=words):
            load_run_settings(tmp_path)
    pyproject.write_text('[tool.dbrunbook]\ntrusted_keys = "keys/nowhere"\n')
    with pytest.raises(ConfigError, match="cannot read"):
        trusted_keys(load_run_settings(tmp_path))


@pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen is not installed")
def test_ssh_keygen_keys_sign_and_ssh_keygen_verifies(tmp_path):
    """A key made by ssh-keygen signs; ssh-keygen -Y verify checks the signature without dbrunbook."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "ops@example.com", "-f", str(tmp_path / "id")],
                   check=True)
    public = (tmp_path / "id.pub").read_text()
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(allowed_signer_line(public) + "\n")
    run = make_run(tmp_path / "run-ssh")
    path = sign_manifest(run, tmp_path / "id")
    [check] = verify_signatures(run, parse_allowed_signers(allowed.read_text()))
    listed = subprocess.run([SSH_KEYGEN, "-lf", str(tmp_path / "id.pub")], capture_output=True, text=True).stdout
    assert check.ok and check.fingerprint == listed.split()[1]
    record = json.loads(path.read_text())
    (tmp_path / "message").write_bytes(canonical({k: v for k, v in record.items() if k != "signature"}))
    (tmp_path / "message.sig").write_text(record["signature"])
    with (tmp_path / "message").open("rb") as message:
        verified = subprocess.run([SSH_KEYGEN, "-Y", "verify", "-f", str(allowed), "-I", "ops@example.com",
                                   "-n", "dbrunbook", "-s", str(tmp_path / "message.sig")],
                                  stdin=message, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    # a signature ssh-keygen made for git is not a dbrunbook signature, even over the same bytes by the same key
    os.remove(tmp_path / "message.sig")
    subprocess.run([SSH_KEYGEN, "-Y", "sign", "-q", "-f", str(tmp_path / "id"), "-n", "git", str(tmp_path / "message")],
                   check=True, capture_output=True)
    path.write_text(json.dumps({**record, "signature": (tmp_path / "message.sig").read_text()}))
    [check] = verify_signatures(run, parse_allowed_signers(allowed.read_text()))
    assert check.status == "invalid" and "made for 'git'" in check.detail


def test_verify_signed_run_requires_an_author_once_keys_are_trusted(tmp_path, keys, trusted):
    run = make_run(tmp_path / "run-unsigned")
    manifest, checks = verify_signed_run(run, [])  # nobody trusted: an unsigned run verifies by its hashes
    assert manifest["run_id"] == "run-unsigned" and checks == []
    with pytest.raises(SignatureInvalid, match="0 of 1 required trusted author signature"):
        verify_signed_run(run, trusted)
    with pytest.raises(VerificationFailed, match="extra.txt was added"):
        (run / "extra.txt").write_text("x")
        verify_signed_run(run, [])
