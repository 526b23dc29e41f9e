"""Project-level contracts: dependency files agree, layers import downward, sqlglot stays in sql/."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pdbg"

# Lower index = lower layer. A module may import its own layer or any lower one.
LAYERS = [
    {"errors", "clock"},
    {"policy"},
    {"ingest"},
    {"sql"},
    {"dp"},
    {"engine"},
    {"ledger"},
    {"governance"},
    {"session", "templates", "compliance"},
    {"cli", "notebook", "server", "demo"},
]


def _layer_of(top: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return None


def _normalize(spec: str) -> tuple[str, str]:
    m = re.match(r"^([A-Za-z0-9_.\-\[\]]+?)\s*([<>=!~].*)?$", spec.strip())
    assert m, spec
    name = re.sub(r"\[.*\]", "", m.group(1)).lower().replace("_", "-")
    return name, (m.group(2) or "").replace(" ", "")


def test_environment_yml_agrees_with_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_normalize(s) for s in py["dependencies"] + py["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    got: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for s in dep.get("pip", []):
                if not s.startswith("-e"):
                    got.update([_normalize(s)])
        elif not dep.startswith(("python", "pip")):
            got.update([_normalize(dep)])
    assert got == wanted
    assert any(d.startswith("python>=3.11") for d in env["dependencies"] if isinstance(d, str))
    assert py["requires-python"] == ">=3.11"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        top = rel.parts[0].removesuffix(".py")
        if top == "__init__":
            continue
        yield path, top


def test_imports_point_downward():
    problems = []
    for path, top in _modules():
        mine = _layer_of(top)
        assert mine is not None, f"{path} is in no layer; add it to LAYERS and docs/INTERNALS.md"
        for mod in _imports(path):
            parts = mod.split(".")
            if parts[0] != "pdbg" or len(parts) < 2:
                continue
            theirs = _layer_of(parts[1])
            if theirs is not None and theirs > mine:
                problems.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not problems, "imports pointing upward:\n" + "\n".join(problems)


def test_sqlglot_only_under_sql():
    offenders = [
        str(p.relative_to(ROOT)) for p, top in _modules()
        if top != "sql" and any(m.split(".")[0] == "sqlglot" for m in _imports(p))
    ]
    assert offenders == []


def test_no_seeded_randomness_in_package():
    pattern = re.compile(r"random\.seed\(|default_rng\(\s*\d")
    offenders = [str(p) for p, top in _modules() if top != "demo" and pattern.search(p.read_text())]
    assert offenders == []


def test_quick_start_is_two_commands():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```", 2)[1]
    assert [line for line in block.strip().splitlines()] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
