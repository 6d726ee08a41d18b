"""The loopback host is a program of its own: it imports nothing from polyvisor or its backends."""

from __future__ import annotations

import ast
from pathlib import Path

import polyvisor_hyperv_loopback

PACKAGE = Path(polyvisor_hyperv_loopback.__file__).parent


def _absolute_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_host_imports_nothing_from_polyvisor() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules
    foreign = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in modules
        for name in _absolute_imports(path)
        if name.split(".")[0].startswith("polyvisor") and name.split(".")[0] != "polyvisor_hyperv_loopback"
    }
    assert foreign == set()
