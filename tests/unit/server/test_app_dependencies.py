"""The server's apps depend one way: accounts < compute, data, secrets < pipelines < runs <
registry (docs/architecture.md).

A module of an app may import its own app, the apps below it and the project-level modules
(pipelines_ui/*.py, such as api_base); never an app above it, or one beside it. The project-level
modules and the management commands compose the apps and may import any. Every import counts,
one inside a function too: an import deferred to break a cycle is still the cycle.
"""

import ast
from pathlib import Path

import pipelines_ui

PACKAGE = Path(pipelines_ui.__file__).resolve().parent
LEVEL = {"accounts": 0, "compute": 1, "data": 1, "secrets": 1, "pipelines": 2, "runs": 3,
         "registry": 4}
COMPOSITION = {"management"}  # packages that, like pipelines_ui/*.py, put the apps together


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the source of a module of `package`,
    wherever it stands; for `from a import b`, both a and a.b (b may be a module)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def imports_of(path: Path) -> list[tuple[int, str]]:
    package = ".".join(path.relative_to(PACKAGE.parent).parts[:-1])
    return imported_modules(path.read_text(), package)


def app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pipelines_ui" and parts[1] in LEVEL else None


def app_imports() -> dict[str, set[str]]:
    """app -> the other apps it imports, over every module of the app."""
    edges: dict[str, set[str]] = {app: set() for app in LEVEL}
    for app in LEVEL:
        for path in (PACKAGE / app).rglob("*.py"):
            edges[app] |= {other for _, module in imports_of(path)
                           if (other := app_of(module)) not in (None, app)}
    return edges


def test_every_app_has_a_place_in_the_order():
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages - COMPOSITION == set(LEVEL)


def test_no_app_imports_an_app_above_or_beside_it():
    wrong = []
    for app, level in LEVEL.items():
        for path in sorted((PACKAGE / app).rglob("*.py")):
            for line, module in imports_of(path):
                other = app_of(module)
                if other not in (None, app) and LEVEL[other] >= level:
                    wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports from "
                                 f"{other}, which is not below {app}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_the_check_sees_the_imports_that_are_allowed():
    edges = app_imports()
    assert {"accounts", "pipelines"} <= edges["runs"]
    assert "runs" in edges["registry"]


def test_a_function_local_or_relative_import_counts():
    source = ("def f():\n    from pipelines_ui.runs.models import StepRun\n"
              "from ..registry import services\nfrom . import models\n")
    modules = {name for _, name in imported_modules(source, "pipelines_ui.compute")}
    assert {"pipelines_ui.runs.models", "pipelines_ui.registry.services",
            "pipelines_ui.compute.models"} <= modules
