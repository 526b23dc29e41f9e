"""Refusals over HTTP carry the library's error class and hint; limits hold; OpenAPI is served.

The client turns each refusal back into the same exception the embedded session
raises (same class, rule, hint, requested/remaining), so notebook code that
catches ``BudgetExceeded`` works identically against a broker.
"""

from __future__ import annotations

import pytest

from pdbg.demo.build import DEMO_CASE, INVESTIGATOR
from pdbg.errors import AccessDenied, BudgetExceeded, PdbgError, QueryRejected

from .helpers import assert_error_body

COUNT = "SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service"


def test_query_rejected_carries_rule_and_hint(http, remote, fresh_case):
    case = fresh_case()
    r = http(INVESTIGATOR).post("/v1/query", json={"case": case, "sql": "SELECT user_id FROM requests",
                                                    "epsilon": 0.1})
    body = assert_error_body(r, 400, "QueryRejected")
    assert body["rule"] and body["hint"]
    with pytest.raises(QueryRejected) as err:
        remote(case).sql("SELECT user_id FROM requests", epsilon=0.1)
    assert err.value.rule == body["rule"] and err.value.hint == body["hint"] and err.value.message == body["message"]


def test_budget_exceeded_is_409_with_requested_and_remaining_and_charges_nothing(http, remote, fresh_case):
    case = fresh_case(0.3)
    s = remote(case)
    s.sql(COUNT, epsilon=0.25)
    spent = s.budget().spent_epsilon
    r = http(INVESTIGATOR).post("/v1/query", json={"case": case, "sql": COUNT.replace("500", "400"), "epsilon": 0.25})
    body = assert_error_body(r, 409, "BudgetExceeded")
    assert body["requested"] > body["remaining"] >= 0
    with pytest.raises(BudgetExceeded) as err:
        s.sql(COUNT.replace("500", "404"), epsilon=0.25)
    assert err.value.requested == pytest.approx(body["requested"]) and err.value.hint == body["hint"]
    assert s.budget().spent_epsilon == spent                 # refusals charge nothing; the session keeps working
    assert s.sql(COUNT, epsilon=0.25).cached                 # and the cached answer is still free


def test_no_grant_is_403_access_denied(remote, demo):
    from pdbg.governance import cases

    cases.open_case(demo.ws, "bob", "S-NOGRANT", "no grant")
    with pytest.raises(AccessDenied) as err:
        remote("S-NOGRANT").sql(COUNT, epsilon=0.1)
    assert "no grant" in err.value.message


def test_body_over_the_limit_is_413(http):
    alice = http(INVESTIGATOR)
    big = {"case": DEMO_CASE, "sql": "SELECT COUNT(*) AS n FROM requests -- " + "x" * 70_000}
    assert_error_body(alice.post("/v1/query", json=big), 413, "RequestTooLarge")

    def chunks():                                            # no Content-Length: chunked transfer
        yield b'{"case": "INC-DEMO", "sql": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    r = alice.post("/v1/query", content=chunks(), headers={"content-type": "application/json"})
    assert_error_body(r, 413, "RequestTooLarge")


def test_sql_over_the_field_limit_is_422_naming_the_field_not_echoing_it(http):
    secret_looking = "Z9q" * 7000
    r = http(INVESTIGATOR).post("/v1/query", json={"case": DEMO_CASE, "sql": secret_looking})
    body = assert_error_body(r, 422, "RequestInvalid")
    assert "sql" in body["message"] and "Z9qZ9q" not in r.text


