"""``dbrunbook keygen``: make an ed25519 signing key (OpenSSH format, as ``ssh-keygen -t ed25519`` makes)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--comment", default="", help="Who the key is, e.g. an e-mail address [default: user@host].")
def command(path: Path, comment: str) -> None:
    """Write a new ed25519 signing key to PATH and its public key to PATH.pub; never overwrites."""
    from dbrunbook.core.signing import allowed_signer_line, generate_key

    public = generate_key(path, comment)
    click.echo(f"wrote {path} (private: keep it to yourself) and {path}.pub")
    click.echo("to trust it, add this line to the allowed signers file named by trusted_keys in [tool.dbrunbook]:")
    click.echo(allowed_signer_line(public))
