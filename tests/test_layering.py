"""The package's layering, read from its source: no import circle, no import inside a
function, and the commands on top import nothing from each other."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "monet_gan"
COMMANDS = {"train", "export", "paint", "evaluate", "make_tfrecords", "dcgan", "nst"}


def package_imports(source: str) -> list[tuple[str, bool]]:
    """(monet_gan module imported, whether at module level) for every import in `source`.
    Module level includes blocks (`if`, `try`) outside any function or class."""
    tree = ast.parse(source)
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    inside = {id(inner) for node in ast.walk(tree) if isinstance(node, nested)
              for inner in ast.walk(node) if inner is not node}
    top_level = {id(node) for node in ast.walk(tree) if id(node) not in inside}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "monet_gan":  # from monet_gan import data, train
                found += [(alias.name, id(node) in top_level) for alias in node.names]
            elif node.module.startswith("monet_gan."):  # from monet_gan.data import X
                found.append((node.module.split(".")[1], id(node) in top_level))
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".")[1], id(node) in top_level) for alias in node.names
                      if alias.name.startswith("monet_gan.")]
    return found


def import_graph() -> dict[str, set[str]]:
    return {path.stem: {name for name, _ in package_imports(path.read_text())}
            for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state = {}  # module -> "open" while on the current path, "done" after

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported]
            if imported not in state and (found := visit(imported, path + [imported])):
                return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert sorted(package_imports("from monet_gan import a, b\nimport monet_gan.c\n"
                                  "def f():\n    from monet_gan.d import x\n"
                                  "if True:\n    from monet_gan import e\n")) == [
        ("a", True), ("b", True), ("c", True), ("d", False), ("e", True)]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert COMMANDS <= set(graph) and all(imported in graph for deps in graph.values() for imported in deps)
    assert cycle(graph) is None


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_every_package_import_is_at_module_level(path):
    late = [name for name, top_level in package_imports(path.read_text()) if not top_level]
    assert late == [], f"{path.name} imports {late} inside a function or block"


def test_the_commands_import_no_other_command():
    graph = import_graph()
    for command in COMMANDS:
        assert graph[command] & COMMANDS == set(), command
    libraries = set(graph) - COMMANDS
    for library in libraries:
        assert graph[library] & COMMANDS == set(), f"{library} imports a command"


def test_the_package_docstring_lists_every_module_above_what_it_imports():
    """monet_gan/__init__.py's docstring is the map a newcomer reads: it names every module,
    and each imports only modules named after it."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text()))
    order = re.findall(r"`(\w+)`", doc)
    graph = import_graph()
    assert sorted(order) == sorted(graph)
    for position, module in enumerate(order):
        above = sorted(d for d in graph[module] if order.index(d) < position)
        assert above == [], f"{module} imports {above}, listed before it"
