"""The package's shape: every import points down a layer and no two dnspec modules import
each other in a circle, the public import paths that users and the documentation name
keep working, and ``dnspec/``'s top level holds only the package's face (the pipeline's
stages are folders).

The layers, bottom to top (:data:`LAYERS`): contract, generation, implementations,
calling, checks, running, reports, benchmarks, commands, then the face (cli, __main__,
pytest_plugin, and the aliases reference, strategies, noise and specs, which import what
they alias). A module of a layer may import modules of its own layer and of the layers
below it, never above (:func:`upward_imports`). Two modules sit outside the folders:
the package root ``dnspec`` (``__init__.py``: ``__version__`` only) is below every layer,
so any module may import it, and it imports nothing of dnspec; ``dnspec.config`` (the
``[tool.dnspec]`` table, a public path) belongs to the commands layer, whose commands and
the pytest plugin read it.

The import graph is read from the source (``ast``), not from what one run happened to
import: every ``import dnspec...`` and ``from dnspec... import ...`` (or a relative one)
anywhere in a module, at module level or inside a function, is an edge from that module
to the module it names (``from dnspec.a import b`` names ``dnspec.a.b`` when that is a
module, else ``dnspec.a``). Imports under ``if TYPE_CHECKING:`` never run, and are left
out. A strongly connected component of more than one module, or a module importing
itself, is a circle, and the test names it."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
from pathlib import Path

import dnspec

ROOT = Path(dnspec.__file__).parent  # the installed package when the suite runs from ci/test.sh

# the package's face: what may sit at dnspec/'s top level (the stages are packages)
FACE_LIMIT = 12

# bottom to top: a module may import its own layer and those below (see the module docstring)
LAYERS = (
    "contract",
    "generation",
    "implementations",
    "calling",
    "checks",
    "running",
    "reports",
    "benchmarks",
    "commands",
    "face",
)
ROOT_LAYER = "root"  # the package's __init__: below every layer, imports nothing of the package
PLACED = {"config": "commands"}  # top-level modules that are not the face: the layer they belong to


def layer_of(module: str) -> str:
    """The layer of a dotted module name (``pkg.checks.suite`` -> ``checks``; the package
    root -> :data:`ROOT_LAYER`; a top-level module -> its :data:`PLACED` layer, else
    ``face``). A first-level package that is not a layer is the face's too (and fails
    :func:`test_every_package_is_a_layer`)."""
    parts = module.split(".")
    if len(parts) == 1:
        return ROOT_LAYER
    if parts[1] in LAYERS:
        return parts[1]
    return PLACED.get(parts[1], "face")


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every import (module, imported) that points up a layer, or that the package root
    makes of the package, sorted."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    found = []
    for module, imported in graph.items():
        for target in imported:
            source, imported_layer = layer_of(module), layer_of(target)
            upward = imported_layer != ROOT_LAYER and rank.get(imported_layer, -1) > rank.get(source, -1)
            if source == ROOT_LAYER or upward:
                found.append((module, target))
    return sorted(found)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node of ``tree``, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the dnspec modules it imports (anywhere in its source)."""
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
                ]
            edges.update(t for t in targets if t in modules)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components (Tarjan's algorithm) of more than
    one module, and modules that import themselves; each as the modules in a cycle order."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(_cycle_through(sorted(component), graph))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One cycle inside ``component`` from its first module back to it (breadth first)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return component  # unreachable for a strongly connected component


def test_no_import_circle():
    graph = import_graph(module_files())
    assert len(graph) > 40 and sum(map(len, graph.values())) > 100  # the walk did read the package
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_walk_finds_a_circle_when_there_is_one(tmp_path):
    """The check can fail: a package where a record module imports its writer and the
    writer the record (the circle this layout removed), at function level, is caught;
    one where only the writer imports the record is not."""
    package = tmp_path / "pkg"
    (package / "reports").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "reports" / "__init__.py").write_text("")
    (package / "reports" / "html.py").write_text("from pkg.reports.records import Report\n")
    (package / "reports" / "records.py").write_text("class Report:\n    pass\n")
    (package / "reports" / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.reports import html\n"
    )
    assert circles(import_graph(module_files(package))) == []
    (package / "reports" / "records.py").write_text(
        "class Report:\n    def write(self):\n        from .html import page\n"
    )
    assert circles(import_graph(module_files(package))) == [
        ["pkg.reports.html", "pkg.reports.records", "pkg.reports.html"]
    ]


