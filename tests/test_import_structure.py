"""The package's import graph: no cycle, layers that import only downwards (docs/architecture.md),
and no private name imported across modules.

grimp reads every import statement, including those inside functions, so an import moved into a
function to dodge a cycle still counts as an edge here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

import keras_iusp

PACKAGE_DIR = Path(keras_iusp.__file__).parent

#: The package's layers, highest first, by top-level module or subpackage of ``keras_iusp``
#: (docs/architecture.md): a module may import from its own layer and the ones below it.
#: ``losses`` is the public re-export of ``distill.losses``.
LAYERS = (
    ("cli",),
    ("experiments",),
    ("evaluate",),
    ("export",),
    ("metrics", "detect", "event_metrics"),
    ("compress",),
    ("train",),
    ("distill", "losses"),
    ("models",),
    ("features",),
    ("data",),
    ("utils",),
)


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("keras_iusp")


def cyclic_imports(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Direct imports ``a -> b`` that lie on a cycle (``b`` leads back to ``a``)."""
    return sorted((a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
                  if graph.chain_exists(importer=b, imported=a))


def upward_imports(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    """``(importer, imported)`` direct imports from a lower layer into a higher one."""
    layers = [grimp.Layer(*names, independent=False) for names in LAYERS]
    found = graph.find_illegal_dependencies_for_layers(layers=layers, containers={"keras_iusp"})
    return {(importer, imported) for dependency in found for route in dependency.routes
            if not route.middle for importer in route.heads for imported in route.tails}


def test_every_module_is_in_a_layer():
    named = {name for names in LAYERS for name in names}
    top = {m.split(".")[1] for m in _graph().modules if m.count(".") >= 1}
    assert top <= named, f"add to LAYERS and docs/architecture.md: {sorted(top - named)}"


def test_the_package_has_no_import_cycle():
    assert not cyclic_imports(_graph())


def test_the_cycle_finder_sees_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert cyclic_imports(graph) == [("p.a", "p.b"), ("p.b", "p.a")]


def test_layers_import_only_downwards():
    assert not sorted(upward_imports(_graph()))


def test_no_private_name_is_imported_across_modules():
    offenders = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_iusp"):
                private = [a.name for a in node.names
                           if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    offenders.append(f"{path.relative_to(PACKAGE_DIR)}:{node.lineno} "
                                     f"{node.module} {private}")
    assert not offenders, "\n".join(offenders)
