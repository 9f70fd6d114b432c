"""The project's layers point one way, read from the source (AST; no code run): the core (pce, unet,
data, clicks) imports nothing else of the project; lib/, the tool's package, imports only the core
and itself; no module imports a command (a file with a __main__ block) — what two commands share
lives in lib/."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = {"pce", "unet", "data", "clicks"}


def modules():
    """Every module of the project but the tests: {dotted name: path}."""
    paths = [*ROOT.glob("*.py"), *ROOT.glob("lib/*.py"), *ROOT.glob("reporting/*.py")]
    paths += ROOT.glob("scripts/*.py")
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts): p
        for p in paths
        if not p.name.startswith("test_") and p.name != "__init__.py"
    }


MODULES = modules()


def imported(path):
    """The project's modules that `path` imports, anywhere in it (a lazy import counts too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name in MODULES}


def is_command(path):
    tree = ast.parse(path.read_text())
    return any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body)


@pytest.mark.parametrize("name", sorted(CORE))
def test_the_core_imports_nothing_else_of_the_project(name):
    assert imported(MODULES[name]) <= CORE


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("lib.")))
def test_the_package_imports_only_the_core_and_itself(name):
    outside = {m for m in imported(MODULES[name]) if m not in CORE and not m.startswith("lib.")}
    assert not outside, f"{name} imports {sorted(outside)}"


def test_no_module_imports_a_command():
    commands = {name for name, path in MODULES.items() if is_command(path)}
    assert {"train", "predict", "experiments"} <= commands  # the check sees the commands
    importing = {
        name: sorted(imported(path) & commands)
        for name, path in MODULES.items()
        if imported(path) & commands
    }
    assert not importing
