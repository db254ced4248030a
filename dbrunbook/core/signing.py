"""Signed audit records: ed25519 signatures over a run's manifest, by its author and by approvers.

A signature covers the manifest's canonical JSON (every field: sorted keys, no whitespace, UTF-8), so an
edited verdict, stage status or target fails it, and through the manifest's file hashes every file. It is a
detached file, ``signatures/<role>-<fingerprint>.sig`` in the run folder: JSON naming the run, the role
(``author`` or ``approver``), the signer, the time, the key and the manifest's sha256, plus an SSH signature
(OpenSSH's ``SSHSIG`` format, namespace ``dbrunbook``) over the canonical JSON of those fields. Keys are the
ones ``ssh-keygen -t ed25519`` makes (OpenSSH format; PEM PKCS#8 is read too), trusted through an
allowed-signers file as git uses them (``trusted_keys`` in ``[tool.dbrunbook]``), so ``ssh-keygen -Y verify``
can check a signature without dbrunbook. Approvals count distinct trusted keys, never the author's own.
See docs/signing.md.
"""
from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import platform
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dbrunbook.core import _sshsig as sshsig
from dbrunbook.core._sshsig import KEY_TYPE, NAMESPACE, key_blob
from dbrunbook.core.archive import MANIFEST, SIGNATURES, verify_run
from dbrunbook.errors import ConfigError, SignatureInvalid, SigningKeyError, UsageError, VerificationFailed

if TYPE_CHECKING:
    from dbrunbook.core.config import RunSettings

ROLES = ("author", "approver")
FORMAT = "dbrunbook-signature/1"
#: Read from the environment when a signing key is passphrase-protected.
PASSPHRASE_ENV = "DBRUNBOOK_KEY_PASSPHRASE"
KEY_ENV = "DBRUNBOOK_SIGNING_KEY"

Status = Literal["valid", "invalid", "untrusted"]


@dataclass(frozen=True)
class TrustedKey:
    """A public key of the allowed-signers file, with the principals (people) it stands for."""

    principals: tuple[str, ...]
    key: Ed25519PublicKey = field(compare=False)
    fingerprint: str

    @property
    def name(self) -> str:
        return ",".join(self.principals) or self.fingerprint


@dataclass(frozen=True)
class SignatureCheck:
    """One signature file of a run: ``valid`` (verifies, trusted key), ``untrusted`` (verifies) or ``invalid``."""

    file: str
    status: Status
    detail: str
    role: str = ""
    signer: str = ""
    fingerprint: str = ""
    #: The allowed signer the key belongs to ("" when the key is not trusted).
    principal: str = ""
    signed_at: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "valid"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ApprovalCheck:
    """Whether a run holds ``required`` valid signatures of ``role`` from distinct trusted keys."""

    role: str
    required: int
    #: The trusted signers counted, one per key (``principal (fingerprint)``).
    counted: list[str]
    #: Signatures of the role that did not count, each with why (untrusted, same key twice, the author's own).
    ignored: list[str]
    #: Signature files that do not verify: any of them fails the check (the manifest changed after signing).
    invalid: list[str]

    @property
    def ok(self) -> bool:
        return not self.invalid and len(self.counted) >= self.required

    @property
    def detail(self) -> str:
        """One line: how many counted of how many required, by whom, and what did not count."""
        if self.invalid:
            return "signature(s) that do not verify: " + "; ".join(self.invalid)
        noun = "author signature" if self.role == "author" else "approval(s)"
        who = f": {', '.join(self.counted)}" if self.counted else ""
        ignored = f" (not counted: {'; '.join(self.ignored)})" if self.ignored else ""
        return f"{len(self.counted)} of {self.required} required trusted {noun}{who}{ignored}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "detail": self.detail}


# -- keys -----------------------------------------------------------------------------------------------------


