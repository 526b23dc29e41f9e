"""An independent verifier of the exact SQL text sent to an engine (DESIGN.md invariant 9).

Why a second check: the planner's rules look at the investigator's query; what runs is the
planner's *rendering* of it. A planner bug (a substituted CTE column, a re-rendered clause,
a copied join condition) can put something into the executed text that no rule saw. This
module re-parses that text and checks it against the fixed skeleton every plan has, without
trusting anything the planner decided:

* bounded / quantile SQL: one ``WITH`` of known step names (``__base``, ``__per_unit``, the
  group-cap steps, the quantile steps, and the policy's public tables as ``VALUES``); the
  dataset table is read exactly once, directly in ``FROM`` of ``__base``; every other
  ``SELECT`` is a step body, the root, or a ``UNION ALL`` branch over ``__kept``; no
  ``SELECT`` inside any expression; no aggregate in ``__base``; every function in ``__base``
  allowlisted (the investigator's allowlist plus the planner's own few), every cast in
  ``__base`` guarded by ``TRY`` or applied to a literal or to a policy-bounded clamp; clamp
  constants within the policy's value ceiling; no positional reference, no star but
  ``COUNT(*)`` and the cap step's ``<step>.*``; no parameter but ``$salt``.
* post-processing SQL: one ``SELECT`` over the table ``released`` and nothing else.

A mismatch raises ``QueryRejected(rule="internal-verifier")`` before the text runs: a free,
audited refusal, and a planner bug to report.
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pdbg.policy.model import DatasetPolicy
from pdbg.sql.flatten import PRIVATE_ALIAS
from pdbg.sql.measures import FLOAT_SCALE, value_ceiling
from pdbg.sql.parse import DIALECT
from pdbg.sql.reject import reject
from pdbg.sql.rules.function_allowlist import allowed_function

RULE = "internal-verifier"
STEPS = frozenset({"__base", "__per_unit", "__heavy", "__cut", "__capped", "__lists", "__sorted", "__kept"})
_CAP_SOURCES = frozenset({"__per_unit", "__lists"})
# Functions the planner itself writes after __base (over its own integer columns and lists).
_PLANNER_FUNCS = (exp.ArrayAgg, exp.ArraySort, exp.Avg, exp.Case, exp.Cast, exp.Coalesce, exp.Count, exp.Explode,
                  exp.Floor, exp.GenerateSeries, exp.Greatest, exp.If, exp.Least, exp.Length, exp.Ln, exp.Max,
                  exp.Min, exp.Round, exp.Sum, exp.Transform, exp.Pow, exp.Connector)
# … and inside __base, around the investigator's expressions (clamps, fixed point, unit id).
_BASE_FUNCS = (exp.Case, exp.Cast, exp.Coalesce, exp.Greatest, exp.Least, exp.If, exp.Round, exp.Pow, exp.Connector)
_QUERY_NODES = (exp.Select, exp.Subquery, exp.Exists, exp.Lateral, exp.Unnest, exp.Query)
_KINDS = ("bounded", "quantile", "post")
# Operators that can raise on a value (overflow, integer division by zero): in __base only under TRY,
# or as the planner's fixed-point arithmetic on a clamped value.
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Pow)
# Functions that cannot raise on a value (given literal units/intervals, which bind-time checks):
# anything else in __base must sit under TRY or in the fixed-point conversion.
_UNGUARDED_OK = (exp.Case, exp.If, exp.Coalesce, exp.Least, exp.Greatest, exp.Connector, exp.TimestampTrunc,
                 exp.DateBin, exp.Cast, exp.TryCast, exp.Try)


def _fail(what: str):
    reject(RULE, f"internal check of the executed SQL failed: {what}",
           "Nothing ran and nothing was charged. This is a pdbg bug: report the query to the pdbg maintainers.")


def verify_executed(sql: str, policy: DatasetPolicy, *, kind: str) -> None:
    """Refuse ``sql`` (the exact text about to run) unless it has the skeleton of a ``kind`` plan."""
    if kind not in _KINDS:
        raise ValueError(f"unknown SQL kind {kind!r}")
    _verify_cached(sql, policy.digest, kind, _PolicyRef(policy))


class _PolicyRef:
    """Carries the policy into the cached check without making it part of the cache key (the digest is)."""

    def __init__(self, policy: DatasetPolicy) -> None:
        self.policy = policy

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other) -> bool:
        return isinstance(other, _PolicyRef)


@lru_cache(maxsize=512)
def _verify_cached(sql: str, _digest: str, kind: str, ref: _PolicyRef) -> None:
    # Passing checks are cached (keyed by text and policy digest); failures raise and are not.
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except (SqlglotError, RecursionError, ValueError):
        _fail("it does not parse")
    if len(statements) != 1 or not isinstance(statements[0], exp.Select):
        _fail("it is not exactly one SELECT")
    tree = statements[0]
    _common(tree)
    if kind == "post":
        _verify_post(tree)
    else:
        _verify_plan(tree, ref.policy, kind)


def _common(tree) -> None:
    for node in tree.walk():
        if isinstance(node, exp.PositionalColumn):
            _fail("a positional reference")
        if isinstance(node, exp.Placeholder) and node.name != "salt":
            _fail(f"an unexpected parameter ${node.name}")
        if isinstance(node, exp.Columns):
            _fail("a COLUMNS() expression")
        if isinstance(node, (exp.Window, exp.Command, exp.Into, exp.Insert, exp.Update, exp.Delete, exp.Create,
                             exp.Drop, exp.Copy, exp.Attach, exp.Pragma, exp.Set)):
            _fail(f"a {type(node).__name__} node")


def _verify_post(tree) -> None:
    tables = list(tree.find_all(exp.Table))
    if len(tables) != 1 or tables[0].name != "released" or tables[0].args.get("db"):
        _fail("post-processing may read only the released answer")
    if any(n is not tree for n in tree.find_all(*_QUERY_NODES)) or tree.args.get("with_"):
        _fail("post-processing holds a subquery")
    for node in tree.walk():
        if isinstance(node, exp.Func) and not isinstance(node, exp.AggFunc) and not allowed_function(node):
            _fail(f"post-processing calls {node.sql_name().lower()}()")
        if isinstance(node, exp.AggFunc) and node.find_ancestor(exp.Select) is tree:
            _fail("post-processing aggregates")


def _verify_plan(tree, policy: DatasetPolicy, kind: str) -> None:
    with_ = tree.args.get("with_")
    if with_ is None or with_.args.get("recursive"):
        _fail("no plain WITH of plan steps")
    ctes: dict[str, exp.Expr] = {}
    for cte in with_.expressions:
        name = cte.alias
        if name in ctes or not (name in STEPS or name in policy.public_tables):
            _fail(f"an unknown or repeated step {name!r}")
        ctes[name] = cte.this
    if "__base" not in ctes:
        _fail("no __base step")
    for name, body in ctes.items():
        if name in policy.public_tables:
            _public_step(body, policy, name)
    _selects(tree, ctes, kind)
    _tables(tree, ctes, policy)
    _base(ctes["__base"], policy)
    for name, body in ctes.items():
        if name != "__base" and name not in policy.public_tables:
            _planner_step(body, name)
    _planner_step(tree, "the final step", skip=with_)


def _selects(tree, ctes: dict, kind: str) -> None:
    """Every SELECT is the root, a step body, or (quantile SQL) a UNION ALL branch in the root's FROM."""
    bodies = {id(b) for b in ctes.values()}
    for sel in tree.find_all(exp.Select):
        if sel is tree or id(sel) in bodies:
            continue
        if kind == "quantile" and _union_branch(sel, tree):
            continue
        _fail("a SELECT outside the plan's steps (a subquery)")
    for node in tree.find_all(exp.Subquery, exp.Exists, exp.Lateral, exp.Unnest):
        if isinstance(node, exp.Subquery) and kind == "quantile" and node.parent is not None \
                and isinstance(node.parent, exp.From) and node.parent.parent is tree:
            continue
        _fail(f"a {type(node).__name__} outside the plan's steps")


