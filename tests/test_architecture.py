"""The layout is the architecture: imports only go down the declared order of packages, and
no module imports itself back round a cycle.

Reads every module of ``autograder/`` with ``ast`` (imports at any depth: inside functions
and ``TYPE_CHECKING`` blocks too), so a later change cannot quietly add an upward arrow or a
cycle. The order is the data flow, bottom first; a package may import its own modules and
any package below it. ``autograder/__init__.py`` holds only the version and sits under all.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograder.core.assignments import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "autograder"
ORDER = ("core", "sandbox", "authoring", "grading", "outputs", "batch", "integrations",
         "demo", "cli")


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: Path, modules: set[str]) -> Iterator[tuple[str, int]]:
    """The grader's modules ``path`` imports, with the line of each import."""
    name = module_name(path, package)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules
                       else source for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == package.name:
                yield target, node.lineno


def import_graph(package: Path) -> dict[str, dict[str, int]]:
    """module -> {imported module: line}, for every module of the package."""
    paths = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {module_name(p, package) for p in paths}
    return {module_name(p, package): dict(imported_modules(p, package, modules))
            for p in paths}


def layer(module: str) -> int:
    """The module's place in ORDER (-1: the package's own ``__init__``, under everything)."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    return ORDER.index(parts[1])


def upward_imports(package: Path) -> list[str]:
    """Every import of a module from a package above its own, as 'file:line a -> b'."""
    found = []
    for module, imports in sorted(import_graph(package).items()):
        for target, line in sorted(imports.items()):
            if layer(target) > layer(module):
                found.append(f"{module}:{line} imports {target} "
                             f"({ORDER[layer(target)]} is above {ORDER[layer(module)]})")
    return found


def cycles(package: Path) -> list[list[str]]:
    """The import cycles between modules (strongly connected components of two or more)."""
    graph = import_graph(package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_is_in_the_declared_order():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    top = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert packages | top == set(ORDER), "add a new package or module to ORDER, in its place"


def test_every_package_says_its_job_and_what_it_may_import():
    for package in ORDER:
        init = PACKAGE / package / "__init__.py"
        if init.is_file():
            docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
            assert docstring and "import" in docstring.lower(), f"{init}: its job, its imports"


def test_imports_only_go_down():
    assert upward_imports(PACKAGE) == []


def test_no_module_imports_itself_round_a_cycle():
    assert cycles(PACKAGE) == []


@pytest.fixture
def package_copy(tmp_path):
    copy = tmp_path / "autograder"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_an_upward_import_is_caught(package_copy):
    errors = package_copy / "core" / "errors.py"
    errors.write_text(errors.read_text(encoding="utf-8")
                      + "\n\ndef _late():\n    from ..batch.runner import grade_batch\n",
                      encoding="utf-8")
    found = upward_imports(package_copy)
    assert len(found) == 1 and "autograder.core.errors" in found[0]
    assert "imports autograder.batch.runner (batch is above core)" in found[0]


def test_a_cycle_inside_a_package_is_caught(package_copy):
    records = package_copy / "outputs" / "records.py"  # the report imports the records
    records.write_text(records.read_text(encoding="utf-8") + "\nfrom . import report\n",
                       encoding="utf-8")
    assert upward_imports(package_copy) == []
    assert cycles(package_copy) == [["autograder.outputs.records", "autograder.outputs.report"]]
