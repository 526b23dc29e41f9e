"""The broker: an HTTP API over the session, so investigators never hold the data files.

Run as a dedicated OS user that alone can read the workspace (docs/DEPLOYMENT.md).
Every request authenticates with a personal bearer token (`pdbg user add` prints it
once; the server compares hashes in constant time) and is authorized by role through
the same governance functions the CLI uses, so the API cannot drift from the library's
access model.

Status codes are part of the contract:

* 401 — no credentials, malformed credentials, or a token that does not belong to
  the named user (one generic answer, never saying which part was wrong);
* 403 — authenticated, but the role, grant or separation of duties forbids it;
* 404 — the request, grant or case named in the path does not exist (only after
  the role check, so an investigator cannot probe approver resources);
* 429 — too many failed authentications for this user from this address (``Retry-After``);
  every failed authentication is audited (``auth.failed``, rate-limited, never the token);
* 400 / 408 / 409 / 413 / 422 / 503 / 504 — refused query, body too slow, budget, size,
  validation, busy or failed engine (or the connection cap), query time limit. A 5xx body is
  one fixed line per class, never a library message or a server path.

Every error body is ``{"error", "message", "hint"}`` with the library's error class
(plus ``rule`` for QueryRejected, ``requested``/``remaining`` for BudgetExceeded).
Validation errors name the field but never echo the submitted value, and anything
unexpected becomes a generic 500 whose log line holds the exception type and stack
frames only: exception messages (DuckDB's in particular) can quote private values,
and invariant 7 says no log may contain one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import traceback
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from pdbg import errors
from pdbg.policy.workspace import Workspace
from pdbg.session import BudgetView, CostView

API_VERSION = "v1"
MAX_BODY_BYTES = 64 * 1024
"""Generous for any SQL a person writes (20k characters) and small enough that a
client cannot make the broker buffer megabytes per request."""

DEFAULT_BODY_TIMEOUT_S = 10.0
"""A request body (at most 64 KiB) must arrive within this many seconds of its headers."""

DEFAULT_QUERY_TIMEOUT_S = 30.0
"""Engine time limit per query under the broker: an incident question that needs
longer should be narrowed; a runaway query must not hold a worker for minutes."""

STATUS = {
    "AccessDenied": 403, "QueryRejected": 400, "BudgetExceeded": 409, "PolicyError": 400,
    "WorkspaceError": 400, "IngestError": 400, "EngineError": 503, "QueryTimeout": 504,
    "AuditError": 503, "StorageError": 503, "PdbgError": 400,
    # a query that failed after reading data: charged and audited, a fixed message (never a bare 500)
    "QueryFailed": 422,
}

log = logging.getLogger("pdbg.server")

# -- request and response models ---------------------------------------------------------

CaseId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
DatasetName = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]
PositiveFloat = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimestampParam(_Strict):
    """A TIMESTAMP parameter on the wire: JSON has no time type, and a plain string would
    plan (and cache) differently from the datetime the embedded session receives."""

    timestamp: str = Field(max_length=64, examples=["2026-11-20 13:00:00"])

    @field_validator("timestamp")
    @classmethod
    def _iso(cls, v: str) -> str:
        datetime.fromisoformat(v)            # ValueError -> 422 naming the field
        return v


class DateParam(_Strict):
    date: str = Field(max_length=32, examples=["2026-11-20"])

    @field_validator("date")
    @classmethod
    def _iso(cls, v: str) -> str:
        date.fromisoformat(v)
        return v


ParamScalar = (Annotated[bool, Field(strict=True)]
               | Annotated[int, Field(strict=True, ge=-(2**63), lt=2**63)]
               | Annotated[float, Field(allow_inf_nan=False)]
               | Annotated[str, Field(max_length=1000)]
               | TimestampParam | DateParam | None)
ParamValue = ParamScalar | Annotated[list[ParamScalar], Field(min_length=1, max_length=200)]


def _decode_param(v):
    if isinstance(v, TimestampParam):
        return datetime.fromisoformat(v.timestamp)
    if isinstance(v, DateParam):
        return date.fromisoformat(v.date)
    if isinstance(v, list):
        return [_decode_param(x) for x in v]
    return v


def _params(body) -> dict | None:
    return None if body.params is None else {k: _decode_param(v) for k, v in body.params.items()}
class QueryBody(_Strict):
    case: CaseId
    sql: str = Field(min_length=1, max_length=20_000)
    epsilon: PositiveFloat | None = None
    accuracy: PositiveFloat | None = None
    params: dict[Annotated[str, Field(min_length=1, max_length=64)], ParamValue] | None = Field(
        default=None, max_length=32)


class AccessRequestBody(_Strict):
    case: CaseId
    dataset: DatasetName
    epsilon: PositiveFloat
    hours: PositiveFloat
    reason: Reason


class BreakGlassBody(_Strict):
    case: CaseId
    dataset: DatasetName
    reason: Reason


class ReasonBody(_Strict):
    reason: Reason


class ReplayBody(_Strict):
    case: CaseId
    release_id: str = Field(min_length=1, max_length=64)


class ErrorBody(BaseModel):
    """Every refusal: the library's error class, what was wrong, and what to do next."""

    error: str
    message: str
    hint: str
    rule: str | None = None
    requested: float | None = None
    remaining: float | None = None


