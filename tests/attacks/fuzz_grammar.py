"""Grammar of investigator SQL for the query fuzzer (tests/attacks/test_query_fuzz.py).

Hypothesis strategies that build queries from sqlglot expression nodes and render them with
``.sql(dialect="duckdb")``. A query is an ordinary aggregate over the private table ``t``
(keys, aggregates, optional public-table JOIN, WHERE, GROUP BY, HAVING, ORDER BY, LIMIT,
optionally read through a CTE or a FROM-subquery) into which up to two *hostile pieces* are
planted, each in one clause position. Hostile pieces are what the review of issue 12 used
and what the checks must see through:

* subqueries reading ``t`` (or a planner step such as ``__base``) in every form: scalar
  ``(SELECT …)``, ``ARRAY(SELECT …)``, list comprehensions ``[x FOR x IN (SELECT …)]``,
  ``IN (SELECT …)``, ``EXISTS``, correlated ones, ``LATERAL`` joins;
* DuckDB positional references (``#1``, ``#2``);
* star expressions (``*``, ``t.*``, ``COLUMNS('…')``, ``* EXCLUDE``, ``* REPLACE``);
* nested-type constructors (``[service]``, ``{'a': service}``, ``MAP {…}``, ``ts - TIMESTAMP …``);
* huge literals (1e17, 1e300, 9223372036854775807, -1e308) in sums, averages and CASE branches;
* failing casts (``CAST(message AS INTEGER)``, ``service::INT``);
* expressions over the query's own outputs that fail only on released values
  (``CAST(n AS TINYINT)``, ``service::INT``, ``1 // (n - n)``) in HAVING / ORDER BY;
* window functions over private rows (``SUM(bytes_out) OVER (PARTITION BY user_id)``, ``lag(message) OVER …``).

A hostile CTE or FROM-subquery column ``x`` is then used by the outer query (as a key, as
time_bucket's interval, in an aggregate, WHERE, HAVING or ORDER BY), as in the review.

Positions: select items, group keys, aggregate arguments, FILTER, WHERE, HAVING, ORDER BY,
LIMIT, CTE projections, FROM-subquery projections, JOIN … ON, time_bucket's interval, CASE
branches and casts. About half the queries carry no hostile piece, so a good share is
accepted and the pipeline's answering path is exercised too.

Hostile subqueries never spell out a canary (they probe with prefixes such as
``LIKE 'CANARY%'``): a canary found anywhere in an answer, error or audit record then came
from the data, not from the query text.
"""

from __future__ import annotations

import sqlglot
from hypothesis import strategies as st
from sqlglot import exp

DIALECT = "duckdb"
TABLE = "t"
PUBLIC = "teams"

# The dataset (a superset of attack_support.POLICY: a time column and a public table).
SERVICES = ("a", "b", "c", "d", "e", "f", "g", "h")
TEAMS = {"a": "core", "b": "core", "c": "pay", "d": "pay", "e": "search", "f": "search", "g": "edge", "h": "edge"}
WINDOW = ("2026-01-01 00:00:00", "2026-01-02 00:00:00")
COLUMNS = ("ts", "user_id", "service", "endpoint", "status", "latency_ms", "bytes_out", "skew_ms", "message")
NUMERIC = ("latency_ms", "bytes_out", "skew_ms")


def P(text: str) -> exp.Expression:
    """A small fixed fragment, parsed (used for DuckDB syntax that sqlglot has no builder for)."""
    return sqlglot.parse_one(text, read=DIALECT)


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table)


def lit(v) -> exp.Expression:
    if isinstance(v, str):
        return exp.Literal.string(v)
    if isinstance(v, (int, float)) and v < 0:
        return exp.Neg(this=exp.Literal.number(repr(-v) if isinstance(v, float) else str(-v)))
    return exp.Literal.number(repr(v) if isinstance(v, float) else str(v))


def num(text: str) -> exp.Expression:
    return exp.Neg(this=exp.Literal.number(text[1:])) if text.startswith("-") else exp.Literal.number(text)


def ts_lit(text: str) -> exp.Expression:
    return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))


def interval(text: str) -> exp.Expression:
    n, unit = text.split()
    return exp.Interval(this=exp.Literal.string(n), unit=exp.var(unit.upper()))


# ---------------------------------------------------------------------------
# ordinary (valid) pieces

