"""The package's shape: no import circles, and import-linter's contracts (pyproject.toml) kept.

The import graph comes from grimp (the graph builder under import-linter), not from this code; the
circle search is a plain strongly-connected-components pass over it. Every import counts,
including those inside functions and under ``TYPE_CHECKING``: a circle hidden in a function is
still a circle a reader has to untangle.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "napari_clinlabel"


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), sorted."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(found)


def test_the_cycle_search_finds_a_known_cycle():
    """The oracle: a hand-made graph with one circle a -> b -> c -> a and a tail c -> d."""
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=importer, imported=imported)
    graph.add_module("p.e")
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_the_graph_holds_the_package():
    graph = _graph()
    assert f"{PACKAGE}.core.log.audit_log" in graph.modules
    assert f"{PACKAGE}.core.log.audit_log" in graph.find_modules_directly_imported_by(
        f"{PACKAGE}.glue.session"
    )


def test_no_import_circles():
    graph = _graph()
    cycles = _cycles(graph)
    lines = []
    for component in cycles:
        members = set(component)
        edges = [
            f"    {a} -> {b}"
            for a in component
            for b in sorted(graph.find_modules_directly_imported_by(a))
            if b in members
        ]
        lines.append("circle of " + ", ".join(component) + ":\n" + "\n".join(edges))
    assert not cycles, "\n".join(lines)


def test_import_linter_contracts_kept():
    """core never imports napari/Qt/glue/widgets/CLI; the core layers; glue never imports widgets/Qt."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    lint = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert "Contracts:" in lint.stdout, lint.stdout + lint.stderr  # it ran and read the contracts
    assert lint.returncode == 0, lint.stdout + lint.stderr