# The response shapes reuse the session's own result types, so the API and the library cannot drift.
Cost = CostView
Budget = BudgetView


class QueryResult(BaseModel):
    sql: str
    release_id: str
    cached: bool
    epsilon: float
    cost: Cost
    table: str = Field(description="pandas `to_json(orient='table')` of the released DataFrame")
    notes: list[str]
    budget: Budget | None = None


class PreviewResult(BaseModel):
    sql: str
    epsilon: float
    cost: Cost
    accuracy: dict[str, float | None] = Field(description="output column -> 95% CI half-width (null: unbounded)")
    notes: list[str]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorBody} for c in codes}


_AUTH_ERRORS = _errors(401, 403, 413, 422, 429, 500)

# -- security schemes (documented in OpenAPI; parsed here, checked in `caller`) ------------

_bearer = HTTPBearer(auto_error=False, description="Personal token printed once by `pdbg user add`.")
_user_header = APIKeyHeader(name="X-Pdbg-User", auto_error=False, description="The pdbg user name the token belongs to.")


class Caller(BaseModel):
    """An authenticated user. Holds no token: nothing downstream needs it, so nothing can leak it."""

    name: str
    role: str


class _Unauthenticated(Exception):
    """No, malformed, or wrong credentials: answered 401 with one generic message."""


