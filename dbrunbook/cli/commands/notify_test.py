"""``dbrunbook notify-test``: send a test event to the notification targets of ``[tool.dbrunbook]``."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("notify-test")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root holding pyproject.toml [tool.dbrunbook] (notify_command, notify_webhook).")
def command(project: Path) -> None:
    """Send a test event to notify_command and notify_webhook; exit 1 if a target did not take it."""
    from dbrunbook.core.config import load_run_settings
    from dbrunbook.core.notify import send_test

    delivery = send_test(load_run_settings(project))
    for target in delivery.targets:
        state = "delivered" if target.ok else "FAILED"
        click.echo(f"{state}: {target.kind} {target.target} ({target.detail}, {target.seconds:.2f}s)")
    delivery.raise_for_failure()
