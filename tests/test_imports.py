"""The package's import graph has no cycle, and its layers depend on each other one way only.

Built from the source, not by importing it: every ``import autocompress...`` and ``from
autocompress... import`` at a module's top level or inside its functions is an edge (an
import under ``if TYPE_CHECKING:`` is not: it never runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).parents[1] / "autocompress"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(tree: ast.AST, modules: set[str]) -> set[str]:
    """The package's modules ``tree`` imports (``from pkg import module`` names the module)."""
    found: set[str] = set()
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> nx.DiGraph:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for path in paths:
        source = _module_name(path)
        for target in _imported(ast.parse(path.read_text(), str(path)), modules) - {source}:
            if not source.startswith(f"{target}."):  # a package's own __init__ runs first anyway
                graph.add_edge(source, target)
    return graph


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_module_imports_itself_in_a_cycle():
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(import_graph())
                    if len(c) > 1)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_report_verify_and_search_read_the_run_and_not_each_other():
    """The commands ``search`` and ``verify`` end by writing the report (search also verifies), so
    those imports go one way; nothing the report or verify computes comes from another layer, and
    the run folder's model imports none of them."""
    packages = nx.DiGraph()
    for source, target in import_graph().edges:
        if _package(source) != _package(target):
            packages.add_edge(_package(source), _package(target))
    allowed = {("autocompress.search", "autocompress.report"), ("autocompress.search", "autocompress.verify"),
               ("autocompress.verify", "autocompress.report")}
    layers = {"autocompress.report", "autocompress.verify", "autocompress.search", "autocompress.export"}
    crossing = sorted(edge for edge in packages.edges if set(edge) <= layers and edge not in allowed)
    assert not crossing, f"layers importing each other: {crossing}"
    assert all(packages.has_edge(layer, "autocompress.run") for layer in layers)
    assert not [edge for edge in packages.out_edges("autocompress.run") if edge[1] in layers]


def test_the_modules_that_time_ops_need_no_model_family():
    """The profiler builds each op's module by its op type (``hw.kernels``): a family's own
    classes are never needed to time its ops."""
    reached = nx.descendants(import_graph(), "autocompress.hw.kernels")
    assert not [module for module in reached if module.startswith("autocompress.models")]
