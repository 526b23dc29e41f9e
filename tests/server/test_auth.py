"""Authentication and authorization over real HTTP: who may call what, and how a refusal looks.

401 = we do not know who you are (one generic answer, whichever half was wrong);
403 = we know, and the role, grant or separation of duties says no. Every refusal is
JSON {error, message, hint}; no response and no log line ever contains a token.
"""

from __future__ import annotations

import pytest

from pdbg.demo.build import ADMIN, APPROVER, AUDITOR, DEMO_CASE, INVESTIGATOR

from .helpers import assert_error_body

BUDGET = ("GET", "/v1/budget", {"params": {"case": DEMO_CASE}})
QUERY = ("POST", "/v1/query", {"json": {"case": DEMO_CASE, "sql": "SELECT COUNT(*) AS n FROM requests", "epsilon": 0.1}})
PROTECTED = [
    BUDGET, QUERY,
    ("POST", "/v1/preview", QUERY[2]),
    ("GET", "/v1/history", {"params": {"case": DEMO_CASE}}),
    ("GET", "/v1/templates", {}),
    ("GET", f"/v1/cases/{DEMO_CASE}", {}),
    ("GET", "/v1/access/requests", {}),
    ("GET", "/v1/audit/verify", {}),
    ("POST", "/v1/access/break-glass", {"json": {"case": DEMO_CASE, "dataset": "requests", "reason": "x"}}),
]


def test_health_needs_no_token_and_says_nothing_private(http):
    r = http().get("/v1/health")
    assert r.status_code == 200 and r.json() == {"ok": True, "version": "v1"}


@pytest.mark.parametrize("method,path,kw", PROTECTED, ids=[p[1] for p in PROTECTED])
def test_every_endpoint_refuses_without_a_token(http, method, path, kw):
    r = http().request(method, path, **kw)
    body = assert_error_body(r, 401, "AccessDenied")
    assert r.headers["www-authenticate"] == "Bearer"
    assert "authentication failed" in body["message"]


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer pdbg_not-a-real-token", "X-Pdbg-User": INVESTIGATOR},
    {"Authorization": "Basic YWxpY2U6cGFzcw==", "X-Pdbg-User": INVESTIGATOR},
    {"Authorization": "Bearer", "X-Pdbg-User": INVESTIGATOR},
    {"X-Pdbg-User": INVESTIGATOR},
    {"Authorization": "Bearer pdbg_x"},
    {"Authorization": "Bearer pdbg_x", "X-Pdbg-User": "os:root"},     # the CLI-only data-owner actor
    {"Authorization": "Bearer pdbg_x", "X-Pdbg-User": "nobody"},
], ids=["wrong-token", "basic-auth", "empty-bearer", "no-authorization", "no-user", "os-actor", "unknown-user"])
def test_malformed_or_wrong_credentials_are_401(http, headers):
    r = http().get("/v1/budget", params={"case": DEMO_CASE}, headers=headers)
    assert_error_body(r, 401, "AccessDenied")


def test_another_users_token_is_401_and_indistinguishable_from_a_wrong_one(http, tokens):
    forged = http(token=tokens[APPROVER], as_user=INVESTIGATOR).get("/v1/budget", params={"case": DEMO_CASE})
    wrong = http(token="pdbg_wrong", as_user=INVESTIGATOR).get("/v1/budget", params={"case": DEMO_CASE})
    assert_error_body(forged, 401)
    assert forged.json() == wrong.json()          # no oracle for "the token is valid, for someone else"
    # And the approver's own identity does not get in through the investigator's door either way round.
    assert_error_body(http(token=tokens[INVESTIGATOR], as_user=APPROVER).get("/v1/access/requests"), 401)


def test_investigator_is_refused_approver_endpoints(http, demo):
    from pdbg.governance import access

    alice = http(INVESTIGATOR)
    r = alice.post("/v1/access/requests", json={"case": DEMO_CASE, "dataset": "requests", "epsilon": 0.2,
                                                 "hours": 1, "reason": "auth test"})
    assert r.status_code == 200, r.text
    rid = r.json()["id"]
    grant_id = access.list_grants(demo.ws, user=INVESTIGATOR, case=DEMO_CASE)[0].id
    for method, path, kw in [
        ("POST", f"/v1/access/requests/{rid}/approve", {}),
        ("POST", f"/v1/access/requests/{rid}/deny", {"json": {"reason": "no"}}),
        ("GET", "/v1/access/requests", {}),
        ("GET", "/v1/audit/verify", {}),
        ("POST", f"/v1/access/grants/{grant_id}/revoke", {}),
    ]:
        body = assert_error_body(alice.request(method, path, **kw), 403, "AccessDenied")
        assert "investigator" in body["message"], body
    assert access.get_request(demo.ws, rid).status == "pending"     # nothing changed
    assert access.get_grant(demo.ws, grant_id).revoked is None


def test_role_checks_come_before_existence(http):
    """An investigator probing approver resources learns nothing from 404 vs 403."""
    alice = http(INVESTIGATOR)
    assert_error_body(alice.post("/v1/access/requests/req-doesnotexist/approve"), 403)
    assert_error_body(http(APPROVER).post("/v1/access/requests/req-doesnotexist/approve"), 404, "NotFound")
    assert_error_body(http(APPROVER).post("/v1/access/grants/g-doesnotexist/revoke"), 404, "NotFound")
    assert_error_body(alice.get("/v1/cases/NO-SUCH-CASE"), 404, "NotFound")


