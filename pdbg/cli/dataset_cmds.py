"""CLI verbs: `pdbg dataset add|list` and `pdbg ingest`.

Thin by design: parse, call pdbg.governance.admin / pdbg.ingest.datasets, print. A
PdbgError bubbles up to `pdbg.cli.main.main`, which prints one line and exits 1.
"""

from __future__ import annotations

import click

ACTING_HELP = "pdbg admin acting (default: the OS account running pdbg, the data owner)."


def _ws(path: str):
    from pdbg.policy.workspace import Workspace

    return Workspace(path)


def _actor(user: str | None) -> str:
    from pdbg.governance.principals import os_actor

    return user or os_actor()


def _emit(obj: dict, as_json: bool, human: str | None = None) -> None:
    from pdbg.cli.main import emit

    emit(obj, as_json, human)


def _render(renderable) -> str:
    """A rich renderable as plain text (click.echo keeps output capturable in tests)."""
    import io

    from rich.console import Console

    console = Console(width=100, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text().rstrip("\n")


def ingest_report_text(rep: dict) -> str:
    """The human ingest report: counts and column names only (the report holds no value)."""
    from rich.table import Table

    t = Table(title=f"ingest into {rep['dataset']} (table {rep['table']})", show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("files", ", ".join(rep["files"]))
    t.add_row("rows in / out", f"{rep['rows_in']:,} / {rep['rows_out']:,}")
    if rep["rows_without_unit"]:
        t.add_row("rows without privacy unit (not kept)", f"{rep['rows_without_unit']:,}")
    t.add_row("tokenized", ", ".join(rep["tokenized_columns"]) or "-")
    t.add_row("redacted", ", ".join(rep["redacted_columns"]) or "-")
    dets = ", ".join(f"{k} {v:,}" for k, v in rep["detectors"].items() if v) or "nothing found"
    t.add_row("detector hits", dets)
    drops = ", ".join(f"{k} ({v:,} values)" for k, v in rep["dropped_columns"].items()) or "-"
    t.add_row("dropped columns", drops)
    if rep["unknown_columns"]:
        t.add_row("not in policy (dropped)", ", ".join(rep["unknown_columns"]))
    bad = {k: v for k, v in rep["unparsed"].items() if v}
    if bad:
        t.add_row("unparsed -> NULL", ", ".join(f"{k} {v:,}" for k, v in bad.items()))
    t.add_row("key id", rep["key_id"])
    t.add_row("data version", str(rep["data_version"]))
    t.add_row("duration", f"{rep['duration_s']:.2f} s")
    return _render(t)


def register(cli: click.Group) -> None:
    """Attach this module's commands to the top-level group."""

    @cli.group("dataset")
    def dataset_group():
        """Register and list datasets (their policies decide what may enter)."""

    @dataset_group.command("add")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("policy", type=click.Path(dir_okay=False))
    @click.option("--replace", is_flag=True,
                  help="Replace the policy of an already registered dataset (same columns and types, "
                       "unless its table is empty).")
    @click.option("--user", "acting", default=None, help=ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def dataset_add(workspace, policy, replace, acting, as_json):
        """Validate POLICY (YAML) and register its dataset, creating the empty table."""
        from pdbg.governance.admin import add_dataset

        from pdbg.dp.accounting import selection_queries_allowed
        from pdbg.ingest.datasets import get_policy

        ws = _ws(workspace)
        info, outcome = add_dataset(ws, policy, _actor(acting), replace=replace)
        pol = get_policy(ws, info.name)
        n_sel = selection_queries_allowed(pol.accounting, pol.epsilon.dataset_cap, pol.lifetime_delta,
                                          pol.partition_delta)
        n_grant = selection_queries_allowed(pol.accounting, pol.epsilon.case_default, pol.delta, pol.partition_delta)
        d = {**info.to_dict(), "outcome": outcome, "selection_queries_allowed": n_sel,
             "selection_queries_per_grant": n_grant}
        _emit(d, as_json, f"dataset {info.name} {outcome}: table {info.table_name}, "
                          f"policy {info.policy_hash[:12]}, key {info.key_id}, data version {info.data_version}\n"
                          f"partition selection: δ={pol.partition_delta:g} per query on a private key; the "
                          f"dataset's lifetime δ={pol.lifetime_delta:g} pays for {n_sel:,} such queries, "
                          f"a grant's δ={pol.delta:g} for {n_grant:,} (raise dataset_delta for more)")

    @dataset_group.command("list")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def dataset_list(workspace, as_json):
        """List registered datasets with table, policy hash, key id, data version and row count."""
        from rich.table import Table

        from pdbg.ingest.datasets import list_datasets

        infos = [i.to_dict() for i in list_datasets(_ws(workspace))]
        t = Table("dataset", "table", "rows", "version", "policy", "key id", "updated")
        for i in infos:
            t.add_row(i["name"], i["table_name"], f"{i['rows']:,}", str(i["data_version"]),
                      i["policy_hash"][:12], i["key_id"], i["updated_at"])
        _emit({"datasets": infos}, as_json, _render(t) if infos else "no datasets registered")

    @cli.command("ingest")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("dataset")
    @click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
    @click.option("--progress/--no-progress", default=None,
                  help="Show a progress bar (default: on a terminal, for large inputs).")
    @click.option("--user", "acting", default=None, help=ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def ingest_cmd(workspace, dataset, files, progress, acting, as_json):
        """Minimize FILES (.jsonl/.ndjson, .csv, .parquet) into DATASET, all or nothing."""
        from pdbg.governance.admin import ingest

        report = ingest(_ws(workspace), dataset, list(files), _actor(acting),
                        progress=False if as_json and progress is None else progress)
        rep = report.to_dict()
        _emit(rep, as_json, ingest_report_text(rep))