class _RateLimited(Exception):
    """Too many failed authentications for (user, address): 429 with Retry-After."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


class _NotFound(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _json_error(status: int, error: str, message: str, hint: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, headers=headers, content={"error": error, "message": message, "hint": hint})


# A 5xx says what failed in one fixed line per class and what to do; the library's message can
# name server paths, OS errors or file names (it stays in the broker's log, for the admin).
_FIXED_5XX = {
    "EngineError": ("the query engine is busy or unavailable",
                    "Retry in a moment; if it persists, ask an admin to check the broker's log."),
    "AuditError": ("the audit log is unavailable, so nothing was released",
                   "Retry later; an admin should run `pdbg audit verify` and check the broker's log."),
    "QueryTimeout": ("the query ran longer than the broker's time limit",
                     "Narrow the query (a shorter time window, fewer groups) and retry."),
    "QueryFailed": ("the query ran longer than the broker's time limit; the attempt was charged",
                    "Narrow the query (a shorter time window, fewer groups) and retry."),
}
_GENERIC_5XX = ("the broker could not answer", "Retry; if it persists, ask an admin to check the broker's log.")


def _error_response(err: errors.PdbgError, ws_root: str | None = None) -> JSONResponse:
    status = next((STATUS[c.__name__] for c in type(err).__mro__ if c.__name__ in STATUS), 400)
    if isinstance(err, errors.QueryFailed) and err.rule == "timeout":
        status = 504   # still a charged failure (the body says so), but a gateway timeout to HTTP tooling
    body = err.to_dict()
    if status >= 500:
        log.warning("%d %s%s", status, type(err).__name__, f" ({err.rule})" if getattr(err, "rule", None) else "")
        name = next((c.__name__ for c in type(err).__mro__ if c.__name__ in _FIXED_5XX), None)
        body["message"], body["hint"] = _FIXED_5XX.get(name, _GENERIC_5XX)
    elif ws_root:
        # refusals keep their words, but never show where the workspace lives on the server
        body["message"] = body["message"].replace(ws_root, "the workspace")
        body["hint"] = body["hint"].replace(ws_root, "the workspace")
    return JSONResponse(status_code=status, content=_finite(body))


# -- 422 wording: the field and the rule, never the submitted value or a client-chosen key --------

_PARAM_VALUE_RULE = ('must be a number, string, boolean, null, {"timestamp": ISO}, {"date": ISO} '
                     "or a non-empty list of those (at most 200)")


def _known_fields() -> frozenset[str]:
    names = {"case", "dataset", "pending", "open_only", "request_id", "grant_id", "body"}
    for model in (QueryBody, AccessRequestBody, BreakGlassBody, ReasonBody, ReplayBody, TimestampParam, DateParam):
        names.update(model.model_fields)
    return frozenset(names)


def _rule(e: dict) -> str:
    """A fixed description of a pydantic error type; only our own limits (ctx) are quoted."""
    kind, ctx = e.get("type", ""), e.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field (not allowed)"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"at least {ctx.get('min_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    if kind in ("too_long", "too_short"):
        bound = "at most" if kind == "too_long" else "at least"
        return f"{bound} {ctx.get('max_length' if kind == 'too_long' else 'min_length')} items"
    if kind == "finite_number":
        return "must be a finite number"
    for key, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal") and key in ctx:
            return f"must be {word} {ctx[key]}"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if kind in ("model_attributes_type", "dict_type"):
        return "must be a JSON object"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"must be a {kind.split('_')[0]}"
    return f"invalid ({kind})" if kind.replace("_", "").isalnum() else "invalid"


def _validation_message(errs: list[dict]) -> str:
    """``field: rule; …`` for at most five problems. Client-chosen names (unknown keys, parameter
    names) are never repeated: a token pasted as a key must not come back either."""
    known = _known_fields()
    problems: list[str] = []
    for e in errs:
        loc = [p for p in e.get("loc", ()) if p not in ("body", "query", "path")]
        kind = e.get("type", "")
        if loc[:1] == ["params"] and len(loc) >= 2:
            name, shown = loc[1], "<name>"         # parameter names are the client's words too
            if loc[-1] == "[key]" or name == "[key]":
                text = f"params: parameter names need 1-64 characters ({_rule(e)})"
            elif kind == "value_error" and loc[-1] in ("timestamp", "date"):
                text = f"params.{shown}: {{\"{loc[-1]}\": …}} must hold an ISO {'date and time' if loc[-1] == 'timestamp' else 'date'} (e.g. 2026-11-20 13:00:00)"
            else:
                text = f"params.{shown}: {_PARAM_VALUE_RULE}"
        elif kind == "extra_forbidden":
            text = f"{'.'.join(str(p) for p in loc[:-1]) or 'body'}: unknown field (not allowed)"
        else:
            field = ".".join(str(p) if (p in known or isinstance(p, int)) else "<key>" for p in loc) or "body"
            text = f"{field}: {_rule(e)}"
        if text not in problems:
            problems.append(text)
        if len(problems) == 5:
            break
    return "; ".join(problems) or "the request is not valid"


def _finite(obj):
    """JSON has no NaN/Infinity: an unbounded CI or a NaN estimate travels as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# -- ASGI middleware -------------------------------------------------------------------------

