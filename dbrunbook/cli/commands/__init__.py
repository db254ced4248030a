"""CLI commands that live in their own module (see ``dbrunbook.cli._LAZY_COMMANDS``)."""