@pytest.mark.parametrize("payload", [
    b"{", b"[]", b"null", b'{"case": "INC-DEMO"}', b'{"case": "INC-DEMO", "sql": "x", "epsilon": -1}',
    b'{"case": "INC-DEMO", "sql": "x", "epsilon": NaN}', b'{"case": "INC-DEMO", "sql": "x", "epsilon": 1e999}',
    b'{"case": "../etc", "sql": "x"}', b'{"case": "INC-DEMO", "sql": "x", "params": {"a": {"b": 1}}}',
    b'{"case": "INC-DEMO", "sql": "x", "params": {"a": [[1]]}}', b'{"case": "INC-DEMO", "sql": "x", "params": {"a": []}}',
    b'{"case": "INC-DEMO", "sql": "x", "params": {"a": {"timestamp": "yesterday"}}}',
], ids=lambda p: p.decode()[:40])
def test_malformed_bodies_are_422_not_500(http, payload):
    r = http(INVESTIGATOR).post("/v1/query", content=payload, headers={"content-type": "application/json"})
    assert_error_body(r, 422, "RequestInvalid")


def test_unknown_route_and_method_are_json(http):
    assert_error_body(http(INVESTIGATOR).get("/v1/nope"), 404, "NotFound")
    assert_error_body(http(INVESTIGATOR).delete("/v1/query"), 405, "MethodNotAllowed")