def test_every_import_points_down_a_layer():
    graph = import_graph(module_files())
    assert {layer_of(name) for name in graph} == {ROOT_LAYER, *LAYERS}  # every layer was read
    found = upward_imports(graph)
    assert not found, "imports that point up a layer: " + "; ".join(
        f"{a} ({layer_of(a)}) -> {b} ({layer_of(b)})" for a, b in found
    )


def test_every_package_is_a_layer():
    """A new first-level package must be given its place in :data:`LAYERS`."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_the_walk_finds_an_upward_import_when_there_is_one(tmp_path):
    """The check can fail: a toy package whose checks import the calling layer, whose
    commands import its config and the root's ``__version__``, passes; a function-level
    import of a check from the calling layer (the circle the split removed, one way
    round), of the face from a stage, or of a stage from the package root, is caught."""
    package = tmp_path / "pkg"
    for folder in ("calling", "checks", "commands"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text('__version__ = "0"\n')
    (package / "calling" / "trial.py").write_text("class Trial:\n    pass\n")
    (package / "checks" / "suite.py").write_text("from pkg.calling.trial import Trial\n")
    (package / "config.py").write_text("from pkg.checks import suite\n")
    (package / "commands" / "verify.py").write_text("import pkg\nfrom pkg import config\n")
    (package / "cli.py").write_text("from pkg.commands import verify\n")
    assert upward_imports(import_graph(module_files(package))) == []
    (package / "calling" / "trial.py").write_text("def run():\n    from ..checks.suite import Trial\n")
    (package / "checks" / "suite.py").write_text("from pkg import cli\n")
    (package / "__init__.py").write_text("from pkg.calling import trial\n")
    assert upward_imports(import_graph(module_files(package))) == [
        ("pkg", "pkg.calling.trial"),
        ("pkg.calling.trial", "pkg.checks.suite"),
        ("pkg.checks.suite", "pkg.cli"),
    ]


def test_report_records_know_none_of_their_writers():
    graph = import_graph(module_files())
    writers = {name for name in graph if name.startswith("dnspec.reports.") and name != "dnspec.reports.records"}
    assert not graph["dnspec.reports.records"] & writers, graph["dnspec.reports.records"] & writers
    assert "dnspec.reports.records" in graph["dnspec.reports.writers"]


def test_public_import_paths_keep_working():
    """What users and the docs name: ``dnspec.reference``, ``dnspec.strategies``,
    ``dnspec.noise.NoiseDraw``, the SPEC registry ``dnspec.specs`` and the pytest plugin
    that the ``pytest11`` entry point names; each alias is the moved module itself."""
    from dnspec import noise, reference, specs, strategies
    from dnspec.contract import noise as contract_noise
    from dnspec.contract import reference as contract_reference
    from dnspec.generation import strategies as generation_strategies
    from dnspec.implementations import specs as implementation_specs

    assert reference is contract_reference and callable(reference.get_contrastive_denoising_training_group)
    assert strategies is generation_strategies and callable(strategies.image_targets)
    assert noise is contract_noise and inspect.isclass(noise.NoiseDraw) and noise.NoiseDraw.__module__ == noise.__name__
    assert specs is implementation_specs
    assert "reference" in specs.builtin_names()
    assert specs.load_implementation("reference").fn is not None
    from dnspec.noise import NoiseDraw, draw_noise  # the from-import form too

    assert NoiseDraw is contract_noise.NoiseDraw and draw_noise is contract_noise.draw_noise

    plugins = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "dnspec"]
    assert [ep.value for ep in plugins] == ["dnspec.pytest_plugin"]
    plugin = plugins[0].load()
    assert plugin is importlib.import_module("dnspec.pytest_plugin")
    assert callable(plugin.pytest_addoption)


def test_top_level_is_the_package_face():
    """``dnspec/`` holds the face (cli, __main__, the pytest plugin, config, the public
    aliases) and one folder per pipeline stage; no stage's modules lie flat beside them."""
    top_modules = sorted(p.stem for p in ROOT.glob("*.py") if p.stem != "__init__")
    assert 0 < len(top_modules) <= FACE_LIMIT, top_modules
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    stages = set(LAYERS) - {"face"}
    assert stages <= packages, stages - packages
