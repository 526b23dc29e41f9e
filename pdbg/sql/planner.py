"""``plan_query``: investigator SQL → checked, bounded :class:`~pdbg.sql.plan.Plan`. Pure: never touches data.

Pipeline: parse → statement rules → bind parameters → flatten (tables, CTEs, columns) →
shape rules → keys → measures/quantiles → HAVING/ORDER BY/LIMIT as post-processing →
bounded SQL. Every refusal is a ``QueryRejected`` with a stable ``rule``.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from pdbg.policy.model import DatasetPolicy
from pdbg.sql import params as params_mod
from pdbg.sql.aggs import is_aggregate, name_of, unwrap
from pdbg.sql.context import Ctx
from pdbg.sql.flatten import OUT_ALIAS, PRIVATE_ALIAS, flatten
from pdbg.sql.keys import KeyInfo, classify
from pdbg.sql.measures import Builder
from pdbg.sql.parse import DIALECT, parse_statements, render
from pdbg.sql.plan import KeySpec, OutputSpec, Plan
from pdbg.sql.reject import reject
from pdbg.sql.rewrite import bounded_sql, ident, needs_cap, quantile_sql, unit_sql
from pdbg.sql.rules import SHAPE_RULES, STATEMENT_RULES


def _default_name(e) -> str:
    agg, _, order = unwrap(e)
    if not is_aggregate(agg):
        return e.name if isinstance(e, exp.Column) else "key"
    fname = name_of(agg)
    arg = agg.this
    if isinstance(agg, exp.Count) and (arg is None or isinstance(arg, exp.Star)):
        return "count"
    if isinstance(arg, exp.Distinct) and arg.expressions:
        arg, fname = arg.expressions[0], fname + "_distinct"
    if order is not None and order.expressions:
        arg = order.expressions[0].this
    return f"{fname}_{arg.name}" if isinstance(arg, exp.Column) else fname


class _Names:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, name: str) -> str:
        base, i = name, 2
        while name.lower() in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name.lower())
        return name


def _keys(ctx: Ctx, names: _Names) -> list[KeyInfo]:
    fq, out = ctx.flat, []
    seen: set[str] = set()
    for i, g in enumerate(fq.group):
        sig = g.sql()
        if sig in seen:
            continue
        seen.add(sig)
        item = next((n for n, e in fq.items if e.sql() == sig), None)
        name = item or (g.name if isinstance(g, exp.Column) else f"key{i}")
        name = names.take(name)
        out.append(classify(name, g, fq, ctx.policy, ident(name)))
    return out


class _Post:
    """HAVING / ORDER BY / LIMIT over the released DataFrame ``released`` (post-processing of noisy output)."""

    def __init__(self, ctx, keys, builder, outputs, by_sig, item_names, names) -> None:
        self.ctx, self.keys, self.b, self.outputs = ctx, keys, builder, outputs
        self.by_sig, self.item_names, self.names = by_sig, item_names, names
        self.key_by_sig = {k.expr.sql(): k.name for k in keys}

    def _col(self, name: str):
        return exp.Column(this=exp.to_identifier(name, quoted=True))

    def _single(self, names: list[str], what: str) -> str:
        if len(names) != 1:
            reject("post-processing", f"{what} expands into several output columns ({', '.join(names)})",
                   "Refer to one of the expanded columns by position, or ask for one quantile.")
        return names[0]

    def _agg(self, node):
        sig = node.sql()
        if sig not in self.by_sig:
            hidden = self.b.outputs(self.names.take(f"__h{len(self.by_sig)}"), node)
            self.outputs.extend(OutputSpec(**{**o.__dict__, "hidden": True}) for o in hidden)
            self.by_sig[sig] = [o.name for o in hidden]
        return self._col(self._single(self.by_sig[sig], render(node)))

    def translate(self, node):
        if isinstance(node, (exp.Filter, exp.WithinGroup)) or is_aggregate(node):
            return self._agg(node)
        if isinstance(node, exp.Column) and node.table == OUT_ALIAS:
            names = self.item_names.get(node.name.lower())
            if names is None:
                reject("post-processing", f"{node.name!r} is not an output column", "Refer to a selected column.")
            return self._col(self._single(names, node.name))
        sig = node.sql()
        if sig in self.key_by_sig:
            return self._col(self.key_by_sig[sig])
        if isinstance(node, exp.Column):
            reject("post-processing", f"{node.name!r} in HAVING/ORDER BY is neither an output nor a group key",
                   "HAVING and ORDER BY run on the released answer: use selected columns, group keys or aggregates.")
        for k, v in list(node.args.items()):
            if isinstance(v, exp.Expr):
                node.set(k, self.translate(v))
            elif isinstance(v, list):
                node.set(k, [self.translate(x) if isinstance(x, exp.Expr) else x for x in v])
        return node

    def _int(self, node, what: str) -> int:
        if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
            return int(node.this)
        reject("post-processing", f"{what} must be a non-negative integer literal", f"Write e.g. {what} 10.")

    def render(self) -> str | None:
        fq = self.ctx.flat
        where = render(self.translate(fq.having.copy())) if fq.having is not None else None
        order, ordered = [], set()
        for o in fq.order:
            this = o.this
            if isinstance(this, exp.Var) and this.name.upper() == "ALL":   # ORDER BY ALL: every output, in order
                desc = " DESC" if o.args.get("desc") else ""
                for names in self.item_names.values():
                    for n in names:
                        order.append(render(self._col(n)) + desc)
                        ordered.add(render(self._col(n)))
                continue
            if isinstance(this, exp.Literal) and not this.is_string:
                idx = self._int(this, "ORDER BY position")
                names = list(self.item_names.values())
                if not 1 <= idx <= len(names):
                    reject("post-processing", f"ORDER BY {idx} does not name a selected column",
                           "Use 1-based positions of selected columns.")
                tr = self._col(self._single(names[idx - 1], f"column {idx}"))
            else:
                tr = self.translate(this.copy())
            desc = " DESC" if o.args.get("desc") else ""
            nulls = ""
            if o.args.get("nulls_first") is True and not desc:
                nulls = " NULLS FIRST"
            order.append(render(tr) + desc + nulls)
            ordered.add(render(tr))
        limit = self._int(fq.limit, "LIMIT") if fq.limit is not None else None
        offset = self._int(fq.offset, "OFFSET") if fq.offset is not None else None
        if where is None and not order and limit is None and offset is None:
            # release already returns groups sorted by the keys, NULLs last (DuckDB's default
            # ORDER BY): a post-processing pass would only re-sort them (~3 ms per release)
            return None
        for k in self.keys:
            c = render(self._col(k.name))
            if c not in ordered:
                order.append(c)
        sql = "SELECT * FROM released"
        if where:
            sql += f" WHERE {where}"
        if order:
            sql += " ORDER BY " + ", ".join(order)
        if limit is not None:
            sql += f" LIMIT {limit}"
        if offset is not None:
            sql += f" OFFSET {offset}"
        return sql


def plan_query(sql: str, policy: DatasetPolicy, *, params: dict | None = None, unit_column: str | None = None) -> Plan:
    """Check investigator SQL against ``policy`` and plan its bounded, DP-ready computation.

    Raises ``QueryRejected(rule=…)`` for anything outside the DP subset. Never reads data.
    ``unit_column``: a UBIGINT column of the table holding one integer id per privacy unit
    (written at ingest); the bounds then group by it instead of hashing the unit column.
    """
    ctx = Ctx(sql=sql, policy=policy, statements=parse_statements(sql))
    for rule in STATEMENT_RULES:
        rule.check(ctx)
    tree = params_mod.bind(ctx.tree, params)
    normalized = normalize_identifiers(tree.copy(), dialect=DIALECT).sql(dialect=DIALECT, comments=False)
    ctx.flat = flatten(policy, tree)
    for rule in SHAPE_RULES:
        rule.check(ctx)
    fq = ctx.flat
    k = policy.max_rows_per_unit
    names = _Names()
    keys = _keys(ctx, names)
    key_by_sig = {kk.expr.sql(): kk for kk in keys}
    b = Builder(policy=policy, types=fq.types, k=k)
    outputs: list[OutputSpec] = []
    by_sig: dict[str, list[str]] = {}
    item_names: dict[str, list[str]] = {}
    for i, (name, e) in enumerate(fq.items):
        sig = e.sql()
        if sig in key_by_sig and not is_aggregate(unwrap(e)[0]):
            kn = key_by_sig[sig].name
            outputs.append(OutputSpec(kn, "key"))
            item_names[(name or kn).lower() if name else f"#{i}"] = [kn]
            continue
        outs = b.outputs(names.take(name or _default_name(e)), e)
        outputs.extend(outs)
        by_sig.setdefault(sig, [o.name for o in outs])
        item_names[name.lower() if name else f"#{i}"] = [o.name for o in outs]
    listed = {o.name for o in outputs if o.kind == "key"}
    for kk in keys:
        if kk.name not in listed:
            outputs.append(OutputSpec(kk.name, "key", hidden=True))
    post = _Post(ctx, keys, b, outputs, by_sig, item_names, names).render()
    g_policy = policy.max_groups_per_unit
    if not keys:
        g = 1
    elif all(kk.domain is not None for kk in keys):
        size = 1
        for kk in keys:
            size *= len(kk.domain)
        g = max(1, min(g_policy, size))
    else:
        g = g_policy
    notes = [kk.note for kk in keys if kk.note] + b.notes
    # Say only what applies: COUNT(DISTINCT unit) is not capped by k (a unit counts once).
    row_capped = any(d.measure.kind != "count_units" for d in b.defs) or bool(b.quants)
    limits = ([f"at most {k} rows per group"] if row_capped else []) + (
        [f"in at most {g} groups (chosen pseudo-randomly)"] if needs_cap(keys, g_policy) else [])
    if limits:
        notes.append(f"each {policy.privacy_unit} counts " + " and ".join(limits))
    unit = unit_sql(policy, unit_column)
    plan = Plan(
        dataset=policy.dataset,
        table=policy.table,
        keys=tuple(KeySpec(kk.name, kk.kind, kk.domain) for kk in keys),
        measures=tuple(d.measure for d in b.defs),
        quantiles=tuple(q.spec for q in b.quants),
        outputs=tuple(outputs),
        g=g,
        k=k,
        bounded_sql=bounded_sql(policy, fq, keys, b, g, unit),
        quantile_sql=quantile_sql(policy, fq, keys, b, g, unit),
        post_sql=post,
        normalized=normalized,
        notes=tuple(dict.fromkeys(notes)),
    )
    return plan


__all__ = ["plan_query", "PRIVATE_ALIAS"]
