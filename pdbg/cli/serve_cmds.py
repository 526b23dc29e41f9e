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
    @click.option("--header-timeout", "header_timeout", default=5.0, show_default=True,
                  type=click.FloatRange(0.5, 300),
                  help="Seconds a connection may take to send complete request headers (also the idle "
                       "keep-alive limit); then it is closed.")
    @click.option("--body-timeout", "body_timeout", default=10.0, show_default=True, type=click.FloatRange(0.5, 300),
                  help="Seconds a request body may take to arrive after its headers (408 after).")
    @click.option("--max-connections", "max_connections", default=512, show_default=True,
                  type=click.IntRange(4, 100_000),
                  help="Open connections at most; beyond it the longest-waiting idle or slow one is closed, "
                       "or the newcomer gets 503 when all are busy.")
    @click.option("--log-lines", "log_lines", default=20, show_default=True, type=click.IntRange(1, 10_000),
                  help="At most this many log lines of one kind per 10 s; the rest are counted, not written.")
    @click.option("--auth-failures", "auth_failures", default=10, show_default=True, type=click.IntRange(1, 10_000),
                  help="Failed authentications per user and client address per minute before 429.")
    def serve(workspace, host, port, query_timeout, max_body, header_timeout, body_timeout, max_connections,
              log_lines, auth_failures):
        """Serve WORKSPACE over HTTP: DP queries, previews, budgets, access requests, audit status.

        Run it as a dedicated OS user that alone can read WORKSPACE (docs/DEPLOYMENT.md).
        Plain HTTP: bind loopback and terminate TLS in a reverse proxy.
        """
        import resource

        import uvicorn

        from pdbg.governance.principals import FailedAuthLimiter
        from pdbg.server import guard
        from pdbg.server.app import create_app
        from pdbg.server.deploy import startup_warnings

        for warning in startup_warnings(workspace, host):
            click.echo(f"warning: {warning}", err=True)
        # Every connection is a file descriptor: keep the cap well under the limit (DuckDB, SQLite and
        # the audit files need some), or accept() fails in a loop, which is how 1,100 clients starved
        # everyone before. Raise the soft limit when the hard one allows.
        need = max_connections + 256
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < need:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY else min(need, hard),
                                                            hard))
            except (ValueError, OSError):
                pass
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if soft < need:
                max_connections = max(4, soft - 256)
                click.echo(f"warning: the open-file limit is {soft}; --max-connections lowered to {max_connections}",
                           err=True)
        click.echo(f"pdbg broker on http://{host}:{port} (OpenAPI at /openapi.json); Ctrl-C stops it", err=True)
        app = create_app(workspace, query_timeout_s=query_timeout, max_body_bytes=max_body,
                         body_timeout_s=body_timeout, auth_limiter=FailedAuthLimiter(max_failures=auth_failures))
        # access_log off: uvicorn would log query strings; headers (the token) are never logged either way.
        # accept() takes up to `backlog` connections per event-loop turn before the cap can close any:
        # keep that burst inside the 256 descriptors of headroom above (uvicorn's default is 2048).
        backlog = min(128, max(16, max_connections))
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                    backlog=backlog,
                    http=guard.guarded_protocol(header_timeout=header_timeout, max_connections=max_connections),
                    h11_max_incomplete_event_size=guard.MAX_HEADER_BYTES, timeout_keep_alive=int(max(1, header_timeout)),
                    log_config=guard.logging_config(per_interval=log_lines, interval=10.0))