def valid_bool() -> st.SearchStrategy[exp.Expression]:
    return st.one_of(
        st.sampled_from((400, 500)).map(lambda v: exp.GTE(this=col("status"), expression=lit(v))),
        st.sampled_from(SERVICES[:4]).map(lambda s: exp.EQ(this=col("service"), expression=lit(s))),
        st.sampled_from((50, 500)).map(lambda v: exp.GT(this=col("latency_ms"), expression=lit(v))),
        st.just(exp.and_(exp.GTE(this=col("ts"), expression=ts_lit(WINDOW[0])),
                         exp.LT(this=col("ts"), expression=ts_lit(WINDOW[1])))),
        st.just(exp.Like(this=col("message"), expression=lit("%timeout%"))),
        st.just(exp.In(this=col("service"), expressions=[lit("a"), lit("b")])),
    )


def valid_value() -> st.SearchStrategy[exp.Expression]:
    return st.one_of(
        st.sampled_from(NUMERIC).map(col),
        st.just(exp.Case(ifs=[exp.If(this=exp.GTE(this=col("status"), expression=lit(500)), true=lit(1))],
                         default=lit(0))),
        st.just(exp.Mul(this=col("bytes_out"), expression=lit(2))),
        st.just(exp.Div(this=col("latency_ms"), expression=lit(1000.0))),
    )


BUCKET = exp.Anonymous(this="time_bucket", expressions=[interval("1 hour"), col("ts")])
KEYS = {
    "service": col("service"),
    "endpoint": col("endpoint"),
    "status": col("status"),
    "bucket": BUCKET,
    "minute": exp.Anonymous(this="date_trunc", expressions=[lit("minute"), col("ts")]),
    "band": exp.Case(ifs=[exp.If(this=exp.LT(this=col("latency_ms"), expression=lit(100)), true=lit("fast"))],
                     default=lit("slow")),
}

AGGS = {
    "n": lambda: exp.Count(this=exp.Star()),
    "users": lambda: exp.Count(this=exp.Distinct(expressions=[col("user_id")])),
    "bytes": lambda: exp.Sum(this=col("bytes_out")),
    "lat": lambda: exp.Avg(this=col("latency_ms")),
    "errs": lambda: exp.Sum(this=exp.Case(ifs=[exp.If(this=exp.GTE(this=col("status"), expression=lit(500)),
                                                       true=lit(1))], default=lit(0))),
    "p50": lambda: exp.Anonymous(this="quantile_cont", expressions=[col("latency_ms"), lit(0.5)]),
    "e5": lambda: exp.Filter(this=exp.Count(this=exp.Star()),
                             expression=exp.Where(this=exp.GTE(this=col("status"), expression=lit(500)))),
}


# ---------------------------------------------------------------------------
# hostile pieces

HUGE = ("1e17", "1e300", "9223372036854775807", "-1e308", "1.7976931348623157e308", "170141183460469231731687303715884105727")


def _inner_source() -> st.SearchStrategy[str]:
    # The private table; sometimes a planner step name (the plan's own CTEs must not be reachable).
    return st.sampled_from((TABLE, TABLE, TABLE, "__base", "__per_unit"))


@st.composite
def private_select(draw, *, scalar: bool = True) -> exp.Select:
    """SELECT <raw column or aggregate> FROM t [AS t2] [WHERE probe | correlation] [LIMIT 1]."""
    src = draw(_inner_source())
    alias = draw(st.sampled_from((None, "t2")))
    c = draw(st.sampled_from(("message", "endpoint", "user_id", "bytes_out", "latency_ms", "ts", "skew_ms")))
    colref = col(c, table=alias)
    proj = draw(st.sampled_from(("raw", "raw", "max", "count", "sum", "list", "positional")))
    if proj == "positional":   # the review's ORDER BY ARRAY(SELECT #2 FROM …)
        item = exp.PositionalColumn(this=exp.Literal.number(draw(st.sampled_from((1, 2, 8)))))
    elif proj == "max":
        item = exp.Max(this=colref)
    elif proj == "count":
        item = exp.Count(this=exp.Star())
    elif proj == "sum":
        item = exp.Sum(this=col("bytes_out", table=alias))
    elif proj == "list":
        item = exp.Anonymous(this="list", expressions=[colref])
    else:
        item = colref
    sel = exp.select(item).from_(exp.to_table(src).as_(alias) if alias else exp.to_table(src))
    where = draw(st.sampled_from(("none", "probe", "correlated", "canary_num")))
    if where == "probe":
        sel = sel.where(exp.Like(this=col(draw(st.sampled_from(("message", "endpoint"))), table=alias),
                                 expression=lit("CANARY%")))
    elif where == "correlated" and alias:
        sel = sel.where(exp.EQ(this=col("user_id", table=alias), expression=col("user_id", table=TABLE)))
    elif where == "canary_num":
        sel = sel.where(exp.GT(this=col("bytes_out", table=alias), expression=lit(100000)))
    if scalar and proj == "raw" and draw(st.booleans()):
        sel = sel.limit(1)
    return sel