def _union_branch(sel, tree) -> bool:
    node = sel.parent
    while isinstance(node, exp.Union) and not node.args.get("distinct"):
        node = node.parent
    ok = isinstance(node, exp.Subquery) and isinstance(node.parent, exp.From) and node.parent.parent is tree
    frm = sel.args.get("from_")
    return ok and frm is not None and isinstance(frm.this, exp.Table) and frm.this.name == "__kept" \
        and not sel.args.get("where") and not sel.args.get("joins")


def _tables(tree, ctes: dict, policy: DatasetPolicy) -> None:
    reads = []
    for t in tree.find_all(exp.Table):
        if t.args.get("db") or t.args.get("catalog") or not isinstance(t.this, exp.Identifier):
            _fail("a qualified table or table function")
        if t.name == policy.table and t.name not in ctes:
            reads.append(t)
        elif t.name not in ctes:
            _fail(f"a read of an unknown table {t.name!r}")
    if len(reads) != 1:
        _fail(f"the dataset table is read {len(reads)} times (exactly once expected)")
    t = reads[0]
    base = ctes["__base"]
    frm = base.args.get("from_")
    if frm is None or frm.this is not t or t.alias != PRIVATE_ALIAS:
        _fail("the dataset table is read outside FROM of __base")


def _public_step(body, policy: DatasetPolicy, name: str) -> None:
    if not isinstance(body, exp.Select) or body.args.get("joins") or body.args.get("with_"):
        _fail(f"public table step {name!r} has an unexpected shape")
    frm = body.args.get("from_")
    if frm is not None and not isinstance(frm.this, exp.Values):
        _fail(f"public table step {name!r} reads something other than its rows")
    for node in body.walk():
        if isinstance(node, exp.Column) and node.table:
            _fail(f"public table step {name!r} refers to another table")
        if isinstance(node, exp.Func) and not isinstance(node, exp.Cast):
            _fail(f"public table step {name!r} calls a function")


