"""Argument parsing for `%pdbg` and `%%dpsql`, separate from running anything.

Why separate: parsing is pure and testable without a kernel or a workspace (the
jupysql habit), and a usage mistake must never reach the session, let alone spend
budget. Errors are :class:`MagicUsageError` with a one-line message and a hint.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field

from pdbg.errors import PdbgError


class MagicUsageError(PdbgError):
    """A `%pdbg` / `%%dpsql` line could not be understood; nothing was run."""

    default_hint = "Run `%%dpsql --help` or `%pdbg --help` for the options."


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and calling sys.exit()."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise MagicUsageError(f"{self.prog}: {message}", f"Usage: {self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise MagicUsageError(message or f"{self.prog}: stopped", self.format_usage().strip())


def _split(line: str, prog: str) -> list[str]:
    try:
        return shlex.split(line or "")
    except ValueError as err:
        raise MagicUsageError(f"{prog}: cannot split the options ({err})", "Close every quote.") from None


@dataclass(frozen=True)
class DpsqlArgs:
    """Options of one `%%dpsql` cell."""

    epsilon: float | None = None
    accuracy: float | None = None
    preview: bool = False
    template: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    output: str | None = None
    chart: bool = False


def _dpsql_parser() -> _Parser:
    p = _Parser(prog="%%dpsql", add_help=False, description="Run a differentially private SQL query.")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epsilon", "-e", type=float, help="ε to spend (default: the template's or the policy's)")
    budget.add_argument("--accuracy", "-a", type=float, help="target 95%% CI half-width; pdbg solves for ε")
    p.add_argument("--preview", "-p", action="store_true", help="show cost and expected accuracy; spend nothing")
    p.add_argument("--template", "-t", help="run a reviewed query from the library (see `pdbg queries list`)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="bind $K to V (repeatable)")
    p.add_argument("-o", "--out", dest="output", help="store the result DataFrame in this variable")
    p.add_argument("--chart", action="store_true", help="draw the result with error bars")
    p.add_argument("--help", "-h", action="store_true")
    return p


def dpsql_usage() -> str:
    return _dpsql_parser().format_help()


def parse_dpsql(line: str) -> DpsqlArgs:
    """Parse the `%%dpsql` line. Raises MagicUsageError; ``--help`` raises with the full help as hint."""
    p = _dpsql_parser()
    ns = p.parse_args(_split(line, p.prog))
    if ns.help:
        raise MagicUsageError("%%dpsql options", p.format_help())
    if ns.epsilon is not None and not ns.epsilon > 0:
        raise MagicUsageError("%%dpsql: --epsilon must be positive", "Pass e.g. --epsilon 0.2.")
    if ns.accuracy is not None and not ns.accuracy > 0:
        raise MagicUsageError("%%dpsql: --accuracy must be positive", "Pass the CI half-width, e.g. --accuracy 20.")
    if ns.output is not None and not ns.output.isidentifier():
        raise MagicUsageError("%%dpsql: -o needs a Python variable name", "Pass e.g. -o errors.")
    return DpsqlArgs(
        epsilon=ns.epsilon, accuracy=ns.accuracy, preview=ns.preview, template=ns.template,
        params=parse_params(ns.param), output=ns.output, chart=ns.chart,
    )


def parse_params(items: list[str]) -> dict[str, str]:
    """``["k=v", …]`` → ``{"k": "v"}``; values stay text until a template or the binder types them."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise MagicUsageError(
                "%%dpsql: --param needs the form NAME=VALUE", "Pass e.g. --param service=checkout."
            )
        if key in out:
            raise MagicUsageError(f"%%dpsql: parameter {key!r} given twice", "Pass each parameter once.")
        out[key] = value
    return out


def infer_free_param(value: str):
    """Type a `--param` value for free SQL (no template to say the type): int, float, else text.

    Timestamps stay text; write ``CAST($start AS TIMESTAMP)`` in free SQL or use a template.
    """
    text = value.strip()
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            continue
    return value


@dataclass(frozen=True)
class ConnectArgs:
    target: str
    user: str
    case: str
    token_file: str | None = None      # the token itself never appears in a cell: PDBG_TOKEN or a 0600 file


@dataclass(frozen=True)
class PdbgCommand:
    """A parsed `%pdbg` line: ``verb`` plus verb-specific options."""

    verb: str
    connect: ConnectArgs | None = None
    variable: str | None = None


_VERBS = ("connect", "use", "budget", "history", "templates", "disconnect", "help")


def pdbg_usage() -> str:
    return (
        "%pdbg connect WS|URL --user U --case C [--token-file F]   open a session (token: $PDBG_TOKEN or F)\n"
        "%pdbg use VAR          use an existing session object from a variable\n"
        "%pdbg budget           granted / spent / remaining per grant\n"
        "%pdbg history          this case's releases\n"
        "%pdbg templates        the reviewed query library\n"
        "%pdbg disconnect       forget the current session"
    )


def parse_pdbg(line: str) -> PdbgCommand:
    words = _split(line, "%pdbg")
    if not words or words[0] in ("help", "--help", "-h"):
        return PdbgCommand("help")
    verb, rest = words[0], words[1:]
    if verb not in _VERBS:
        raise MagicUsageError(f"%pdbg: unknown command {verb!r}", "Commands: " + ", ".join(_VERBS) + ".")
    if verb == "connect":
        p = _Parser(prog="%pdbg connect", add_help=False)
        p.add_argument("target")
        p.add_argument("--user", "-u", required=True)
        p.add_argument("--case", "-c", required=True)
        p.add_argument("--token-file", dest="token_file", default=None)
        if any(w == "--token" or w.startswith("--token=") for w in rest):
            raise MagicUsageError("%pdbg connect takes no --token: a token typed in a cell is saved with the notebook",
                                  "Set PDBG_TOKEN in the kernel's environment, or pass --token-file F (mode 0600).")
        ns = p.parse_args(rest)
        return PdbgCommand("connect", connect=ConnectArgs(ns.target, ns.user, ns.case, ns.token_file))
    if verb == "use":
        if len(rest) != 1 or not rest[0].isidentifier():
            raise MagicUsageError("%pdbg use needs one variable name", "e.g. `%pdbg use session`.")
        return PdbgCommand("use", variable=rest[0])
    if rest:
        raise MagicUsageError(f"%pdbg {verb} takes no arguments", pdbg_usage().splitlines()[0])
    return PdbgCommand(verb)