@st.composite
def subquery_piece(draw) -> tuple[str, exp.Expression]:
    """(kind, node) of a subquery of some form; kind 'bool' or 'value'."""
    form = draw(st.sampled_from(("scalar", "array", "listcomp", "in", "exists", "not_exists", "array_agg_index")))
    sel = draw(private_select(scalar=form == "scalar"))
    if form == "scalar":
        return "value", exp.Subquery(this=sel)
    if form == "array":
        return "value", exp.Array(expressions=[sel])
    if form == "listcomp":
        return "value", P(f"[x FOR x IN ({sel.sql(dialect=DIALECT)})]")
    if form == "array_agg_index":
        return "value", exp.Bracket(this=exp.Array(expressions=[sel]), expressions=[lit(0)])   # renders [1]
    if form == "in":
        c = draw(st.sampled_from(("service", "endpoint", "user_id")))
        return "bool", exp.In(this=col(c), query=exp.Subquery(this=sel))
    e = exp.Exists(this=sel)
    return "bool", e if form == "exists" else exp.Not(this=e)


def positional_piece() -> st.SearchStrategy[tuple[str, exp.Expression]]:
    return st.sampled_from((1, 2, 3)).map(lambda i: ("value", exp.PositionalColumn(this=exp.Literal.number(i))))


def nested_piece() -> st.SearchStrategy[tuple[str, exp.Expression]]:
    return st.sampled_from((
        ("value", exp.Array(expressions=[col("service")])),
        ("value", exp.Array(expressions=[col("message")])),
        ("value", exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier("a"), expression=col("service"))])),
        ("value", P("{'a': message}")),
        ("value", P("MAP {'k': service}")),
        ("value", P("MAP {'k': endpoint}")),
        ("value", exp.Sub(this=col("ts"), expression=ts_lit("2026-01-01"))),
        ("value", exp.Anonymous(this="struct_pack", expressions=[col("message")])),
    ))


def huge_piece() -> st.SearchStrategy[tuple[str, exp.Expression]]:
    return st.one_of(
        st.sampled_from(HUGE).map(lambda h: ("value", num(h))),
        st.sampled_from(HUGE).map(lambda h: ("value", exp.Case(
            ifs=[exp.If(this=exp.Like(this=col("endpoint"), expression=lit("CANARY%")), true=num(h))],
            default=lit(0)))),
        st.sampled_from(HUGE).map(lambda h: ("value", exp.Mul(this=col("bytes_out"), expression=num(h)))),
    )


def cast_piece() -> st.SearchStrategy[tuple[str, exp.Expression]]:
    return st.sampled_from((
        ("value", exp.cast(col("message"), "INTEGER")),
        ("value", exp.cast(col("service"), "INT")),
        ("value", exp.cast(col("endpoint"), "DOUBLE")),
        ("value", exp.cast(col("message"), "TIMESTAMP")),
        ("value", exp.cast(col("bytes_out"), "TINYINT")),
        ("value", exp.cast(col("user_id"), "BIGINT")),
        ("value", exp.IntDiv(this=lit(1), expression=exp.Paren(this=exp.Sub(this=col("bytes_out"), expression=lit(999))))),
    ))


def star_piece() -> st.SearchStrategy[tuple[str, exp.Expression]]:
    # Only meaningful as select items / projections; elsewhere they are wrapped into a function call.
    return st.sampled_from((
        ("star", exp.Star()),
        ("star", exp.Column(this=exp.Star(), table=exp.to_identifier(TABLE))),
        ("star", exp.Columns(this=lit("mess.*"))),
        ("star", exp.Columns(this=lit(".*"))),
        ("star", P("* EXCLUDE (ts)")),
        ("star", P("* REPLACE (message AS service)")),
        ("star", P("* EXCLUDE (service, endpoint, status)")),
    ))