def fingerprint(key: Ed25519PublicKey) -> str:
    """The key's fingerprint as ``ssh-keygen -l`` prints it: ``SHA256:`` and the unpadded base64 of its blob."""
    digest = hashlib.sha256(key_blob(key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def public_key_text(key: Ed25519PublicKey, comment: str = "") -> str:
    """The OpenSSH one-line form, ``ssh-ed25519 AAAA... comment``."""
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """An ed25519 public key from its OpenSSH line (``ssh-ed25519 AAAA... [comment]``) or PEM text."""
    raw = text.strip().encode()
    try:
        key = serialization.load_pem_public_key(raw) if raw.startswith(b"-----") \
            else serialization.load_ssh_public_key(b" ".join(raw.split()[:2]))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"not a public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError("not an ed25519 public key (make one with ssh-keygen -t ed25519)")
    return key


def default_key() -> Path:
    """The signing key used when none is named: ``$DBRUNBOOK_SIGNING_KEY``, else ``~/.ssh/id_ed25519``."""
    return Path(os.environ.get(KEY_ENV) or Path.home() / ".ssh" / "id_ed25519").expanduser()


def generate_key(path: Path | str, comment: str = "") -> str:
    """Write a new ed25519 private key to ``path`` (OpenSSH format, mode 0600) and its public key to ``path.pub``.

    Returns the public key line (with ``comment``, by default ``user@host``). Never overwrites a file: a
    signing key lost to a typo cannot be recovered.
    """
    path = Path(path).expanduser()
    public_path = path.with_name(path.name + ".pub")
    for existing in (path, public_path):
        if existing.exists():
            raise SigningKeyError(existing, "already exists; choose another path (keys are never overwritten)")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    line = public_key_text(key.public_key(), comment or _default_signer())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private from its first byte
        with os.fdopen(fd, "wb") as out:
            out.write(private)
        public_path.write_text(line + "\n")
    except OSError as exc:
        raise SigningKeyError(path, exc.strerror or str(exc)) from None
    return line


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    """The ed25519 private key at ``path`` (OpenSSH or PEM); a passphrase is read from ``$DBRUNBOOK_KEY_PASSPHRASE``."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(path, exc.strerror or str(exc)) from None
    passphrase = os.environ.get(PASSPHRASE_ENV)
    password = passphrase.encode() if passphrase else None
    try:
        key = serialization.load_ssh_private_key(data, password) if b"OPENSSH PRIVATE KEY" in data \
            else serialization.load_pem_private_key(data, password)
    except TypeError as exc:  # cryptography says so when a passphrase is missing or not needed
        needed = "is passphrase-protected: set " + PASSPHRASE_ENV if password is None else str(exc)
        raise SigningKeyError(path, needed) from None
    except UnsupportedAlgorithm as exc:  # an encrypted OpenSSH key without the bcrypt package
        raise SigningKeyError(path, f"cannot be read ({exc}); install bcrypt, or use a PEM key") from None
    except ValueError as exc:
        raise SigningKeyError(path, f"is not a private key dbrunbook can read ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(path, "is not an ed25519 key (make one with ssh-keygen -t ed25519 or dbrunbook keygen)")
    return key


def allowed_signer_line(public: str, principal: str = "") -> str:
    """The allowed-signers line for a public key line: ``principal namespaces="dbrunbook" ssh-ed25519 AAAA...``."""
    parts = public.split()
    principal = principal or (" ".join(parts[2:]) if len(parts) > 2 else "") or fingerprint(parse_public_key(public))
    return f'{principal.replace(" ", "_")} namespaces="{NAMESPACE}" {" ".join(parts[:2])}'


def parse_allowed_signers(text: str, source: str = "allowed signers") -> list[TrustedKey]:
    """The ed25519 keys of an allowed-signers file (``ssh-keygen(1)`` ALLOWED SIGNERS), merged per key.

    Each line is ``principals [options] ssh-ed25519 AAAA... [comment]``; a bare public key line is read too (its
    comment is the principal). Lines of other key types are skipped; a ``namespaces="..."`` option that does
    not list ``dbrunbook`` keeps the key out (it was trusted for something else, e.g. git commits).
    """
    found: dict[str, TrustedKey] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            raise ConfigError(f"{source} line {number}: {exc}") from None
        if KEY_TYPE not in tokens:
            continue
        at = tokens.index(KEY_TYPE)
        if at + 1 >= len(tokens):
            raise ConfigError(f"{source} line {number}: no key after {KEY_TYPE}")
        options = {o.partition("=")[0].lower(): o.partition("=")[2] for o in tokens[1:at]}
        if "namespaces" in options and NAMESPACE not in options["namespaces"].split(","):
            continue
        try:
            key = parse_public_key(f"{KEY_TYPE} {tokens[at + 1]}")
        except UsageError as exc:
            raise ConfigError(f"{source} line {number}: {exc}") from None
        principals = tuple(tokens[0].split(",")) if at > 0 else tuple(tokens[at + 2:at + 3])
        print_ = fingerprint(key)
        known = found.get(print_)
        merged = tuple(dict.fromkeys((*known.principals, *principals))) if known else principals
        found[print_] = TrustedKey(merged, key, print_)
    return list(found.values())


def trusted_keys(settings: RunSettings) -> list[TrustedKey]:
    """The keys of the allowed-signers file named by ``trusted_keys`` in ``[tool.dbrunbook]`` (none when unset)."""
    if settings.trusted_keys is None:
        return []
    try:
        text = settings.trusted_keys.read_text()
    except OSError as exc:
        raise ConfigError(f"trusted_keys in [tool.dbrunbook]: cannot read {settings.trusted_keys} "
                          f"({exc.strerror or exc})") from None
    return parse_allowed_signers(text, str(settings.trusted_keys))


# -- signing and verifying -----------------------------------------------------------------------------------


def canonical(document: Any) -> bytes:
    """The canonical JSON of ``document``: sorted keys, no whitespace, UTF-8 (what a signature covers)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def manifest_digest(run_dir: Path) -> tuple[dict[str, Any], str]:
    """The run's manifest and the sha256 of its canonical JSON; a key given twice is refused, not read twice."""
    path = Path(run_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(), object_pairs_hook=_no_duplicate_keys)
    except OSError:
        raise VerificationFailed(Path(run_dir), [f"{MANIFEST} is missing"]) from None
    except ValueError as exc:
        raise VerificationFailed(Path(run_dir), [f"{MANIFEST} is not valid JSON ({exc})"]) from None
    return manifest, hashlib.sha256(canonical(manifest)).hexdigest()


def sign_manifest(run_dir: Path | str, key_path: Path | str | None = None, role: str = "author",
                  signer: str = "") -> Path:
    """Sign the manifest of the run in ``run_dir`` as ``role``; returns the signature file written.

    The run must be complete and its files match the manifest: a signer vouches for what the folder holds.
    Signing again with the same key and role replaces that signature. ``key_path`` defaults to
    :func:`default_key`; ``signer`` to ``user@host``.
    """
    if role not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    run_dir = Path(run_dir).resolve()
    manifest, digest = manifest_digest(run_dir)
    try:  # a signer vouches for what the folder holds: the archive's own check first
        verify_run(run_dir)
    except VerificationFailed as exc:
        raise VerificationFailed(run_dir, ["not signed: " + exc.problems[0], *exc.problems[1:]]) from None
    # A signature that no longer verifies says the manifest changed after it was made: never sign over that.
    broken = [c for c in verify_signatures(run_dir, []) if c.status == "invalid"]
    if broken:
        raise SignatureInvalid(run_dir, [f"not signed: {c.file}: {c.detail}" for c in broken], broken)
    key = load_private_key(key_path or default_key())
    public = key.public_key()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    record = {"format": FORMAT, "run_id": manifest.get("run_id"), "role": role, "signer": signer or _default_signer(),
              "signed_at": now, "key": public_key_text(public), "fingerprint": fingerprint(public),
              "manifest_sha256": digest}
    record["signature"] = sshsig.sign(key, canonical(record))
    folder = run_dir / SIGNATURES
    folder.mkdir(exist_ok=True)
    path = folder / f"{role}-{_file_safe(fingerprint(public))}.sig"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)
    return path


def verify_signatures(run_dir: Path | str, trusted: Iterable[TrustedKey | str]) -> list[SignatureCheck]:
    """Check every file of the run's ``signatures/`` folder against the manifest as it is now.

    ``trusted``: keys (or their OpenSSH lines) of the allowed signers. A file that is not a signature, a
    signature made over another manifest, or one whose record was edited, is ``invalid``.
    """
    run_dir = Path(run_dir).resolve()
    _, digest = manifest_digest(run_dir)
    keys = {k.fingerprint: k for k in (_trusted(t) for t in trusted)}
    folder = run_dir / SIGNATURES
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return [_check(path, run_dir, digest, keys) for path in files]


def approvals(run_dir: Path | str, trusted: Iterable[TrustedKey | str], required: int) -> ApprovalCheck:
    """Valid approver signatures over the run's manifest from distinct trusted keys, the author's key excepted."""
    return _count(verify_signatures(run_dir, trusted), "approver", required)


def author_signed(run_dir: Path | str, trusted: Iterable[TrustedKey | str]) -> ApprovalCheck:
    """Whether the run holds a valid author signature by a trusted key (what ``apply`` requires of a plan run)."""
    return _count(verify_signatures(run_dir, trusted), "author", 1)


def require_signatures(run_dir: Path | str, trusted: Iterable[TrustedKey | str], *, author: bool = True,
                       required_approvals: int = 0) -> list[SignatureCheck]:
    """Every signature check of the run; raise :class:`SignatureInvalid` unless they hold as asked.

    Fails on any signature that does not verify, and, when asked, without a trusted author signature or with
    fewer than ``required_approvals`` approvals.
    """
    keys = [_trusted(t) for t in trusted]
    checks = verify_signatures(run_dir, keys)
    wanted = [_count(checks, "author", 1)] if author else []
    wanted += [_count(checks, "approver", required_approvals)] if required_approvals else []
    problems = [f"{c.file}: {c.detail}" for c in checks if c.status == "invalid"]
    problems += [c.detail for c in wanted if not c.ok and not c.invalid]
    if problems:
        raise SignatureInvalid(Path(run_dir), problems, checks)
    return checks


def verify_signed_run(run_dir: Path | str, trusted: Iterable[TrustedKey | str], *,
                      require_author: bool | None = None) -> tuple[dict[str, Any], list[SignatureCheck]]:
    """What ``dbrunbook verify`` checks: every file against the manifest, then every field through the signatures.

    Raises :class:`VerificationFailed` (a file) or :class:`SignatureInvalid` (a signature that does not verify;
    with ``require_author``, no trusted author signature). ``require_author`` defaults to: when keys are trusted.
    """
    keys = [_trusted(t) for t in trusted]
    manifest = verify_run(Path(run_dir))
    author = bool(keys) if require_author is None else require_author
    return manifest, require_signatures(run_dir, keys, author=author)


def _count(checks: Sequence[SignatureCheck], role: str, required: int) -> ApprovalCheck:
    authors = {c.fingerprint for c in checks if c.role == "author" and c.ok}
    counted: dict[str, str] = {}
    ignored: list[str] = []
    for check in (c for c in checks if c.role == role and c.status != "invalid"):
        who = f"{check.principal or check.signer} ({check.fingerprint})"
        if check.status == "untrusted":
            ignored.append(f"{check.signer} ({check.fingerprint}): key not in the allowed signers")
        elif role == "approver" and check.fingerprint in authors:
            ignored.append(f"{who}: the author's own key")
        elif check.fingerprint in counted:
            ignored.append(f"{who}: same key as another approval")
        else:
            counted[check.fingerprint] = who
    invalid = [f"{c.file}: {c.detail}" for c in checks if c.status == "invalid"]
    return ApprovalCheck(role, required, list(counted.values()), ignored, invalid)


def _check(path: Path, run_dir: Path, digest: str, keys: dict[str, TrustedKey]) -> SignatureCheck:
    name = str(path.relative_to(run_dir))
    if path.suffix != ".sig":
        return SignatureCheck(name, "invalid", f"not a signature file (only *.sig belong in {SIGNATURES}/)")
    try:
        record = json.loads(path.read_text(), object_pairs_hook=_no_duplicate_keys)
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        role, signer, when = str(record["role"]), str(record["signer"]), str(record["signed_at"])
        signed_key = sshsig.verify(str(record["signature"]), canonical({k: v for k, v in record.items()
                                                                          if k != "signature"}))
    except (OSError, ValueError, KeyError, TypeError, InvalidSignature) as exc:
        why = "the signature does not match its record" if isinstance(exc, InvalidSignature) else str(exc)
        return SignatureCheck(name, "invalid", why or type(exc).__name__)
    print_ = fingerprint(signed_key)
    facts = {"role": role, "signer": signer, "fingerprint": print_, "signed_at": when}
    if record.get("fingerprint") != print_ or str(record.get("key")).split()[:2] != public_key_text(signed_key).split():
        return SignatureCheck(name, "invalid", "the recorded key is not the key that signed", **facts)
    if role not in ROLES:
        return SignatureCheck(name, "invalid", f"unknown role {role!r}", **facts)
    if record.get("manifest_sha256") != digest:
        return SignatureCheck(name, "invalid", f"{MANIFEST} changed after it was signed", **facts)
    known = keys.get(print_)
    if known is None:
        return SignatureCheck(name, "untrusted", f"valid signature by a key not in the allowed signers ({print_})",
                              **facts)
    return SignatureCheck(name, "valid", f"signed as {role} by {known.name} at {when}", principal=known.name, **facts)


def _trusted(item: TrustedKey | str) -> TrustedKey:
    if isinstance(item, TrustedKey):
        return item
    found = parse_allowed_signers(item, "trusted key")
    if not found:
        key = parse_public_key(item)  # PEM, or a line the allowed-signers reader skipped: say why
        return TrustedKey((), key, fingerprint(key))
    return found[0]


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"key {twice[0]!r} given twice")
    return dict(pairs)


def _default_signer() -> str:
    return f"{getpass.getuser()}@{platform.node()}"


def _file_safe(print_: str) -> str:
    return print_.removeprefix("SHA256:").replace("/", "_").replace("+", "-")
