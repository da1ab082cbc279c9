"""Dependencies point one way: views and consumers -> services -> the media adapter -> audio_engine.

Read from the source (every import, at module level or inside a function), so a hidden cycle fails here.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("accounts", "audio_engine", "friends", "quietcast", "streams")

# streams' own layers, lowest first; a module may import its own layer or lower ones only.
STREAMS_LAYERS = {
    "streams.clock": 0,
    "streams.events": 0,
    "streams.models": 0,
    "streams.signals": 0,
    "streams.hosts": 0,  # the media host registry, beside the adapter (it reads only the clock)
    "streams.media_forwarding": 0,  # carries the adapter's operations to another host over the channel layer
    "streams.placement": 0,  # the pure rule choosing a new stream's host, for services
    "streams.media": 1,
    "streams.recordings": 2,
    "streams.services": 2,
}
TOP = 3  # views, API, consumers, pages, timers, app wiring
DJANGO_SIDE = ("django", "channels", "rest_framework", "accounts", "friends", "quietcast", "streams")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "migrations" not in path.parts
    }


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module `path` imports, resolved to the most specific module name it reaches."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            submodules = (f"{node.module}.{alias.name}" for alias in node.names)
            found.update(submodule for submodule in submodules if submodule in modules)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def project_imports(graph: dict[str, set[str]], name: str) -> set[str]:
    return {imported for imported in graph[name] if imported in graph and imported != name}


def imports_from(graph: dict[str, set[str]], package: str, forbidden_roots: tuple[str, ...]) -> set[tuple[str, str]]:
    return {
        (name, imported)
        for name, imported_modules in graph.items()
        if name.split(".")[0] == package
        for imported in imported_modules
        if imported.split(".")[0] in forbidden_roots
    }


def test_the_audio_engine_knows_nothing_of_django_or_the_apps(graph):
    assert imports_from(graph, "audio_engine", DJANGO_SIDE) == set()


def test_friends_does_not_import_streams(graph):
    assert imports_from(graph, "friends", ("streams",)) == set()


def test_streams_layers_only_import_downwards(graph):
    def layer(name: str) -> int:
        return STREAMS_LAYERS.get(name, TOP)

    offenders = {
        (name, imported)
        for name in graph
        if name.startswith("streams.")
        for imported in project_imports(graph, name)
        if imported.startswith("streams.") and layer(imported) > layer(name)
    }
    assert offenders == set()


def test_there_are_no_import_cycles(graph):
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(project_imports(graph, name)):
            if imported == name.rsplit(".", 1)[0]:
                continue  # a package's own __init__ is not a dependency of its modules' design
            if state.get(imported) == "open":
                cycles.append([*path[path.index(imported):], imported] if imported in path else [name, imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