def window_piece() -> st.SearchStrategy[tuple[str, exp.Expression]]:
    return st.sampled_from((
        ("value", P("SUM(bytes_out) OVER (PARTITION BY user_id)")),
        ("value", P("row_number() OVER (ORDER BY ts)")),
        ("value", P("lag(message) OVER (ORDER BY bytes_out DESC)")),
        ("value", P("COUNT(*) OVER (PARTITION BY endpoint)")),
        ("value", P("first_value(endpoint) OVER (ORDER BY bytes_out DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")),
    ))


OUT = "__out__"   # replaced by one of the query's output names once they are known


def output_piece() -> st.SearchStrategy[tuple[str, exp.Expression]]:
    """Expressions over the query's own outputs that fail only on the released values (post-processing)."""
    o = lambda: exp.column(OUT)  # noqa: E731
    return st.sampled_from((
        ("value", exp.cast(o(), "TINYINT")),
        ("value", exp.cast(o(), "INTEGER")),
        ("value", exp.cast(o(), "DATE")),
        ("value", exp.cast(exp.cast(o(), "VARCHAR"), "INTEGER")),
        ("value", exp.Mul(this=o(), expression=lit(9223372036854775807))),
        ("value", exp.Ln(this=exp.Sub(this=o(), expression=lit(1e9)))),
        ("value", exp.IntDiv(this=lit(1), expression=exp.Paren(this=exp.Sub(this=o(), expression=o())))),
        ("value", exp.Array(expressions=[o()])),
        ("value", exp.Anonymous(this="error", expressions=[exp.cast(o(), "VARCHAR")])),
    ))


FAMILIES = {
    "output": output_piece,
    "window": window_piece,
    "subquery": subquery_piece,
    "positional": positional_piece,
    "star": star_piece,
    "nested": nested_piece,
    "huge": huge_piece,
    "cast": cast_piece,
}


@st.composite
def hostile_piece(draw, post: bool = False) -> tuple[str, str, exp.Expression]:
    """(family, kind, node); the family first, uniformly (subqueries twice as often; in HAVING and
    ORDER BY, half of the pieces are over the outputs, so failures after data access are common)."""
    if post and draw(st.booleans()):
        fam = "output"
    else:
        fam = draw(st.sampled_from(("subquery", "subquery", "positional", "star", "nested", "huge", "cast",
                                    "window", "output")))
    kind, node = draw(FAMILIES[fam]())
    return fam, kind, node


def as_value(kind: str, node: exp.Expression) -> exp.Expression:
    node = node.copy()
    if kind == "bool":
        return exp.Case(ifs=[exp.If(this=node, true=lit(1))], default=lit(0))
    if kind == "star":
        return exp.Anonymous(this="hash", expressions=[node])
    return node


def as_bool(kind: str, node: exp.Expression, how: int = 0) -> exp.Expression:
    node = node.copy()
    if kind == "bool":
        return node
    if kind == "star":
        return exp.Not(this=exp.Is(this=exp.Anonymous(this="hash", expressions=[node]), expression=exp.Null()))
    return (exp.Not(this=exp.Is(this=node, expression=exp.Null())),
            exp.GT(this=node, expression=lit(0)),
            exp.EQ(this=exp.Anonymous(this="length", expressions=[exp.cast(node, "VARCHAR")]), expression=lit(17)))[how % 3]


# ---------------------------------------------------------------------------
# the query

POSITIONS = ("select", "key", "agg_arg", "filter", "where", "having", "order", "limit", "cte", "from_sub", "join_on",
             "bucket_interval", "case_when", "case_then", "cast", "lateral", "group_by_only")