class _BodyLimit:
    """Refuse bodies over the limit with 413, counting the bytes actually received.

    A declared Content-Length over the limit is refused up front, but a declaration is
    only a claim: with ``Transfer-Encoding: chunked`` the server reads the chunks whatever
    Content-Length says. So every body is buffered here, ``receive()`` message by message,
    and refused the moment the count passes the limit; the application then sees one
    message holding the whole (bounded) body. No request can make the broker hold more
    than ``limit`` bytes of body, declared or not.
    """

    def __init__(self, app, limit: int, timeout: float | None = None) -> None:
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        while more:
            # The whole body must arrive within `timeout` seconds of the headers, however it trickles.
            try:
                message = await (receive() if deadline is None
                                 else asyncio.wait_for(receive(), max(0.0, deadline - loop.time())))
            except asyncio.TimeoutError:
                return await self._too_slow(scope, receive, send)
            if message["type"] != "http.request":
                return await self.app(scope, _replaying(message, receive), send)   # client gone
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._too_large(scope, receive, send)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        return await self.app(scope, _replaying({"type": "http.request", "body": body, "more_body": False},
                                                receive), send)

    async def _too_slow(self, scope, receive, send):
        resp = _json_error(408, "RequestTimeout", f"the request body did not arrive within {self.timeout:g} s",
                           "Send the whole request at once; check the network between you and the broker.",
                           headers={"Connection": "close"})
        await resp(scope, receive, send)

    async def _too_large(self, scope, receive, send):
        resp = _json_error(413, "RequestTooLarge", f"request body over {self.limit} bytes",
                           "Send a shorter query; SQL is limited to 20,000 characters.",
                           headers={"Connection": "close"})
        await resp(scope, receive, send)


def _replaying(first: dict, receive):
    """A ``receive`` that returns ``first`` once, then defers to the server's (disconnects)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay


class _CatchAll:
    """Turn any unexpected exception into a generic 500 and log it without its message.

    Sits inside Starlette's ServerErrorMiddleware so that uvicorn never prints the
    default traceback (which includes the exception message and could quote data).
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the whole point: nothing escapes unsanitized
            log.error("unexpected %s on %s %s\n%s", type(exc).__name__, scope.get("method"), scope.get("path"),
                      _frames_only(exc))
            if started:
                raise
            resp = _json_error(500, "InternalError", "the broker failed to answer",
                               "Retry; if it persists, an admin should check the broker's own logs.")
            await resp(scope, receive, send)