def _base(base, policy: DatasetPolicy) -> None:
    """The only step over private rows: row-level, allowlisted, unable to fail on a value."""
    ceiling = value_ceiling(policy)
    _measure_clamps(base, ceiling)
    for node in base.walk():
        if isinstance(node, exp.AggFunc) or isinstance(node, exp.Anonymous) and str(node.this).lower() in (
                "list", "min", "max", "first", "any_value"):
            _fail("an aggregate in the base step")
        if isinstance(node, exp.Star):
            _fail("a star in the base step")
        if isinstance(node, exp.Column) and node.table not in (PRIVATE_ALIAS, "") and not node.table.startswith("__p"):
            _fail(f"column of an unknown table {node.table!r} in the base step")
        if isinstance(node, exp.Column) and node.table == PRIVATE_ALIAS and node.name not in policy.kept_columns \
                and not node.name.startswith("_pdbg_"):
            _fail(f"column {node.name!r} is not a stored column of the dataset")
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == "hash":
            continue
        if isinstance(node, exp.Func) and not isinstance(node, _BASE_FUNCS) and not allowed_function(node):
            _fail(f"{node.sql_name().lower()}() is not an allowed function")
        if isinstance(node, (exp.Cast, exp.TryCast)) and not _guarded_cast(node, ceiling):
            _fail("a cast in the base step that could fail on a value")
        if isinstance(node, exp.Func) and not isinstance(node, _UNGUARDED_OK) and not _is_call(node, "hash", "try") \
                and not (_inside_try(node) or _inside_fixed_point(node, ceiling)):
            _fail(f"{node.sql_name().lower()}() in the base step outside TRY (it could fail on a value)")
        if isinstance(node, _ARITHMETIC) and not (_inside_try(node) or _inside_fixed_point(node, ceiling)):
            _fail("arithmetic in the base step that could fail on a value (overflow, division by zero)")



