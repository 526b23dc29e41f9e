"""CLI verbs of the Jupyter layer: `queries list|lint`, `check`, `postmortem`."""

from __future__ import annotations

import json
from pathlib import Path

import click

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent.parent / "notebooks"


def _emit(obj, as_json: bool, human: str) -> None:
    click.echo(json.dumps(obj, default=str, sort_keys=True) if as_json else human)


def _workspace(path):
    from pdbg.policy.workspace import Workspace

    return Workspace(path)


class _FindingsFailed(click.ClickException):
    """Exit 1 after the findings were printed (nothing more to say)."""

    exit_code = 1

    def show(self, file=None) -> None:  # noqa: ARG002 - the findings are the message
        pass


def _report(findings, as_json: bool, ok_text: str) -> None:
    from pdbg.compliance import failed

    errors = [f for f in findings if f.severity == "error"]
    if as_json:
        click.echo(json.dumps({"ok": not errors, "findings": [f.to_dict() for f in findings]}, sort_keys=True))
    else:
        for f in findings:
            click.echo(f.line())
        click.echo(ok_text if not errors else f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    if failed(findings):
        raise _FindingsFailed("check failed")


def register(cli: click.Group) -> None:
    @cli.group("queries")
    def queries() -> None:
        """The reviewed query library (queries/*.sql templates)."""

    @queries.command("list")
    @click.option("--dir", "dirs", multiple=True, type=click.Path(file_okay=False), help="Template directory (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def queries_list(dirs, as_json):
        """List templates: name, default ε, parameters with types and defaults, description."""
        from pdbg.templates import load_library

        lib = load_library(list(dirs) if dirs else None)
        obj = {"templates": [{
            "name": t.name, "title": t.title, "dataset": t.dataset, "epsilon": t.epsilon,
            "description": t.description, "path": str(t.path) if t.path else None,
            "params": [{"name": p.name, "type": p.type, "default": p.default_text() or None,
                        "required": p.required, "choices": list(p.choices), "description": p.description}
                       for p in t.params]} for t in lib.values()]}
        human = "\n".join(
            f"{t.name:32} ε {t.epsilon:<5g} "
            f"{', '.join(f'{p.name}:{p.type}' + (f'={p.default_text()}' if p.default is not None else '') for p in t.params)}"
            f"\n    {t.title}: {t.description}"
            for t in lib.values()
        )
        _emit(obj, as_json, human or "no templates found")

    @queries.command("lint")
    @click.argument("workspace", type=click.Path(exists=True, file_okay=False))
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def queries_lint(workspace, as_json):
        """Check every template: header, defaults, DP checker against the policy, safe binding."""
        from pdbg.compliance import lint_templates

        _report(lint_templates(_workspace(workspace)), as_json, "all templates pass")

    @cli.command("check")
    @click.argument("paths", nargs=-1, type=click.Path(exists=True))
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def check_cmd(paths, as_json):
        """Lint policies and templates of WS and scan NOTEBOOKs for PII and raw workspace access.

        Usage: pdbg check WS [NOTEBOOK|DIR ...]. A directory holding workspace.json is the
        workspace; other directories contribute their *.ipynb. Exit 1 on any error finding
        (usable as a pre-commit hook and in CI).
        """
        from pdbg.compliance import check

        ws, books = None, []
        for raw in paths:
            p = Path(raw)
            if p.is_dir() and (p / "workspace.json").is_file():
                if ws is not None:
                    raise click.UsageError("give one workspace")
                ws = _workspace(p)
            elif p.is_dir():
                books += sorted(p.glob("*.ipynb"))
            else:
                books.append(p)
        _report(check(ws, books), as_json, f"ok: {len(books)} notebook(s) clean" + (", policies and templates pass" if ws else ""))

    @cli.command("postmortem")
    @click.argument("workspace", type=click.Path(exists=True, file_okay=False))
    @click.argument("case")
    @click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
    @click.option("--user", default=None, help="Investigator whose session replays the case (default: the case's first).")
    @click.option("--impact-start", default=None, help="When users were first hurt (ISO), for TTD.")
    @click.option("--notebook", default=str(NOTEBOOKS_DIR / "postmortem.ipynb"), type=click.Path(exists=True, dir_okay=False))
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def postmortem(workspace, case, out_dir, user, impact_start, notebook, as_json):
        """Run the postmortem notebook for CASE (replays from the cache: spends nothing), export Markdown and HTML."""
        import papermill as pm
        from nbconvert import HTMLExporter, MarkdownExporter

        from pdbg.compliance import failed, scan_notebook
        from pdbg.errors import PdbgError

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"postmortem-{case}"
        executed = out / f"{stem}.ipynb"
        params = {"workspace": str(Path(workspace).resolve()), "case": case}
        if user:
            params["user"] = user
        if impact_start:
            params["impact_start"] = impact_start
        try:
            pm.execute_notebook(notebook, str(executed), parameters=params, progress_bar=False,
                                cwd=str(out), kernel_name="python3")
        except pm.PapermillExecutionError as err:
            raise PdbgError(f"the postmortem notebook failed in cell {err.exec_count}: {err.ename}",
                            f"Open {executed} to see the failing cell.") from None
        findings = scan_notebook(executed, workspace)
        if failed(findings):
            executed.unlink()
            raise PdbgError("the postmortem output contains findings (" +
                            ", ".join(sorted({f.rule for f in findings})) + "); nothing was exported",
                            "Run `pdbg check` on the notebook and fix the cells that print private data.")
        files = {"notebook": str(executed)}
        for fmt, exporter in (("md", MarkdownExporter), ("html", HTMLExporter)):
            exp = exporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
            body, res = exp.from_filename(str(executed), resources={"unique_key": stem})
            target = out / f"{stem}.{fmt}"
            target.write_text(body, encoding="utf-8")
            for name, data in (res.get("outputs") or {}).items():    # Markdown's images
                (out / name).write_bytes(data)
            files[fmt] = str(target)
        _emit({"case": case, "files": files}, as_json, "\n".join(f"wrote {v}" for v in files.values()))
