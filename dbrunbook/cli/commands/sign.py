"""``dbrunbook sign``: sign a run's manifest as its author (an ed25519 key, a detached signature in the run)."""
from __future__ import annotations

from pathlib import Path

import click

#: ``--project`` and ``--runs-dir`` of the signing commands: RUN is found as ``show`` and ``verify`` find it.
PROJECT = click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                       help="Project root holding pyproject.toml [tool.dbrunbook] (trusted_keys, runs_dir).")
RUNS_DIR = click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path),
                        help="Folder holding archived runs [default: runs_dir of [tool.dbrunbook], else runs].")
SIGNER = click.option("--signer", default="", help="Name recorded with the signature [default: user@host].")


def sign_and_report(run: str, key: Path | None, role: str, signer: str, project: Path, runs_dir: Path | None) -> None:
    """Sign RUN as ``role``, then print the signature and how the run's signatures stand (shared with approve)."""
    from dbrunbook.core.archive import find_run
    from dbrunbook.core.config import load_run_settings
    from dbrunbook.core.signing import approvals, sign_manifest, trusted_keys, verify_signatures

    settings = load_run_settings(project)
    path = find_run(run, runs_dir or settings.runs_dir)
    written = sign_manifest(path, key, role=role, signer=signer)
    trusted = trusted_keys(settings)
    checks = verify_signatures(path, trusted)
    mine = next(c for c in checks if c.file == str(written.relative_to(path)))
    count = approvals(path, trusted, settings.required_approvals)
    click.echo(f"signed {path.name} as {role}: {written}")
    click.echo(f"key {mine.fingerprint}: {mine.detail}")
    if mine.status == "untrusted":
        where = settings.trusted_keys or "no trusted_keys file in [tool.dbrunbook]"
        click.echo(f"note: not counted by dbrunbook apply until the key is in the allowed signers ({where})")
    click.echo(f"approvals: {count.detail}")


@click.command("sign")
@click.argument("run")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), envvar="DBRUNBOOK_SIGNING_KEY",
              help="Private ed25519 key, OpenSSH or PEM [default: env DBRUNBOOK_SIGNING_KEY, else ~/.ssh/id_ed25519].")
@SIGNER
@PROJECT
@RUNS_DIR
def command(run: str, key: Path | None, signer: str, project: Path, runs_dir: Path | None) -> None:
    """Sign RUN's manifest as its author (RUN: id, unique part of one, path, or latest)."""
    sign_and_report(run, key, "author", signer, project, runs_dir)