def _measure_clamps(base, ceiling: float) -> None:
    """Measure inputs (``__m<i>``, ``__v<i>``) are clamped by constants within the policy's ceiling."""
    for item in base.expressions:
        if not (isinstance(item, exp.Alias) and item.alias.startswith(("__m", "__v"))):
            continue
        for node in item.find_all(exp.Least):
            if not _outer_clamp(node):
                continue
            for arg in (*node.expressions, *node.this.expressions):
                v = _number(arg)
                if v is None or abs(v) > ceiling:
                    _fail("a clamp constant beyond the policy's value ceiling")


def _outer_clamp(node) -> bool:
    """The planner's clamp of an aggregate input, LEAST(GREATEST(v, lo), hi), not nested in another clamp
    (clamps the investigator wrote inside it may use any constants: the outer one bounds them)."""
    if not (isinstance(node, exp.Least) and isinstance(node.this, exp.Greatest)):
        return False
    anc = node.parent
    while anc is not None:
        if isinstance(anc, (exp.Least, exp.Greatest)):
            return False
        anc = anc.parent
    return True


def _guarded_cast(node, ceiling: float) -> bool:
    if _inside_try(node) or isinstance(node.this, (exp.Literal, exp.Null)):
        return True
    # The planner's fixed-point conversion: CAST(<clamp> AS BIGINT) or CAST(round(<clamp arithmetic>) AS BIGINT),
    # where every constant is within the value ceiling or the fixed-point scale.
    if not node.to.is_type("bigint"):
        return False
    inner = node.this
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Round):
        inner = inner.this
    if inner.find(exp.Least) is None:
        return False
    # the clamp's own constants bound the converted value (its argument's casts are checked on their own)
    limit = max(ceiling, float(FLOAT_SCALE))
    clamps = [n for n in inner.find_all(exp.Least) if _outer_clamp(n)]
    if not clamps:
        return False
    for c in clamps:
        for arg in (*c.expressions, *c.this.expressions):
            v = _number(arg)
            if v is None or abs(v) > limit:
                return False
    return True


def _inside_fixed_point(node, ceiling: float) -> bool:
    """Arithmetic of the planner's fixed-point conversion: inside CAST(… AS BIGINT) of a clamp, and every
    column it reads reaches it through the clamp (or a TRY), so its operands are bounded constants."""
    anc = node.parent
    while anc is not None and not (isinstance(anc, exp.Cast) and _guarded_cast(anc, ceiling)
                                   and not isinstance(anc.this, exp.Literal)):
        anc = anc.parent
    if anc is None:
        return False
    for col in node.find_all(exp.Column):
        up, bounded = col.parent, False
        while up is not None and up is not node:
            if _outer_clamp(up) or isinstance(up, exp.Try) or (
                    isinstance(up, exp.Anonymous) and str(up.this).lower() == "try"):
                bounded = True
                break
            up = up.parent
        if not bounded:
            return False
    return True


def _is_call(node, *names: str) -> bool:
    return isinstance(node, exp.Anonymous) and str(node.this).lower() in names


def _inside_try(node) -> bool:
    anc = node.parent
    while anc is not None:
        if isinstance(anc, exp.Try) or isinstance(anc, exp.Anonymous) and str(anc.this).lower() == "try":
            return True
        anc = anc.parent
    return False


def _planner_step(body, name: str, skip=None) -> None:
    for node in body.walk(prune=lambda n: n is skip):
        if node is skip:
            continue
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == "hash":
            continue
        if isinstance(node, exp.Func) and not isinstance(node, _PLANNER_FUNCS):
            _fail(f"{node.sql_name().lower()}() in {name}")
        if isinstance(node, exp.Star) and not (isinstance(node.parent, exp.Count) or (
                isinstance(node.parent, exp.Column) and node.parent.table in _CAP_SOURCES and name == "__capped")):
            _fail(f"a star in {name}")


def _number(node) -> float | None:
    if isinstance(node, exp.Paren):
        return _number(node.this)
    if isinstance(node, exp.Neg):
        v = _number(node.this)
        return None if v is None else -v
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    return None
