"""CLI verbs: dataset (placeholder until its issue lands)."""

import click


def register(cli: click.Group) -> None:
    """Attach this module's commands to the top-level group."""
