"""`pdbg serve`: run the broker HTTP API over a workspace."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @click.argument("workspace", type=click.Path(file_okay=False, exists=True))
    @click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep loopback behind a TLS proxy).")
    @click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
    def serve(workspace, host, port):
        """Serve WORKSPACE over HTTP: DP queries, previews, budgets, access requests, audit status."""
        import uvicorn

        from pdbg.server.app import create_app

        click.echo(f"pdbg broker on http://{host}:{port} (OpenAPI at /docs); Ctrl-C stops it", err=True)
        uvicorn.run(create_app(workspace), host=host, port=port, log_level="warning", access_log=False)
