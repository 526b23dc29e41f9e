"""`pdbg.connect("http://host:port", user=…, case=…, token=…)`: the same interface as the embedded session.

Magics, widgets and notebooks call `.sql`, `.preview`, `.budget`, `.history`,
`.replay` and `.templates` and get the same result types back, so they work
unchanged against a broker. Refusals come back as the same exception classes with
the same hint (``QueryRejected.rule``, ``BudgetExceeded.requested/remaining``), so
``except BudgetExceeded`` behaves identically in both modes.

The token comes from ``token=`` or ``$PDBG_TOKEN`` (how JupyterHub spawners hand
it to a user's server). It lives only in the HTTP client's default headers: never
in ``repr``, never in an error message.
"""

from __future__ import annotations

import math
import os

import httpx

from pdbg import errors
from pdbg.session import BudgetView, CostView, Preview, Result

TOKEN_ENV = "PDBG_TOKEN"

# Error classes that live below pdbg.errors; imported only when one arrives.
_DEEP_ERRORS = {"QueryTimeout": ("pdbg.engine.duckdb", "QueryTimeout")}


class RemoteSession:
    """An investigator's session on a broker: the embedded :class:`pdbg.session.Session`'s interface over HTTP."""

    def __init__(self, url: str, *, user: str, case: str, token: str | None = None,
                 timeout: float = 120.0, transport: httpx.BaseTransport | None = None) -> None:
        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise errors.AccessDenied("a broker session needs a token", f"Pass token=… or set {TOKEN_ENV}.")
        self.url, self.user, self.case = url.rstrip("/"), user, case
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}", "X-Pdbg-User": user})
        self._templates = None

    def __repr__(self) -> str:   # never show the token
        return f"RemoteSession(url={self.url!r}, user={self.user!r}, case={self.case!r})"

    def close(self) -> None:
        self._http.close()

    def __del__(self) -> None:
        # `%pdbg connect` replaces sessions without closing them; free the socket when dropped.
        http = getattr(self, "_http", None)
        if http is not None:
            http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the session interface ------------------------------------------------------
    def sql(self, query: str, *, epsilon: float | None = None, accuracy: float | None = None,
            params: dict | None = None) -> Result:
        """Release a DP answer (see :meth:`pdbg.session.Session.sql`)."""
        return _result(self._call("POST", "/v1/query", json=self._body(query, epsilon, accuracy, params)))

    def preview(self, query: str, *, epsilon: float | None = None, accuracy: float | None = None,
                params: dict | None = None) -> Preview:
        """Cost and expected accuracy; spends nothing."""
        d = self._call("POST", "/v1/preview", json=self._body(query, epsilon, accuracy, params))
        acc = {k: (math.inf if v is None else v) for k, v in d["accuracy"].items()}
        return Preview(sql=d["sql"], epsilon=d["epsilon"], cost=CostView(**d["cost"]), accuracy=acc,
                       notes=tuple(d["notes"]))

    def budget(self, dataset: str | None = None) -> BudgetView:
        """Granted / spent / remaining of this user's grant for this case."""
        params = {"case": self.case} | ({"dataset": dataset} if dataset else {})
        return BudgetView(**self._call("GET", "/v1/budget", params=params))

    def history(self) -> list[dict]:
        """This case's release records, oldest first."""
        return self._call("GET", "/v1/history", params={"case": self.case})["releases"]

    def replay(self, release_id: str) -> Result:
        """A release this case already made, from the broker's cache, at zero cost."""
        return _result(self._call("POST", "/v1/replay", json={"case": self.case, "release_id": release_id}))

    def templates(self) -> dict:
        """The broker's reviewed query library, as :class:`pdbg.templates.Template` objects by name."""
        if self._templates is None:
            from pdbg.templates import parse_template

            lib = {}
            for t in self._call("GET", "/v1/templates")["templates"]:
                if t.get("source"):
                    lib[t["name"]] = parse_template(t["source"], source=f"{t['name']}.sql")
            self._templates = dict(sorted(lib.items()))
        return self._templates

    # -- plumbing -------------------------------------------------------------------
    def _body(self, sql: str, epsilon, accuracy, params) -> dict:
        return {"case": self.case, "sql": sql, "epsilon": epsilon, "accuracy": accuracy,
                "params": _jsonable(params) if params else None}

    def _call(self, method: str, path: str, **kw) -> dict:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TimeoutException:
            raise errors.EngineError(f"the broker at {self.url} did not answer in time",
                                     "Retry; a query that keeps timing out should be narrowed.") from None
        except httpx.HTTPError as exc:
            raise errors.PdbgError(f"cannot reach the broker at {self.url} ({type(exc).__name__})",
                                   "Check the URL and that `pdbg serve` is running.") from None
        if resp.status_code >= 400:
            raise _error_from(resp)
        try:
            return resp.json()
        except ValueError:
            raise errors.PdbgError(f"the broker at {self.url} answered with something other than JSON",
                                   "Check that the URL points at `pdbg serve`, not another service.") from None


