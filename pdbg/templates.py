"""The reviewed query library: ``queries/*.sql`` templates with a typed header.

Why a library: an investigator under pressure should reach for a query a privacy
reviewer already read, with parameters that are *bound* (as typed literals, by
``pdbg.sql.plan_query(..., params=...)``) and never pasted into SQL text. This module
is pure text (no sqlglot): it reads the header, validates parameter values and
hands ``(sql, params)`` to the session. Whether the SQL is DP-valid is decided by
``pdbg.sql`` (see ``pdbg queries lint WS``).

A template file looks like this; the header is the leading block of ``--`` lines::

    -- name: errors_by_service
    -- title: 5xx by service
    -- description: Server errors per service inside a time window.
    -- dataset: requests
    -- epsilon: 0.2
    -- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
    -- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
    -- reviewed: privacy-office 2026-11-28
    SELECT service, COUNT(*) AS errors FROM requests
    WHERE status >= 500 AND ts >= $start AND ts < $end GROUP BY service

Parameter types: ``integer``, ``float``, ``string``, ``timestamp``, ``boolean`` and
``choice(a, b, c)``. A parameter without ``= default`` is required.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from pdbg.errors import QueryRejected

#: Environment variable naming extra template directories (os.pathsep-separated).
QUERIES_ENV = "PDBG_QUERIES"

_KEYS = {"name", "title", "description", "dataset", "epsilon", "reviewed", "notes", "chart"}
_TYPES = {"integer", "float", "string", "timestamp", "boolean"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PARAM = re.compile(
    r"^param\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*:\s*(?P<type>choice\([^)]*\)|[a-z]+)"
    r"\s*(?:=\s*(?P<default>[^|]*?))?\s*(?:\|\s*(?P<desc>.*))?$"
)
_PLACEHOLDER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_MAX_STRING = 200


def _reject(message: str, hint: str, rule: str) -> QueryRejected:
    return QueryRejected(message, hint, rule=rule)


@dataclass(frozen=True)
class Param:
    """One typed template parameter. ``choices`` is set for ``choice(...)`` types."""

    name: str
    type: str
    default: Any = None
    required: bool = False
    description: str = ""
    choices: tuple[str, ...] = ()

    def coerce(self, value: Any) -> Any:
        """Turn a user value (often a string from a form or ``--param k=v``) into its typed value.

        Errors name the parameter and the expected type, never echo the value (it may
        be something sensitive the user pasted by mistake).
        """
        bad = _reject(
            f"parameter {self.name!r} must be {self._expected()}",
            f"Pass a valid {self.type} for {self.name}, e.g. its default: {self.default_text()}.",
            "template_parameter",
        )
        try:
            if self.type == "integer":
                if isinstance(value, bool):
                    raise bad
                if isinstance(value, float) and not value.is_integer():
                    raise bad
                return int(str(value).strip()) if isinstance(value, str) else int(value)
            if self.type == "float":
                if isinstance(value, bool):
                    raise bad
                out = float(value)
                if out != out or out in (float("inf"), float("-inf")):
                    raise bad
                return out
            if self.type == "boolean":
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("true", "1", "yes", "on"):
                    return True
                if text in ("false", "0", "no", "off"):
                    return False
                raise bad
            if self.type == "timestamp":
                if isinstance(value, datetime):
                    return value.replace(tzinfo=None) if value.tzinfo is None else value
                text = str(value).strip().replace("Z", "+00:00")
                return datetime.fromisoformat(text)
            if self.type == "choice":
                text = str(value).strip()
                if text not in self.choices:
                    raise bad
                return text
            text = str(value)
            if len(text) > _MAX_STRING or "\x00" in text:
                raise bad
            return text
        except QueryRejected:
            raise
        except (TypeError, ValueError):
            raise bad from None

    def _expected(self) -> str:
        if self.type == "choice":
            return "one of " + ", ".join(self.choices)
        return {"timestamp": "an ISO timestamp (YYYY-MM-DD HH:MM:SS)", "integer": "an integer",
                "float": "a number", "boolean": "true or false"}.get(self.type, f"a string of at most {_MAX_STRING} characters")

    def default_text(self) -> str:
        """The default as a user would type it (for forms and ``queries list``)."""
        if self.default is None:
            return ""
        if isinstance(self.default, datetime):
            return self.default.isoformat(sep=" ")
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)


@dataclass(frozen=True)
class Template:
    """A reviewed query: header metadata, typed parameters and SQL with ``$name`` placeholders."""

    name: str
    title: str
    description: str
    dataset: str
    epsilon: float
    sql: str
    params: tuple[Param, ...] = ()
    reviewed: str = ""
    notes: str = ""
    chart: str = ""
    path: Path | None = field(default=None, compare=False)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Parameter names used in the SQL, in order of first use."""
        seen: dict[str, None] = {}
        for m in _PLACEHOLDER.finditer(_strip_sql_comments_and_strings(self.sql)):
            seen.setdefault(m.group(1), None)
        return tuple(seen)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise _reject(
            f"template {self.name!r} has no parameter {name!r}",
            "Parameters: " + (", ".join(p.name for p in self.params) or "none") + ".",
            "template_parameter",
        )

    def bind(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validated, typed parameter values (defaults filled in) to pass as ``params=``."""
        values = dict(values or {})
        for name in values:
            self.param(name)                      # unknown name -> QueryRejected
        out: dict[str, Any] = {}
        for p in self.params:
            if p.name in values and values[p.name] not in (None, ""):
                out[p.name] = p.coerce(values[p.name])
            elif p.required:
                raise _reject(
                    f"template {self.name!r} needs parameter {p.name!r}",
                    f"Pass it with --param {p.name}=… ({p._expected()}).",
                    "template_parameter",
                )
            else:
                out[p.name] = p.default
        return out

    def problems(self) -> list[str]:
        """Header/body consistency problems (pure text); empty when the template is well formed."""
        out = []
        declared = {p.name for p in self.params}
        used = set(self.placeholders)
        for name in sorted(used - declared):
            out.append(f"${name} is used in the SQL but not declared as a parameter")
        for name in sorted(declared - used):
            out.append(f"parameter {name} is declared but not used in the SQL")
        if self.path is not None and self.path.stem != self.name:
            out.append(f"name {self.name!r} does not match the file name {self.path.name!r}")
        if not self.sql.strip():
            out.append("the template has no SQL")
        if ";" in _strip_sql_comments_and_strings(self.sql).rstrip().rstrip(";"):
            out.append("a template holds exactly one statement")
        return out


def _strip_sql_comments_and_strings(sql: str) -> str:
    """SQL with comments removed and string literals blanked (so `'$x'` is not a placeholder)."""
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def _parse_default(ptype: str, raw: str | None, choices: tuple[str, ...], name: str, source: str) -> Any:
    if raw is None or raw == "":
        return None
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        raw = raw[1:-1]
    probe = Param(name=name, type=ptype, choices=choices)
    try:
        return probe.coerce(raw)
    except QueryRejected:
        raise _reject(
            f"{source}: default of parameter {name!r} is not {probe._expected()}",
            "Fix the `-- param` line in the template header.",
            "template_header",
        ) from None


def parse_template(text: str, source: str = "<memory>", path: Path | None = None) -> Template:
    """Parse one template file. Header errors name the file and line and say how to fix them."""
    header: dict[str, str] = {}
    params: list[Param] = []
    lines = text.splitlines()
    i = 0
    for i, line in enumerate(lines):           # noqa: B007 - i is used after the loop
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        body = stripped[2:].strip()
        if not body:
            continue
        where = f"{source}:{i + 1}"
        if body.startswith("param ") or body.startswith("param\t"):
            m = _PARAM.match(body)
            if not m:
                raise _reject(
                    f"{where}: cannot read the parameter line",
                    "Write `-- param NAME: TYPE [= DEFAULT] [| description]`.",
                    "template_header",
                )
            ptype, choices = m["type"], ()
            if ptype.startswith("choice("):
                choices = tuple(c.strip().strip("'\"") for c in ptype[7:-1].split(",") if c.strip())
                if not choices:
                    raise _reject(f"{where}: choice() needs at least one value", "List the allowed values.", "template_header")
                ptype = "choice"
            elif ptype not in _TYPES:
                raise _reject(
                    f"{where}: unknown parameter type {ptype!r}",
                    "Use integer, float, string, timestamp, boolean or choice(a, b).",
                    "template_header",
                )
            if any(p.name == m["name"] for p in params):
                raise _reject(f"{where}: parameter {m['name']!r} is declared twice", "Remove one.", "template_header")
            default = _parse_default(ptype, m["default"], choices, m["name"], where)
            params.append(Param(m["name"], ptype, default, default is None, (m["desc"] or "").strip(), choices))
            continue
        key, sep, value = body.partition(":")
        key = key.strip().lower()
        if not sep or key not in _KEYS:
            raise _reject(
                f"{where}: unknown header line",
                "Header keys: " + ", ".join(sorted(_KEYS)) + ", and `param NAME: TYPE`.",
                "template_header",
            )
        header[key] = (header[key] + " " + value.strip()) if key in header and key in ("description", "notes") else value.strip()
    else:
        i = len(lines)
    sql = "\n".join(lines[i:]).strip()
    missing = [k for k in ("name", "description", "dataset", "epsilon") if not header.get(k)]
    if missing:
        raise _reject(f"{source}: header is missing {', '.join(missing)}", "Add `-- KEY: value` lines.", "template_header")
    if not _NAME.match(header["name"]):
        raise _reject(f"{source}: name must be lower_snake_case", "Rename the template.", "template_header")
    try:
        eps = float(header["epsilon"])
        if not eps > 0:
            raise ValueError
    except ValueError:
        raise _reject(f"{source}: epsilon must be a positive number", "Write e.g. `-- epsilon: 0.2`.", "template_header") from None
    return Template(
        name=header["name"], title=header.get("title") or header["name"].replace("_", " "),
        description=header["description"], dataset=header["dataset"], epsilon=eps, sql=sql,
        params=tuple(params), reviewed=header.get("reviewed", ""), notes=header.get("notes", ""),
        chart=header.get("chart", ""), path=path,
    )


def default_dirs(workspace: str | os.PathLike | None = None) -> list[Path]:
    """Where templates are looked up, first match wins for a name.

    ``$PDBG_QUERIES`` (site-specific reviewed queries), then ``WS/queries`` (a
    workspace's own library), then the library shipped beside the package.
    """
    dirs: list[Path] = []
    for part in filter(None, os.environ.get(QUERIES_ENV, "").split(os.pathsep)):
        dirs.append(Path(part))
    if workspace is not None:
        dirs.append(Path(workspace) / "queries")
    dirs.append(Path(__file__).resolve().parent.parent / "queries")
    return dirs


def load_library(dirs: Iterable[str | os.PathLike] | None = None, *, workspace=None) -> dict[str, Template]:
    """All templates by name (sorted). A broken file raises: a library is reviewed as a whole."""
    found: dict[str, Template] = {}
    for d in (dirs if dirs is not None else default_dirs(workspace)):
        d = Path(d)
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.sql")):
            t = parse_template(f.read_text(encoding="utf-8"), source=f.name, path=f)
            found.setdefault(t.name, t)
    return dict(sorted(found.items()))


def get_template(name: str, library: Mapping[str, Template] | None = None) -> Template:
    library = load_library() if library is None else library
    try:
        return library[name]
    except KeyError:
        close = [n for n in library if name.split("_")[0] in n][:3]
        hint = f"Did you mean {', '.join(close)}?" if close else "List them with `pdbg queries list`."
        raise _reject(f"no query template named {name!r}", hint, "template_unknown") from None


__all__ = ["Param", "Template", "parse_template", "load_library", "get_template", "default_dirs", "QUERIES_ENV"]
