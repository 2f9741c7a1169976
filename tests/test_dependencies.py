"""Every third-party import in the repository is declared in pyproject.toml, in the right place.

CI runs in a fresh virtualenv made from README's install command, so an import that only works
because the developer's machine has the package would fail there; this test says which import
and where to declare it before CI does. Rules (the oracle is pyproject.toml + the stdlib list):

- src/: a module-level import needs a runtime dependency; an import inside a function (a heavy or
  optional feature, imported lazily) may come from a user extra instead (not testing/bench).
- tests/: runtime dependency or the ``testing`` extra.
- benchmarks/, scripts/: runtime dependency, ``testing`` or ``bench``.

``pytest.importorskip("x")`` counts as an import of ``x``: a test must not skip in CI because the
test command did not install what it needs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AREAS = ("src", "tests", "benchmarks", "scripts")
ALLOWED_EXTRAS = {
    "tests": ("testing",),
    "benchmarks": ("testing", "bench"),
    "scripts": ("testing", "bench"),
}


def _norm(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(requirement: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert m, f"pyproject.toml: cannot read the requirement {requirement!r}"
    return _norm(m.group(1))


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_req_name(r) for r in project["dependencies"]}
    extras = {k: {_req_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    return runtime, extras


def _local_names() -> set[str]:
    """Top-level names that resolve inside the repository (the package, test helpers, scripts)."""
    names = {p.name for p in (ROOT / "src").iterdir() if p.is_dir()}
    for area in AREAS[1:]:
        for p in (ROOT / area).rglob("*"):
            if "__pycache__" in p.parts:
                continue
            if p.suffix == ".py":
                names.add(p.stem)
            elif p.is_dir():
                names.add(p.name)
    return names


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level module, line, lazy) for each absolute import and pytest.importorskip in a file.

    ``lazy``: the import sits inside a function, so it runs only when that function is called.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            lazy = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name.split(".")[0], child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], child.lineno, in_function))
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr == "importorskip"
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                found.append((child.args[0].value.split(".")[0], child.lineno, in_function))
            visit(child, lazy)

    visit(tree, False)
    return found


def _all_imports() -> list[tuple[str, Path, str, int, bool]]:
    rows = []
    for area in AREAS:
        for path in sorted((ROOT / area).rglob("*.py")):
            rows += [(area, path, mod, line, lazy) for mod, line, lazy in _imports(path)]
    return rows


def test_the_scan_sees_imports_of_every_kind():
    """Guard against a scan that finds nothing and so passes vacuously."""
    rows = _all_imports()
    mods = {(area, mod, lazy) for area, _, mod, _, lazy in rows}
    assert ("src", "numpy", False) in mods  # module level
    assert ("src", "torch", True) in mods  # lazy, inside a function
    assert ("tests", "hypothesis", False) in mods
    assert any(a == "tests" and m == "torch" for a, m, _ in mods)  # via pytest.importorskip
    assert {"benchmarks", "scripts"} <= {a for a, _, _ in mods}


def test_every_third_party_import_is_declared():
    runtime, extras = _declared()
    local = _local_names()
    dists = importlib.metadata.packages_distributions()
    problems = []
    for area, path, mod, line, lazy in _all_imports():
        if mod in sys.stdlib_module_names or mod in local or mod == "__future__":
            continue
        # A module not installed here (e.g. monai without the bench extra) is looked up by its
        # own name, which is its distribution's for every such package this repository uses.
        candidates = {_norm(d) for d in dists.get(mod, [mod])}
        allowed = set(runtime)
        if area == "src":
            if lazy:
                # a user's extra (not testing/bench): a feature the package itself offers
                user_extras = [v for k, v in extras.items() if k not in ("testing", "bench")]
                allowed |= set().union(*user_extras)
        else:
            for extra in ALLOWED_EXTRAS[area]:
                allowed |= extras.get(extra, set())
        if not candidates & allowed:
            if area == "src":
                where = "an extra (imported lazily) or dependencies" if lazy else "dependencies"
            else:
                where = " or ".join(("dependencies", *ALLOWED_EXTRAS[area]))
            problems.append(
                f"{path.relative_to(ROOT)}:{line}: imports {mod!r} (distribution "
                f"{'/'.join(sorted(candidates))}), which pyproject.toml does not declare in {where}"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "requirement", ["scikit-learn", "hypothesis"], ids=lambda r: f"{r}-is-test-only"
)
def test_test_only_packages_are_not_runtime_dependencies(requirement):
    runtime, extras = _declared()
    assert requirement not in runtime
    assert requirement in extras["testing"]


def test_runtime_dependencies_are_all_imported_by_the_package():
    """No dead runtime dependency (magicgui, dask, scikit-learn were): each one is imported by src/."""
    runtime, _ = _declared()
    dists = importlib.metadata.packages_distributions()
    used = set()
    for area, _path, mod, _line, _lazy in _all_imports():
        if area == "src":
            used |= {_norm(d) for d in dists.get(mod, [mod])}
    assert runtime - used == set(), f"declared but never imported by src/: {sorted(runtime - used)}"


def test_ci_runs_readme_test_command_verbatim():
    """.ci/run runs README's test command as written, in a virtualenv it creates afresh."""
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(pip install torch[^\n]*pytest[^\n]*)\n```", readme)
    assert len(commands) == 1, commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[0] in ci.splitlines()
    assert "-m venv .ci-venv" in ci and "source .ci-venv/bin/activate" in ci
    assert ci.index("source .ci-venv/bin/activate") < ci.index(commands[0])
    assert "/.ci-venv/" in (ROOT / ".gitignore").read_text().splitlines()