def _jsonable(params: dict) -> dict:
    """Parameters in the broker's wire form: JSON scalars, lists, and tagged times.

    Times travel as ``{"timestamp": iso}`` / ``{"date": iso}`` and come back as the
    same Python values on the broker, so the plan and the release-cache key are exactly
    those the embedded session would compute for the same call.
    """
    return {str(k): ([_wire(x) for x in v] if isinstance(v, (list, tuple)) else _wire(v)) for k, v in params.items()}


def _wire(v):
    from datetime import date, datetime

    if isinstance(v, datetime):
        return {"timestamp": v.isoformat(sep=" ")}
    if isinstance(v, date):
        return {"date": v.isoformat()}
    return v          # anything else: the broker validates it (422 names the field)


def _result(d: dict) -> Result:
    from pdbg.session import _df_from_payload

    return Result(sql=d["sql"], df=_df_from_payload(d["table"]), cost=CostView(**d["cost"]), cached=d["cached"],
                  release_id=d["release_id"], epsilon=d["epsilon"], notes=tuple(d["notes"]),
                  budget=BudgetView(**d["budget"]) if d.get("budget") else None)


def _error_class(name: str, status: int) -> type[errors.PdbgError]:
    cls = getattr(errors, name, None)
    if name in _DEEP_ERRORS:
        import importlib

        mod, attr = _DEEP_ERRORS[name]
        cls = getattr(importlib.import_module(mod), attr, None)
    if isinstance(cls, type) and issubclass(cls, errors.PdbgError):
        return cls
    if status in (401, 403, 429):          # 429: too many failed authentications (RateLimited)
        return errors.AccessDenied
    if status == 409:
        return errors.BudgetExceeded
    if status in (503, 504):
        return errors.EngineError
    return errors.PdbgError


def _error_from(resp: httpx.Response) -> errors.PdbgError:
    """The library exception the broker reported, with its message, hint and extra fields."""
    try:
        d = resp.json()
        if not isinstance(d, dict):
            d = {}
    except ValueError:
        d = {}
    cls = _error_class(str(d.get("error", "")), resp.status_code)
    msg = d.get("message") or f"the broker answered HTTP {resp.status_code}"
    hint = d.get("hint")
    if issubclass(cls, errors.QueryRejected):
        return cls(msg, hint, rule=d.get("rule") or "unsupported")
    if issubclass(cls, errors.QueryFailed):
        return cls(msg, hint, rule=d.get("rule") or "internal")
    if issubclass(cls, errors.BudgetExceeded):
        return cls(msg, hint, requested=d.get("requested"), remaining=d.get("remaining"))
    return cls(msg, hint)


class RemoteOversight:
    """The oversight views (`pdbg.governance.oversight.Oversight`) through a broker."""

    def __init__(self, url: str, *, user: str, token: str | None = None, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        # Reuse the session client's transport, auth headers and error mapping; no case needed.
        self._s = RemoteSession(url, user=user, case="-", token=token, timeout=timeout, transport=transport)
        self.url, self.actor = self._s.url, user

    def __repr__(self) -> str:   # never show the token
        return f"RemoteOversight(url={self.url!r}, actor={self.actor!r})"

    def close(self) -> None:
        self._s.close()

    def case(self, case: str) -> dict:
        return self._s._call("GET", f"/v1/oversight/cases/{case}")

    def grants(self, case: str | None = None) -> list[dict]:
        return self._s._call("GET", "/v1/oversight/grants", params={"case": case} if case else None)["grants"]

    def requests(self, pending_only: bool = False) -> list[dict]:
        return self._s._call("GET", "/v1/oversight/requests", params={"pending": pending_only})["requests"]

    def budgets(self, case: str | None = None) -> dict:
        return self._s._call("GET", "/v1/oversight/budgets", params={"case": case} if case else None)

    def reviews(self, open_only: bool = True) -> list[dict]:
        return self._s._call("GET", "/v1/oversight/reviews", params={"open_only": open_only})["reviews"]

    def verify(self) -> dict:
        return self._s._call("GET", "/v1/oversight/verify")

    def privacy_impact(self, case: str) -> dict:
        return self._s._call("GET", f"/v1/oversight/cases/{case}/impact")
