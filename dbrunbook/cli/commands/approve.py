"""``dbrunbook approve``: add a reviewer's signature over a plan run's manifest (the checklist's team approval)."""
from __future__ import annotations

from pathlib import Path

import click

from dbrunbook.cli.commands.sign import PROJECT, RUNS_DIR, SIGNER, sign_and_report


@click.command("approve")
@click.argument("run")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The reviewer's private ed25519 key (OpenSSH or PEM); its public key must be a trusted key.")
@SIGNER
@PROJECT
@RUNS_DIR
def command(run: str, key: Path, signer: str, project: Path, runs_dir: Path | None) -> None:
    """Approve the plan run RUN: sign its manifest as an approver; apply counts distinct trusted approvers."""
    sign_and_report(run, key, "approver", signer, project, runs_dir)
