"""`pdbg serve`: run the broker HTTP API over a workspace."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @click.argument("workspace", type=click.Path(file_okay=False, exists=True))
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Interface to bind (keep loopback and put a TLS reverse proxy in front).")
    @click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
    @click.option("--query-timeout", "query_timeout", default=30.0, show_default=True,
                  type=click.FloatRange(0.1, 3600), help="Engine time limit per query, in seconds.")
    @click.option("--max-body", "max_body", default=64 * 1024, show_default=True, type=click.IntRange(1024, 2**24),
                  help="Largest request body accepted, in bytes (larger ones get 413).")
    def serve(workspace, host, port, query_timeout, max_body):
        """Serve WORKSPACE over HTTP: DP queries, previews, budgets, access requests, audit status.

        Run it as a dedicated OS user that alone can read WORKSPACE (docs/DEPLOYMENT.md).
        Plain HTTP: bind loopback and terminate TLS in a reverse proxy.
        """
        import logging

        import uvicorn

        from pdbg.server.app import create_app
        from pdbg.server.deploy import startup_warnings

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for warning in startup_warnings(workspace, host):
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"pdbg broker on http://{host}:{port} (OpenAPI at /openapi.json); Ctrl-C stops it", err=True)
        # access_log off: uvicorn would log query strings; headers (the token) are never logged either way.
        uvicorn.run(create_app(workspace, query_timeout_s=query_timeout, max_body_bytes=max_body),
                    host=host, port=port, log_level="warning", access_log=False, server_header=False)