def test_openapi_document_lists_every_endpoint_and_the_auth_schemes(http):
    doc = http().get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    assert {"/v1/query", "/v1/preview", "/v1/replay", "/v1/budget", "/v1/history", "/v1/templates",
            "/v1/cases/{case}", "/v1/access/requests", "/v1/access/requests/{request_id}/approve",
            "/v1/access/requests/{request_id}/deny", "/v1/access/break-glass",
            "/v1/access/grants/{grant_id}/revoke", "/v1/audit/verify", "/v1/health"} <= paths
    schemes = doc["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes) and schemes["APIKeyHeader"]["name"] == "X-Pdbg-User"
    q = doc["paths"]["/v1/query"]["post"]
    assert {"400", "401", "403", "409", "413", "422"} <= set(q["responses"])
    assert q["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_client_without_token_refuses_locally(broker, monkeypatch):
    import pdbg

    monkeypatch.delenv("PDBG_TOKEN", raising=False)
    with pytest.raises(AccessDenied, match="needs a token"):
        pdbg.connect(broker.url, user=INVESTIGATOR, case=DEMO_CASE)


def test_client_reads_the_token_from_the_environment_and_never_shows_it(broker, tokens, monkeypatch):
    import pdbg

    monkeypatch.setenv("PDBG_TOKEN", tokens[INVESTIGATOR])
    with pdbg.connect(broker.url, user=INVESTIGATOR, case=DEMO_CASE) as s:
        assert s.budget().case == DEMO_CASE
        assert tokens[INVESTIGATOR] not in repr(s)


def test_client_with_a_wrong_token_raises_access_denied(broker):
    import pdbg

    with pdbg.connect(broker.url, user=INVESTIGATOR, case=DEMO_CASE, token="pdbg_wrong") as s:
        with pytest.raises(AccessDenied) as err:
            s.budget()
    assert "pdbg_wrong" not in str(err.value)


def test_unreachable_broker_is_a_pdbg_error():
    import pdbg

    from .helpers import free_port

    with pdbg.connect(f"http://127.0.0.1:{free_port()}", user=INVESTIGATOR, case=DEMO_CASE, token="t") as s:
        with pytest.raises(PdbgError, match="cannot reach the broker"):
            s.budget()


# -- the query time limit (in process: the engine must really be interrupted) -------------

def test_query_timeout_reaches_the_engine_and_is_504_and_charged(demo, tokens, fresh_case, monkeypatch):
    """A query running past `--query-timeout` is interrupted by DuckDB and answered 504. It had
    started reading private rows, so the timeout is a release (whether it happens can depend on
    the data): charged and audited as ``query.failed`` (DESIGN.md invariant 10)."""
    import asyncio

    import httpx

    import pdbg.engine.duckdb as engine
    from pdbg.server.app import create_app

    case = fresh_case()
    real_run = engine._run
    seen = []

    def slow_run(con, sql, salt):           # stands in for a heavy scan: DuckDB grinds until interrupted
        seen.append(True)
        con.execute("SELECT SUM(a.range * b.range) FROM range(200000) a, range(200000) b").fetchall()
        return real_run(con, sql, salt)

    monkeypatch.setattr(engine, "_run", slow_run)
    headers = {"Authorization": f"Bearer {tokens[INVESTIGATOR]}", "X-Pdbg-User": INVESTIGATOR}

    async def drive():
        transport = httpx.ASGITransport(app=create_app(demo.ws, query_timeout_s=0.5))
        async with httpx.AsyncClient(transport=transport, base_url="http://broker", headers=headers) as c:
            before = (await c.get("/v1/budget", params={"case": case})).json()["spent_epsilon"]
            r = await c.post("/v1/query", json={"case": case, "sql": COUNT, "epsilon": 0.1})
            after = (await c.get("/v1/budget", params={"case": case})).json()["spent_epsilon"]
            return before, r, after

    before, r, after = asyncio.run(drive())
    body = assert_error_body(r, 504, "QueryFailed")
    assert body["rule"] == "timeout" and body["charged"] is True
    assert "longer than" in body["message"] and "Narrow" in body["hint"]
    assert seen and after == pytest.approx(before + 0.1, rel=1e-6)


def test_a_failure_after_data_access_is_json_charged_and_raised_as_query_failed(http, remote, fresh_case):
    from pdbg.errors import QueryFailed

    case = fresh_case()
    bad = COUNT + " HAVING CAST(service AS INTEGER) > 1"
    r = http(INVESTIGATOR).post("/v1/query", json={"case": case, "sql": bad, "epsilon": 0.1})
    body = assert_error_body(r, 422, "QueryFailed")
    assert body["rule"] == "post-processing" and body["charged"] is True
    assert "checkout" not in r.text and "Conversion" not in r.text
    s = remote(case)
    spent = s.budget().spent_epsilon
    with pytest.raises(QueryFailed) as err:
        s.sql(bad.replace("500", "501"), epsilon=0.1)
    assert err.value.rule == "post-processing"
    assert s.budget().spent_epsilon > spent + 0.01          # zCDP composes: less than the sum, never nothing


def test_serve_passes_its_limits_to_the_app(demo, monkeypatch):
    from click.testing import CliRunner

    import uvicorn

    from pdbg.cli.main import cli

    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    res = CliRunner().invoke(cli, ["serve", str(demo.ws.root), "--port", "9", "--query-timeout", "2.5",
                                   "--max-body", "4096"])
    assert res.exit_code == 0, res.output
    assert captured["app"].state.query_timeout_s == 2.5
    assert captured["host"] == "127.0.0.1" and captured["access_log"] is False
    assert captured["http"].header_timeout == 5.0 and captured["http"].max_connections == 512
    res = CliRunner().invoke(cli, ["serve", str(demo.ws.root), "--port", "9", "--header-timeout", "2",
                                   "--max-connections", "64", "--auth-failures", "4", "--log-lines", "7"])
    assert res.exit_code == 0, res.output
    assert captured["http"].header_timeout == 2.0 and captured["http"].max_connections == 64
    assert captured["app"].state.auth_limiter.max_failures == 4
    assert captured["log_config"]["filters"]["ratelimit"]["per_interval"] == 7


@pytest.mark.parametrize("sql", ["'", '"', "SELECT $$"])
def test_untokenizable_sql_is_refused_not_a_500(http, sql):
    r = http(INVESTIGATOR).post("/v1/query", json={"case": DEMO_CASE, "sql": sql, "epsilon": 0.1})
    assert_error_body(r, 400, "QueryRejected")


@pytest.mark.parametrize("name", ["StorageBusy", "StorageReadOnly", "StorageFull", "StorageCorrupt"])
def test_storage_failures_are_503_json_naming_only_the_file(name):
    """A damaged or full state.sqlite is the server's trouble, not the request's: 503, never 400."""
    import json

    from pdbg import errors
    from pdbg.server.app import _error_response

    resp = _error_response(getattr(errors, name)("state.sqlite cannot be used", file="state.sqlite"))
    body = json.loads(resp.body)
    assert resp.status_code == 503 and body["error"] == name and "/" not in body["message"]
