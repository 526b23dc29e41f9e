"""Hostile inputs at the broker's boundary: a 422 names the field and the rule, never the input;
a 5xx is one fixed line and a hint, never a server path or a library message.

A value pasted into the wrong field may be a token, and a body key may be anything a client
types: neither may come back in a response (or reach a log).
"""

from __future__ import annotations

import pytest

from pdbg import errors
from pdbg.demo.build import DEMO_CASE, INVESTIGATOR

from .helpers import assert_error_body

SECRET = "pdbg_LeakedT0kenValue"


@pytest.mark.parametrize("body", [
    {"case": DEMO_CASE, "sql": "x", "params": {"a": {"timestamp": SECRET}}},
    {"case": DEMO_CASE, "sql": "x", "params": {"a": {"date": SECRET}}},
    {"case": DEMO_CASE, "sql": "x", SECRET: 1},
    {"case": DEMO_CASE, "sql": "x", "params": {SECRET + "x" * 70: 1}},
    {"case": DEMO_CASE, "sql": "x", "params": {SECRET: {"nested": 1}}},
    {"case": SECRET + "/../../etc", "sql": "x"},
    {"case": DEMO_CASE, "sql": "x", "epsilon": SECRET},
    {"case": DEMO_CASE, "sql": "x", "params": {"a": [SECRET, {"x": SECRET}]}},
], ids=["timestamp", "date", "extra-key", "long-param-name", "param-name-echo", "case", "epsilon", "list"])
def test_422_names_the_field_and_rule_never_the_input(http, body):
    r = http(INVESTIGATOR).post("/v1/query", json=body)
    got = assert_error_body(r, 422, "RequestInvalid")
    assert SECRET not in r.text and "LeakedT0ken" not in r.text
    assert ":" in got["message"]                      # "<field>: <rule>"
    assert "Input should" not in got["message"]       # pydantic's own wording can quote values


def test_422_for_a_bad_timestamp_says_what_format_is_expected(http):
    r = http(INVESTIGATOR).post("/v1/query", json={"case": DEMO_CASE, "sql": "x",
                                                    "params": {"since": {"timestamp": SECRET}}})
    body = assert_error_body(r, 422, "RequestInvalid")
    assert "params.<name>" in body["message"] and "ISO" in body["message"] and "since" not in body["message"]


def test_422_for_an_unknown_field_says_so_without_naming_it(http):
    r = http(INVESTIGATOR).post("/v1/query", json={"case": DEMO_CASE, "sql": "x", SECRET: 1})
    body = assert_error_body(r, 422, "RequestInvalid")
    assert "unknown field" in body["message"]


def test_422_on_query_and_path_parameters_does_not_echo(http):
    r = http(INVESTIGATOR).get("/v1/budget", params={"case": SECRET + "/.."})
    assert_error_body(r, 422, "RequestInvalid")
    assert SECRET not in r.text
    r = http(INVESTIGATOR).get("/v1/oversight/requests", params={"pending": SECRET})
    assert_error_body(r, 422, "RequestInvalid")
    assert SECRET not in r.text


# -- 5xx: one fixed line + hint -------------------------------------------------------------

class _InProcess:
    """The broker app in this process (so a library error can be injected), spoken to over httpx."""

    def __init__(self, app, headers):
        self.app, self.headers = app, headers

    def post(self, path, **kw):
        import asyncio

        import httpx

        async def go():
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://broker", headers=self.headers) as c:
                return await c.post(path, **kw)

        return asyncio.run(go())


def _in_process(demo, tokens, monkeypatch, exc: Exception):
    import pdbg.session
    from pdbg.server.app import create_app

    def boom(self, *a, **kw):
        raise exc

    monkeypatch.setattr(pdbg.session.Session, "sql", boom)
    return _InProcess(create_app(demo.ws),
                      {"Authorization": f"Bearer {tokens[INVESTIGATOR]}", "X-Pdbg-User": INVESTIGATOR})


@pytest.mark.parametrize("exc,status", [
    (errors.EngineError("cannot open /srv/pdbg/ws/data.duckdb: database is locked", "see /srv/pdbg/ws"), 503),
    (errors.AuditError("cannot append to /srv/pdbg/ws/audit/audit.jsonl: [Errno 28] No space left",
                       "free space on /srv"), 503),
    (errors.QueryFailed("ran longer than 30 s on /srv/pdbg/ws/data.duckdb", "narrow /tmp/x", rule="timeout"), 504),
], ids=["engine", "audit", "timeout"])
def test_5xx_bodies_are_one_fixed_line_without_server_paths(demo, tokens, monkeypatch, exc, status):
    client = _in_process(demo, tokens, monkeypatch, exc)
    r = client.post("/v1/query", json={"case": DEMO_CASE, "sql": "SELECT 1", "epsilon": 0.1})
    body = assert_error_body(r, status, type(exc).__name__)
    assert "/srv" not in r.text and "/tmp" not in r.text and "Errno" not in r.text
    assert "\n" not in body["message"] and len(body["message"]) < 120
    # the same class, always the same words: nothing of the underlying error shows through
    other = type(exc)("something else entirely at /var/lib/x", "other hint",
                      **({"rule": "timeout"} if isinstance(exc, errors.QueryFailed) else {}))
    r2 = _in_process(demo, tokens, monkeypatch, other).post(
        "/v1/query", json={"case": DEMO_CASE, "sql": "SELECT 1", "epsilon": 0.1})
    assert r2.json() == body


def test_4xx_messages_do_not_quote_the_workspace_path(demo, tokens, monkeypatch):
    exc = errors.WorkspaceError(f"{demo.ws.root}/workspace.json is truncated", f"restore {demo.ws.root}")
    r = _in_process(demo, tokens, monkeypatch, exc).post(
        "/v1/query", json={"case": DEMO_CASE, "sql": "SELECT 1", "epsilon": 0.1})
    assert r.status_code < 500
    assert str(demo.ws.root) not in r.text


def test_remote_session_still_raises_the_class_for_a_fixed_5xx(demo, tokens, monkeypatch):
    """The client rebuilds the library class from the fixed body (a notebook's `except` still works)."""
    from pdbg.server.client import _error_from

    r = _in_process(demo, tokens, monkeypatch, errors.AuditError("cannot append to /srv/pdbg/ws/audit/audit.jsonl")
                    ).post("/v1/query", json={"case": DEMO_CASE, "sql": "SELECT 1", "epsilon": 0.1})
    err = _error_from(r)
    assert isinstance(err, errors.AuditError) and "/srv" not in err.message and err.hint
