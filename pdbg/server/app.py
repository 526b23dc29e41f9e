"""The broker: an HTTP API over the session, so investigators never hold the data files.

Run as a dedicated OS user that alone can read the workspace (README, Deployment).
Every request authenticates with a personal bearer token (`pdbg user add` prints it
once; the server compares hashes in constant time) and is authorized by role through
the same governance functions the CLI uses. Errors are JSON with the library's error
class, message and hint; anything unexpected becomes a generic 500 with no detail,
so nothing private can leak through an error path.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pdbg import errors
from pdbg.policy.workspace import Workspace

API_VERSION = "v1"
MAX_BODY_BYTES = 64 * 1024
STATUS = {
    "AccessDenied": 403, "QueryRejected": 400, "BudgetExceeded": 409, "PolicyError": 400,
    "WorkspaceError": 400, "IngestError": 400, "EngineError": 502, "QueryTimeout": 504,
    "AuditError": 503, "PdbgError": 400,
}


class Caller(BaseModel):
    name: str
    role: str
    token: str = Field(repr=False)


class QueryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case: str = Field(min_length=1, max_length=64)
    sql: str = Field(min_length=1, max_length=20_000)
    epsilon: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    accuracy: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    params: dict[str, str | int | float | bool] | None = None


class AccessRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case: str = Field(min_length=1, max_length=64)
    dataset: str = Field(min_length=1, max_length=64)
    epsilon: float = Field(gt=0, allow_inf_nan=False)
    hours: float = Field(gt=0, allow_inf_nan=False)
    reason: str = Field(min_length=1, max_length=2000)


class BreakGlassBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case: str = Field(min_length=1, max_length=64)
    dataset: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


def _error_response(err: errors.PdbgError, status: int | None = None) -> JSONResponse:
    return JSONResponse(status_code=status or STATUS.get(type(err).__name__, 400), content=err.to_dict())


def create_app(workspace: str | Workspace) -> FastAPI:
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    app = FastAPI(title="pdbg broker", version=API_VERSION,
                  description="Differentially private answers over a pdbg workspace; tokens from `pdbg user add`.")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse(status_code=413, content={
                "error": "RequestTooLarge", "message": f"request body over {MAX_BODY_BYTES} bytes",
                "hint": "Send a shorter query."})
        return await call_next(request)

    @app.exception_handler(errors.PdbgError)
    async def pdbg_error(_request: Request, err: errors.PdbgError):
        return _error_response(err)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, _err: Exception):   # never echo internals
        return JSONResponse(status_code=500, content={
            "error": "InternalError", "message": "the broker failed to answer",
            "hint": "Retry; if it persists, an admin should check the broker's own logs."})

    def caller(authorization: str | None = Header(default=None),
               x_pdbg_user: str | None = Header(default=None)) -> Caller:
        from pdbg.governance import principals

        if not authorization or not authorization.startswith("Bearer ") or not x_pdbg_user:
            raise _Unauthenticated()
        token = authorization.removeprefix("Bearer ").strip()
        user = principals.authenticate(ws, x_pdbg_user, token)
        return Caller(name=user.name, role=user.role, token=token)

    @app.exception_handler(_Unauthenticated)
    async def unauthenticated(_request: Request, _err: Exception):
        return JSONResponse(status_code=401, headers={"WWW-Authenticate": "Bearer"}, content={
            "error": "AccessDenied", "message": "missing credentials",
            "hint": "Send `Authorization: Bearer <token>` and `X-Pdbg-User: <name>`."})

    def session(c: Caller, case: str):
        from pdbg.session import Session

        return Session(ws, user=c.name, case=case)

    @app.get("/v1/health")
    def health() -> dict:
        return {"ok": True, "version": API_VERSION}

    @app.post("/v1/query")
    def query(body: QueryBody, c: Caller = Depends(caller)) -> dict:
        r = session(c, body.case).sql(body.sql, epsilon=body.epsilon, accuracy=body.accuracy, params=body.params)
        return _result_dict(r)

    @app.post("/v1/preview")
    def preview(body: QueryBody, c: Caller = Depends(caller)) -> dict:
        p = session(c, body.case).preview(body.sql, epsilon=body.epsilon, accuracy=body.accuracy, params=body.params)
        return {"sql": p.sql, "epsilon": p.epsilon, "cost": vars(p.cost), "accuracy": p.accuracy, "notes": list(p.notes)}

    @app.get("/v1/budget")
    def budget(case: str, dataset: str | None = None, c: Caller = Depends(caller)) -> dict:
        return vars(session(c, case).budget(dataset))

    @app.get("/v1/history")
    def history(case: str, c: Caller = Depends(caller)) -> dict:
        return {"releases": session(c, case).history()}

    @app.get("/v1/templates")
    def templates(c: Caller = Depends(caller)) -> dict:
        from pdbg.templates import load_library

        return {"templates": [t.to_dict() for t in load_library(workspace=ws.root).values()]}

    @app.get("/v1/cases/{case}")
    def get_case(case: str, c: Caller = Depends(caller)) -> dict:
        from pdbg.governance import cases

        return cases.get_case(ws, case).to_dict()

    @app.post("/v1/access/requests")
    def access_request(body: AccessRequestBody, c: Caller = Depends(caller)) -> dict:
        from pdbg.governance import access

        return access.request(ws, c.name, body.case, body.dataset, body.epsilon, body.hours, body.reason).to_dict()

    @app.get("/v1/access/requests")
    def access_list(pending: bool = False, c: Caller = Depends(caller)) -> dict:
        from pdbg.governance import access, principals

        principals.require_role(ws, c.name, "approver", "admin", "auditor")
        return {"requests": [r.to_dict() for r in access.list_requests(ws, pending_only=pending)]}

    @app.post("/v1/access/requests/{request_id}/approve")
    def access_approve(request_id: str, c: Caller = Depends(caller)) -> dict:
        from pdbg.governance import access

        return access.approve(ws, request_id, c.name).to_dict()

    @app.post("/v1/access/requests/{request_id}/deny")
    def access_deny(request_id: str, body: ReasonBody, c: Caller = Depends(caller)) -> dict:
        from pdbg.governance import access

        return access.deny(ws, request_id, c.name, body.reason).to_dict()

    @app.post("/v1/access/break-glass")
    def break_glass(body: BreakGlassBody, c: Caller = Depends(caller)) -> dict:
        from pdbg.governance import access

        return access.break_glass(ws, c.name, body.case, body.dataset, body.reason).to_dict()

    @app.post("/v1/access/grants/{grant_id}/revoke")
    def revoke(grant_id: str, c: Caller = Depends(caller)) -> dict:
        from pdbg.governance import access

        return access.revoke(ws, grant_id, c.name).to_dict()

    @app.get("/v1/audit/verify")
    def audit_verify(c: Caller = Depends(caller)) -> dict:
        from pdbg.governance import principals
        from pdbg.ledger import audit

        principals.require_role(ws, c.name, "auditor", "admin")
        report = audit.verify(ws)
        return report.to_dict() if hasattr(report, "to_dict") else vars(report)

    return app


class _Unauthenticated(Exception):
    """No or malformed credentials: answered 401 before any governance lookup."""


def _result_dict(r) -> dict[str, Any]:
    from pdbg.session import _df_to_payload

    return {
        "sql": r.sql, "release_id": r.release_id, "cached": r.cached, "epsilon": r.epsilon,
        "cost": vars(r.cost), "table": _df_to_payload(r.df), "notes": list(r.notes),
        "budget": vars(r.budget) if r.budget else None,
    }