@st.composite
def queries(draw) -> tuple[str, dict]:
    """(sql, info) — info names the shape and the planted (position, family) pairs for reporting."""
    n_hostile = draw(st.sampled_from((0, 0, 0, 1, 1, 1, 2)))
    positions = draw(st.lists(st.sampled_from(POSITIONS), min_size=n_hostile, max_size=n_hostile, unique=True))
    plants = [(p, draw(hostile_piece(post=p in ("having", "order")))) for p in positions]
    where_at = {p: (f, k, node) for p, (f, k, node) in plants}
    wrap = draw(st.sampled_from(("plain", "plain", "plain", "cte", "from_sub")))
    if "cte" in where_at:
        wrap = "cte"
    if "from_sub" in where_at:
        wrap = "from_sub"
    join = draw(st.sampled_from((False, False, True))) or "join_on" in where_at
    qual = TABLE if wrap == "plain" else ("c" if wrap == "cte" else "s")
    # A hostile CTE / FROM-subquery column x is used by the outer query somewhere (the review's
    # breach: a scalar subquery in a CTE column, used as time_bucket's interval, ran unguarded).
    wrap_plant = where_at.pop(wrap, None) if wrap != "plain" else None
    x_use = None
    if wrap_plant is not None and wrap_plant[1] != "star":
        x_use = draw(st.sampled_from(("key", "bucket", "agg", "where", "having", "order", "none")))
        if x_use in where_at:   # the slot is taken by another plant
            x_use = "none"
        x = exp.column("x")
        if x_use == "key":
            where_at["key"] = ("wrap", "value", x)
        elif x_use == "bucket":
            where_at["bucket_interval"] = ("wrap", "value", x)
        elif x_use == "agg":
            where_at["agg_arg"] = ("wrap", "value", x)
        elif x_use in ("where", "having"):
            where_at[x_use] = ("wrap", "bool", exp.Not(this=exp.Is(this=x, expression=exp.Null())))
        elif x_use == "order":
            where_at["order"] = ("wrap", "value", x)

    key_names = draw(st.lists(st.sampled_from(sorted(KEYS)), max_size=2, unique=True))
    if join and draw(st.booleans()):
        key_names.append("team")
    agg_names = draw(st.lists(st.sampled_from(sorted(AGGS)), min_size=1, max_size=2, unique=True))

    items: list[exp.Expression] = []
    group: list[exp.Expression] = []
    for k in key_names:
        node = col("team", table=PUBLIC) if k == "team" else KEYS[k].copy()
        if k == "bucket" and "bucket_interval" in where_at:
            f, kind, h = where_at.pop("bucket_interval")
            node = exp.Anonymous(this="time_bucket", expressions=[as_value(kind, h), col("ts")])
        items.append(exp.alias_(node, k))
        group.append(exp.column(k) if draw(st.booleans()) else node.copy())
    if "bucket_interval" in where_at:
        f, kind, h = where_at.pop("bucket_interval")
        node = exp.Anonymous(this="time_bucket", expressions=[as_value(kind, h), col("ts")])
        items.append(exp.alias_(node, "hb"))
        group.append(exp.column("hb"))
    if "key" in where_at:
        f, kind, h = where_at.pop("key")
        items.append(exp.alias_(as_value(kind, h), "hk"))
        group.append(exp.column("hk"))
    if "group_by_only" in where_at:
        f, kind, h = where_at.pop("group_by_only")
        group.append(as_value(kind, h) if kind != "star" else h.copy())

    for a in agg_names:
        node = AGGS[a]()
        if "agg_arg" in where_at and isinstance(node, (exp.Sum, exp.Avg, exp.Count)) and not isinstance(
                node.this, exp.Star):
            f, kind, h = where_at.pop("agg_arg")
            node = node.__class__(this=as_value(kind, h))
        elif "case_then" in where_at and a == "errs":
            f, kind, h = where_at.pop("case_then")
            node = exp.Sum(this=exp.Case(ifs=[exp.If(this=exp.GTE(this=col("status"), expression=lit(500)),
                                                     true=as_value(kind, h))], default=lit(0)))
        elif "case_when" in where_at and a == "errs":
            f, kind, h = where_at.pop("case_when")
            node = exp.Sum(this=exp.Case(ifs=[exp.If(this=as_bool(kind, h), true=lit(1))], default=lit(0)))
        elif "filter" in where_at:
            f, kind, h = where_at.pop("filter")
            node = exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=as_bool(kind, h)))
        items.append(exp.alias_(node, a))
    # Positions that found no slot above fall back to a dedicated aggregate.
    for pos in ("agg_arg", "case_then", "case_when", "filter"):
        if pos in where_at:
            f, kind, h = where_at.pop(pos)
            if pos == "filter":
                node = exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=as_bool(kind, h)))
            elif pos == "agg_arg":
                node = exp.Sum(this=as_value(kind, h))
            elif pos == "case_then":
                node = exp.Avg(this=exp.Case(ifs=[exp.If(this=exp.GT(this=col("latency_ms"), expression=lit(10)),
                                                         true=as_value(kind, h))], default=lit(0)))
            else:
                node = exp.Sum(this=exp.Case(ifs=[exp.If(this=as_bool(kind, h), true=lit(1))], default=lit(0)))
            items.append(exp.alias_(node, "h_" + pos))
    if "cast" in where_at:
        f, kind, h = where_at.pop("cast")
        target = draw(st.sampled_from(("INTEGER", "BIGINT", "VARCHAR", "DOUBLE")))
        items.append(exp.alias_(exp.Sum(this=exp.cast(as_value(kind, h), target)), "h_cast"))
    for pos, alias in (("select", "hs"), ("cte" if wrap == "from_sub" else "from_sub", "hx")):
        if pos in where_at and (pos == "select" or wrap != "plain"):
            f, kind, h = where_at.pop(pos)   # (a CTE/sub projection that lost to the other wrap: a select item)
            items.append(h.copy() if kind == "star" else exp.alias_(as_value(kind, h), alias))

    q = exp.select(*items)
    if wrap == "plain":
        q = q.from_(TABLE)
    else:
        proj: list[exp.Expression] = [col(c) for c in COLUMNS]
        if wrap_plant is not None:
            f, kind, h = wrap_plant
            proj.append(h.copy() if kind == "star" else exp.alias_(as_value(kind, h), "x"))
        elif draw(st.booleans()):
            proj = [exp.Star()]
        inner = exp.select(*proj).from_(TABLE)
        if draw(st.booleans()):
            inner = inner.where(draw(valid_bool()))
        if wrap == "cte":
            q = q.from_("c").with_("c", as_=inner)
        else:
            q = q.from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("s"))))
    if join:
        on = exp.EQ(this=col("service", table=qual), expression=col("service", table=PUBLIC))
        if "join_on" in where_at:
            f, kind, h = where_at.pop("join_on")
            on = exp.and_(on, as_bool(kind, h, draw(st.integers(0, 2))))
        q = q.join(exp.to_table(PUBLIC), on=on)
    if "lateral" in where_at:
        where_at.pop("lateral")   # a LATERAL join reads the private table by itself
        sel = draw(private_select())
        q = q.join(exp.Lateral(this=exp.Subquery(this=sel), alias=exp.TableAlias(this=exp.to_identifier("l"))))
    conds = []
    if draw(st.booleans()):
        conds.append(draw(valid_bool()))
    if "where" in where_at:
        f, kind, h = where_at.pop("where")
        conds.append(as_bool(kind, h, draw(st.integers(0, 2))))
    if conds:
        q = q.where(exp.and_(*conds) if len(conds) > 1 else conds[0])
    if group:
        q = q.group_by(*group)
    agg0 = agg_names[0]
    if "having" in where_at:
        f, kind, h = where_at.pop("having")
        q = q.having(as_bool(kind, h, draw(st.integers(0, 2))))
    elif draw(st.sampled_from((False, False, True))):
        q = q.having(exp.GT(this=exp.column(agg0), expression=lit(draw(st.sampled_from((0, 5, 100))))))
    if "order" in where_at:
        f, kind, h = where_at.pop("order")
        q = q.order_by(exp.Ordered(this=as_value(kind, h), desc=draw(st.booleans())))
    elif draw(st.booleans()):
        q = q.order_by(exp.Ordered(this=exp.column(agg0), desc=True))
    if "limit" in where_at:
        f, kind, h = where_at.pop("limit")
        q = q.limit(as_value(kind, h))
    elif draw(st.booleans()):
        q = q.limit(draw(st.sampled_from((1, 5, 10))))
    assert not where_at, where_at
    outputs = [e.alias for e in items if e.alias]
    q = q.transform(lambda n: exp.column(draw(st.sampled_from(outputs))) if isinstance(n, exp.Column)
                    and n.name == OUT and not n.table else n)
    info = {"wrap": wrap, "join": bool(join), "x_use": x_use, "plants": sorted((p, f) for p, (f, _, _) in plants)}
    return q.sql(dialect=DIALECT), info