def test_self_approval_through_the_api_is_refused_and_audited(http, demo, tokens):
    """A requester who later becomes an approver still cannot approve their own request."""
    import httpx

    from pdbg.governance import access, principals
    from pdbg.ledger.audit import AuditLog

    owner = principals.os_actor()
    token = principals.add_user(demo.ws, owner, "erin", "investigator")
    erin = httpx.Client(base_url=str(http().base_url), headers={"Authorization": f"Bearer {token}",
                                                                "X-Pdbg-User": "erin"})
    try:
        r = erin.post("/v1/access/requests", json={"case": DEMO_CASE, "dataset": "requests", "epsilon": 0.3,
                                                    "hours": 1, "reason": "self-approval test"})
        rid = r.json()["id"]
        principals.set_role(demo.ws, owner, "erin", "approver")
        body = assert_error_body(erin.post(f"/v1/access/requests/{rid}/approve"), 403, "AccessDenied")
        assert "separation of duties" in body["message"]
        assert "different person" in body["hint"]
        assert access.get_request(demo.ws, rid).status == "pending"
        denied = [x for x in AuditLog(demo.ws).records() if x["action"] == "authz.denied" and x["actor"] == "erin"]
        assert denied and denied[-1]["attempted"] == "access.approve"
        assert token not in r.text and token not in body["message"]
    finally:
        erin.close()


def test_approver_approves_and_the_grant_works_over_http(http, demo):
    from pdbg.governance import cases

    cases.open_case(demo.ws, APPROVER, "S-APPROVE", "approve over http")
    alice, bob = http(INVESTIGATOR), http(APPROVER)
    rid = alice.post("/v1/access/requests", json={"case": "S-APPROVE", "dataset": "requests", "epsilon": 0.5,
                                                  "hours": 2, "reason": "http approval"}).json()["id"]
    assert rid in [x["id"] for x in bob.get("/v1/access/requests", params={"pending": True}).json()["requests"]]
    grant = bob.post(f"/v1/access/requests/{rid}/approve").json()
    assert grant["user"] == INVESTIGATOR and grant["approved_by"] == APPROVER
    b = alice.get("/v1/budget", params={"case": "S-APPROVE"}).json()
    assert b["granted_epsilon"] == pytest.approx(0.5) and b["spent_epsilon"] == 0
    # A decided request cannot be decided again; revocation stops the next query.
    assert_error_body(bob.post(f"/v1/access/requests/{rid}/deny", json={"reason": "late"}), 403)
    assert bob.post(f"/v1/access/grants/{grant['id']}/revoke").status_code == 200
    body = assert_error_body(alice.post("/v1/query", json={"case": "S-APPROVE", "epsilon": 0.1,
                                                           "sql": "SELECT COUNT(*) AS n FROM requests"}), 403)
    assert "revoked" in body["message"]


def test_auditor_and_admin_read_audit_status_other_roles_do_not(http):
    for user in (AUDITOR, ADMIN):
        r = http(user).get("/v1/audit/verify")
        assert r.status_code == 200 and r.json()["ok"] is True
    assert_error_body(http(APPROVER).get("/v1/audit/verify"), 403)


def test_break_glass_over_http_is_investigator_only_and_audited_high(http, demo):
    from pdbg.governance import cases, members
    from pdbg.ledger.audit import AuditLog

    cases.open_case(demo.ws, APPROVER, "S-GLASS", "break glass over http")
    r = http(INVESTIGATOR).post("/v1/access/break-glass", json={"case": "S-GLASS", "dataset": "requests",
                                                                "reason": "prod down"})
    assert "not a member" in assert_error_body(r, 403, "AccessDenied")["message"]
    members.add_member(demo.ws, APPROVER, "S-GLASS", INVESTIGATOR)
    assert_error_body(http(APPROVER).post("/v1/access/break-glass", json={
        "case": "S-GLASS", "dataset": "requests", "reason": "prod down"}), 403)
    r = http(INVESTIGATOR).post("/v1/access/break-glass", json={"case": "S-GLASS", "dataset": "requests",
                                                                "reason": "prod down"})
    assert r.status_code == 200 and r.json()["kind"] == "break_glass"
    rec = [x for x in AuditLog(demo.ws).records() if x["action"] == "access.break_glass"][-1]
    assert rec["severity"] == "high" and rec["actor"] == INVESTIGATOR


def test_no_token_in_any_response(http, tokens, fresh_case):
    """Drive every endpoint as every user; no body or header ever carries a token."""
    case = fresh_case(0.5)
    seen = []
    for user in tokens:
        c = http(user)
        for method, path, kw in PROTECTED[:-1] + [("GET", "/v1/budget", {"params": {"case": case}}),
                                                    ("GET", "/openapi.json", {})]:
            r = c.request(method, path, **kw)
            seen.append(r.text + repr(dict(r.headers)))
        r = c.post("/v1/query", json={"case": case, "sql": "SELECT COUNT(*) AS n FROM requests", "epsilon": 0.05,
                                      "extra": tokens[user]})          # a token pasted in the wrong place
        assert r.status_code == 422
        seen.append(r.text + repr(dict(r.headers)))
    blob = "\n".join(seen)
    assert not [u for u, t in tokens.items() if t in blob]


def test_tokens_never_reach_the_broker_log(broker, tokens, http):
    http(INVESTIGATOR).get("/v1/budget", params={"case": DEMO_CASE})
    http(token=tokens[APPROVER], as_user=INVESTIGATOR).get("/v1/budget", params={"case": DEMO_CASE})
    log = broker.log()
    assert "pdbg broker on http://127.0.0.1" in log
    assert not [u for u, t in tokens.items() if t in log]
    assert "Traceback" not in log                      # nothing unexpected happened so far either