def _frames_only(exc: BaseException) -> str:
    """Stack frames (file, line, function) of an exception and its causes, without any message."""
    lines = []
    while exc is not None:
        lines.append(f"  {type(exc).__module__}.{type(exc).__qualname__}")
        for fr in traceback.extract_tb(exc.__traceback__):
            lines.append(f"    {fr.filename}:{fr.lineno} in {fr.name}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(lines)


# -- the app -----------------------------------------------------------------------------

def _warm_imports() -> None:
    """Import the release path now: a lazy import at request time opens .py files, and under a
    connection flood that can be exactly the file descriptor that is not there (EMFILE → 500)."""
    import pdbg.dp.release  # noqa: F401
    import pdbg.engine.duckdb  # noqa: F401
    import pdbg.engine.postprocess  # noqa: F401
    import pdbg.session  # noqa: F401
    import pdbg.sql  # noqa: F401
    import pdbg.sql.verify  # noqa: F401


def create_app(workspace: str | Workspace, *, query_timeout_s: float | None = DEFAULT_QUERY_TIMEOUT_S,
               max_body_bytes: int = MAX_BODY_BYTES, body_timeout_s: float | None = DEFAULT_BODY_TIMEOUT_S,
               auth_limiter=None) -> FastAPI:
    """The broker ASGI app over ``workspace``.

    ``query_timeout_s`` is the engine's time limit for one query (DuckDB is
    interrupted; see QueryFailed for the charge); ``max_body_bytes`` bounds every
    request body and ``body_timeout_s`` the time it may take to arrive (408 after).
    ``auth_limiter`` (a ``principals.FailedAuthLimiter``) throttles failed
    authentications and their audit records; one with defaults when not given.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    _warm_imports()
    app = FastAPI(
        title="pdbg broker", version=API_VERSION,
        description="Differentially private answers over a pdbg workspace. Authenticate every call with "
                    "`Authorization: Bearer <token>` (from `pdbg user add`) and `X-Pdbg-User: <name>`.",
    )
    app.state.workspace = ws
    app.state.query_timeout_s = query_timeout_s
    if auth_limiter is None:
        from pdbg.governance.principals import FailedAuthLimiter

        auth_limiter = FailedAuthLimiter()
    limiter = app.state.auth_limiter = auth_limiter
    app.add_middleware(_CatchAll)
    app.add_middleware(_BodyLimit, limit=max_body_bytes, timeout=body_timeout_s)

    @app.exception_handler(errors.PdbgError)
    async def pdbg_error(_request: Request, err: errors.PdbgError):
        return _error_response(err, str(ws.root))

    @app.exception_handler(_Unauthenticated)
    async def unauthenticated(_request: Request, _err: Exception):
        return _json_error(401, "AccessDenied", "authentication failed",
                           "Send `Authorization: Bearer <token>` and `X-Pdbg-User: <name>` with the token "
                           "`pdbg user add` printed for that user.", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(_RateLimited)
    async def rate_limited(_request: Request, err: _RateLimited):
        wait = int(math.ceil(err.retry_after))
        return _json_error(429, "RateLimited", "too many failed authentications from this address for this user",
                           f"Wait {wait} s, then retry with the user name and token `pdbg user add` printed.",
                           headers={"Retry-After": str(wait)})

    @app.exception_handler(_NotFound)
    async def not_found(_request: Request, err: _NotFound):
        return _json_error(404, "NotFound", f"no {err.what}", "Check the identifier (list them with the CLI).")

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, err: RequestValidationError):
        return _json_error(422, "RequestInvalid", _validation_message(err.errors()),
                           "See /openapi.json for the expected fields and types.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException):
        names = {404: "NotFound", 405: "MethodNotAllowed"}
        return _json_error(err.status_code, names.get(err.status_code, "HTTPError"),
                           str(err.detail) if err.status_code < 500 else "the broker failed to answer",
                           "See /openapi.json for the endpoints.", headers=getattr(err, "headers", None))

    def caller(request: Request, cred: HTTPAuthorizationCredentials | None = Depends(_bearer),
               user: str | None = Depends(_user_header)) -> Caller:
        from pdbg.governance import principals

        source = request.client.host if request.client else None
        key_user = principals.claimed_name(user)
        wait = limiter.retry_after(key_user, source) if key_user else None   # per user: none claimed, none limited
        if wait is not None:
            raise _RateLimited(wait)           # whatever the token: the answer reveals nothing about it
        token = cred.credentials if cred is not None else ""
        try:
            if not token or not user:
                raise _Unauthenticated()
            if principals.is_owner(user) or not principals.NAME_RE.match(user):
                raise _Unauthenticated()       # the os: data-owner actor is CLI-only, never over HTTP
            try:
                u = principals.authenticate(ws, user, token)
            except errors.AccessDenied:
                raise _Unauthenticated() from None
        except _Unauthenticated:
            try:
                principals.audit_failed_auth(ws, limiter, user, source,
                                             principals.failure_reason(ws, user, bool(token)))
            except errors.PdbgError as err:   # the refusal stands; the admin sees why it went unrecorded
                log.warning("failed authentication not audited: %s", type(err).__name__)
            raise
        return Caller(name=u.name, role=u.role)

    def session(c: Caller, case: str):
        from pdbg.session import Session

        return Session(ws, user=c.name, case=case, query_timeout_s=query_timeout_s)

    def require(c: Caller, action: str, resource: str = "workspace") -> None:
        from pdbg.governance import principals

        principals.check(ws, c.name, action, resource, audit_refusal=True)

    def exists(fn, what: str, *args):
        try:
            return fn(ws, *args)
        except errors.PdbgError as err:
            if type(err) is errors.PdbgError:   # the library's "no such …" lookups raise the root class
                raise _NotFound(what) from None
            raise

    @app.get("/v1/health", tags=["meta"])
    def health() -> dict:
        """Liveness only: no authentication, no workspace detail."""
        return {"ok": True, "version": API_VERSION}

    @app.post("/v1/query", tags=["query"], response_model=QueryResult, responses=_errors(400, 401, 403, 409, 413, 422, 503, 504))
    def query(body: QueryBody, c: Caller = Depends(caller)) -> dict:
        """Release a DP answer (or replay it from the cache at zero cost)."""
        s = session(c, body.case)
        r = s.sql(body.sql, epsilon=body.epsilon, accuracy=body.accuracy, params=_params(body))
        return _finite(_result_dict(r))

    @app.post("/v1/preview", tags=["query"], response_model=PreviewResult, responses=_errors(400, 401, 403, 413, 422))
    def preview(body: QueryBody, c: Caller = Depends(caller)) -> dict:
        """Cost and expected accuracy; spends nothing and touches no data."""
        s = session(c, body.case)
        p = s.preview(body.sql, epsilon=body.epsilon, accuracy=body.accuracy, params=_params(body))
        return _finite({"sql": p.sql, "epsilon": p.epsilon, "cost": vars(p.cost), "accuracy": dict(p.accuracy),
                        "notes": list(p.notes)})

    @app.post("/v1/replay", tags=["query"], response_model=QueryResult, responses=_errors(401, 403, 404, 413, 422))
    def replay(body: ReplayBody, c: Caller = Depends(caller)) -> dict:
        """Show a release this case already made, from the cache, at zero cost (postmortems)."""
        s = session(c, body.case)
        try:
            r = s.replay(body.release_id)
        except errors.PdbgError as err:
            if type(err) is errors.PdbgError:
                raise _NotFound(f"release {body.release_id!r} in case {body.case!r}") from None
            raise
        return _finite(_result_dict(r))

    @app.get("/v1/budget", tags=["query"], response_model=Budget, responses=_AUTH_ERRORS)
    def budget(case: Annotated[CaseId, Query()], dataset: Annotated[DatasetName | None, Query()] = None,
               c: Caller = Depends(caller)) -> dict:
        """Granted / spent / remaining ε of the caller's grant for the case."""
        s = session(c, case)
        return _finite(vars(s.budget(dataset)))

    @app.get("/v1/history", tags=["query"], responses=_AUTH_ERRORS)
    def history(case: Annotated[CaseId, Query()], c: Caller = Depends(caller)) -> dict:
        """The case's release and refusal records from the audit log, oldest first."""
        return {"releases": _finite(session(c, case).history())}

    @app.get("/v1/templates", tags=["query"], responses=_AUTH_ERRORS)
    def templates(c: Caller = Depends(caller)) -> dict:
        """The reviewed query library the broker serves: name, ε, parameters, and the file text.

        The text lets a client parse exactly the templates the broker will plan, so
        `%dpsql --template` binds and types parameters the same way remotely.
        """
        from pdbg.templates import load_library

        return {"templates": [_template_dict(t) for t in load_library(workspace=ws.root).values()]}

    @app.get("/v1/cases/{case}", tags=["cases"], responses=_errors(401, 403, 404, 422, 500))
    def get_case(case: Annotated[CaseId, Path()], c: Caller = Depends(caller)) -> dict:
        """Case metadata: title, severity, status and milestones (UTC)."""
        from pdbg.governance import cases

        require(c, "case.read", f"case {case}")
        return exists(cases.get_case, f"case {case!r}", case).to_dict()

    @app.post("/v1/access/requests", tags=["access"], responses=_errors(400, 401, 403, 413, 422))
    def access_request(body: AccessRequestBody, c: Caller = Depends(caller)) -> dict:
        """File a request for (case, dataset, ε, hours); someone else must approve it."""
        from pdbg.governance import access

        require(c, "access.request", f"dataset {body.dataset} for case {body.case}")
        return access.request(ws, c.name, body.case, body.dataset, body.epsilon, body.hours,
                              body.reason).to_dict()

    @app.get("/v1/access/requests", tags=["access"], responses=_AUTH_ERRORS)
    def access_list(pending: bool = False, c: Caller = Depends(caller)) -> dict:
        """All access requests (approvers, admins, auditors)."""
        from pdbg.governance import access, principals

        principals.require_role(ws, c.name, "approver", "admin", "auditor")
        return {"requests": [r.to_dict() for r in access.list_requests(ws, pending_only=pending)]}

    @app.post("/v1/access/requests/{request_id}/approve", tags=["access"], responses=_errors(401, 403, 404, 422, 500))
    def access_approve(request_id: Annotated[str, Path(max_length=64)], c: Caller = Depends(caller)) -> dict:
        """Approve a pending request (never one's own): creates the grant and its ledger accounts."""
        from pdbg.governance import access

        require(c, "access.approve", f"request {request_id}")
        exists(access.get_request, f"access request {request_id!r}", request_id)
        return access.approve(ws, request_id, c.name).to_dict()

    @app.post("/v1/access/requests/{request_id}/deny", tags=["access"], responses=_errors(401, 403, 404, 413, 422))
    def access_deny(request_id: Annotated[str, Path(max_length=64)], body: ReasonBody,
                    c: Caller = Depends(caller)) -> dict:
        """Deny a pending request with a reason the requester will see."""
        from pdbg.governance import access

        require(c, "access.deny", f"request {request_id}")
        exists(access.get_request, f"access request {request_id!r}", request_id)
        return access.deny(ws, request_id, c.name, body.reason).to_dict()

    @app.post("/v1/access/break-glass", tags=["access"], responses=_errors(400, 401, 403, 413, 422))
    def break_glass(body: BreakGlassBody, c: Caller = Depends(caller)) -> dict:
        """Immediate small grant without an approver; audited high and queued for review."""
        from pdbg.governance import access

        require(c, "access.break_glass", f"dataset {body.dataset} for case {body.case}")
        return access.break_glass(ws, c.name, body.case, body.dataset, body.reason).to_dict()

    @app.post("/v1/access/grants/{grant_id}/revoke", tags=["access"], responses=_errors(401, 403, 404, 422, 500))
    def revoke(grant_id: Annotated[str, Path(max_length=64)], c: Caller = Depends(caller)) -> dict:
        """Revoke a grant; the next query under it is refused. Spent budget stays spent."""
        from pdbg.governance import access

        require(c, "access.revoke", f"grant {grant_id}")
        grant = exists(access.get_grant, f"grant {grant_id!r}", grant_id)
        if grant.revoked is not None:
            raise errors.PdbgError(f"grant {grant_id} is already revoked", "Nothing to do.")
        return access.revoke(ws, grant_id, c.name).to_dict()

    @app.get("/v1/audit/verify", tags=["audit"], responses=_AUTH_ERRORS)
    def audit_verify(c: Caller = Depends(caller)) -> dict:
        """Verify the audit log's chain, Merkle tree heads, signatures and mirror (auditors, admins)."""
        from pdbg.ledger import audit

        require(c, "audit.read", "audit log")
        report = audit.verify(ws)
        return _finite(report.to_dict() if hasattr(report, "to_dict") else vars(report))

    # -- oversight: the read-only views the governance and postmortem notebooks use --------
    def oversight(c: Caller):
        from pdbg.governance.oversight import Oversight

        return Oversight(ws, c.name)

    @app.get("/v1/oversight/requests", tags=["oversight"], responses=_AUTH_ERRORS)
    def ov_requests(pending: bool = False, c: Caller = Depends(caller)) -> dict:
        """Access requests (approvers, admins, auditors)."""
        return {"requests": _finite(oversight(c).requests(pending_only=pending))}

    @app.get("/v1/oversight/grants", tags=["oversight"], responses=_AUTH_ERRORS)
    def ov_grants(case: Annotated[CaseId | None, Query()] = None, c: Caller = Depends(caller)) -> dict:
        """Grants: all of them for overseers; an investigator's own on a case they worked."""
        return {"grants": _finite(oversight(c).grants(case))}

    @app.get("/v1/oversight/budgets", tags=["oversight"], responses=_AUTH_ERRORS)
    def ov_budgets(case: Annotated[CaseId | None, Query()] = None, c: Caller = Depends(caller)) -> dict:
        """Granted / spent / remaining per grant and per dataset cap (overseers)."""
        return _finite(oversight(c).budgets(case))

    @app.get("/v1/oversight/reviews", tags=["oversight"], responses=_AUTH_ERRORS)
    def ov_reviews(open_only: bool = True, c: Caller = Depends(caller)) -> dict:
        """Break-glass review items (overseers)."""
        return {"reviews": _finite(oversight(c).reviews(open_only=open_only))}

    @app.get("/v1/oversight/verify", tags=["oversight"], responses=_AUTH_ERRORS)
    def ov_verify(c: Caller = Depends(caller)) -> dict:
        """The audit log's verification report (overseers)."""
        return _finite(oversight(c).verify())

    def case_oversight(c: Caller, case: str):
        """Oversight views of one case: the caller may see it, and it exists (else 403 / 404).

        ``case_access`` first, so that a caller without access learns nothing from 404 vs 403.
        """
        from pdbg.governance import cases
        from pdbg.governance.case_access import case_access

        case_access(ws, c.name, case)
        exists(cases.get_case, f"case {case!r}", case)
        return oversight(c)

    @app.get("/v1/oversight/cases/{case}", tags=["oversight"], responses=_errors(401, 403, 404, 422))
    def ov_case(case: Annotated[CaseId, Path()], c: Caller = Depends(caller)) -> dict:
        """A case record with its milestones (overseers, or investigators who held a grant on it)."""
        return _finite(case_oversight(c, case).case(case))

    @app.get("/v1/oversight/cases/{case}/impact", tags=["oversight"], responses=_errors(401, 403, 404, 422))
    def ov_impact(case: Annotated[CaseId, Path()], c: Caller = Depends(caller)) -> dict:
        """The case's privacy impact: ε/δ per dataset and person, grants, break-glass, refusals, score."""
        return _finite(case_oversight(c, case).privacy_impact(case))

    return app


def _template_dict(t) -> dict[str, Any]:
    return {
        "name": t.name, "title": t.title, "description": t.description, "dataset": t.dataset,
        "epsilon": t.epsilon, "sql": t.sql, "reviewed": t.reviewed, "notes": t.notes, "chart": t.chart,
        "source": t.path.read_text(encoding="utf-8") if t.path is not None else None,
        "params": [{"name": p.name, "type": p.type, "default": p.default_text() or None, "required": p.required,
                    "description": p.description, "choices": list(p.choices)} for p in t.params],
    }


def _result_dict(r) -> dict[str, Any]:
    from pdbg.session import _df_to_payload

    return {
        "sql": r.sql, "release_id": r.release_id, "cached": r.cached, "epsilon": r.epsilon,
        "cost": vars(r.cost), "table": _df_to_payload(r.df), "notes": list(r.notes),
        "budget": vars(r.budget) if r.budget else None,
    }
