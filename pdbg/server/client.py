"""`pdbg.connect("http://host:port", user=…, case=…, token=…)`: the same interface as the embedded session.

Magics, widgets and notebooks call `.sql`, `.preview`, `.budget`, `.history` and
get the same result types back, so they work unchanged against a broker.
"""

from __future__ import annotations

import os

import httpx

from pdbg import errors
from pdbg.session import BudgetView, CostView, Preview, Result

TOKEN_ENV = "PDBG_TOKEN"


class RemoteSession:
    def __init__(self, url: str, *, user: str, case: str, token: str | None = None,
                 timeout: float = 120.0, transport: httpx.BaseTransport | None = None) -> None:
        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise errors.AccessDenied("a broker session needs a token", f"Pass token=… or set {TOKEN_ENV}.")
        self.url, self.user, self.case = url.rstrip("/"), user, case
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}", "X-Pdbg-User": user})

    def __repr__(self) -> str:   # never show the token
        return f"RemoteSession(url={self.url!r}, user={self.user!r}, case={self.case!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw) -> dict:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise errors.PdbgError(f"cannot reach the broker at {self.url} ({type(exc).__name__})",
                                   "Check the URL and that `pdbg serve` is running.") from None
        if resp.status_code >= 400:
            raise _error_from(resp)
        return resp.json()

    def _body(self, sql: str, epsilon, accuracy, params) -> dict:
        return {"case": self.case, "sql": sql, "epsilon": epsilon, "accuracy": accuracy, "params": params}

    def sql(self, query: str, *, epsilon: float | None = None, accuracy: float | None = None,
            params: dict | None = None) -> Result:
        from pdbg.session import _df_from_payload

        d = self._call("POST", "/v1/query", json=self._body(query, epsilon, accuracy, params))
        return Result(sql=d["sql"], df=_df_from_payload(d["table"]), cost=CostView(**d["cost"]), cached=d["cached"],
                      release_id=d["release_id"], epsilon=d["epsilon"], notes=tuple(d["notes"]),
                      budget=BudgetView(**d["budget"]) if d.get("budget") else None)

    def preview(self, query: str, *, epsilon: float | None = None, accuracy: float | None = None,
                params: dict | None = None) -> Preview:
        d = self._call("POST", "/v1/preview", json=self._body(query, epsilon, accuracy, params))
        return Preview(sql=d["sql"], epsilon=d["epsilon"], cost=CostView(**d["cost"]), accuracy=d["accuracy"],
                       notes=tuple(d["notes"]))

    def budget(self, dataset: str | None = None) -> BudgetView:
        params = {"case": self.case} | ({"dataset": dataset} if dataset else {})
        return BudgetView(**self._call("GET", "/v1/budget", params=params))

    def history(self) -> list[dict]:
        return self._call("GET", "/v1/history", params={"case": self.case})["releases"]

    def templates(self) -> list[dict]:
        return self._call("GET", "/v1/templates")["templates"]


def _error_from(resp: httpx.Response) -> errors.PdbgError:
    try:
        d = resp.json()
    except ValueError:
        d = {}
    name = d.get("error", "PdbgError")
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.PdbgError)):
        cls = errors.AccessDenied if resp.status_code in (401, 403) else errors.PdbgError
    msg = d.get("message", f"the broker answered HTTP {resp.status_code}")
    kwargs = {}
    if cls is errors.QueryRejected:
        kwargs["rule"] = d.get("rule") or "unsupported"
    elif cls is errors.BudgetExceeded:
        kwargs = {"requested": d.get("requested"), "remaining": d.get("remaining")}
    return cls(msg, d.get("hint"), **kwargs)
