"""The package's shape: the transport interface knows none of its implementations; the backend is a facade."""

from __future__ import annotations

import ast
from pathlib import Path

import polyvisor_hyperv

PACKAGE = Path(polyvisor_hyperv.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_transport_interface_imports_no_transport() -> None:
    imported = _imported_modules(PACKAGE / "transport.py")
    assert not imported & {"polyvisor_hyperv.psrp", "polyvisor_hyperv.winrm_shell"}


def test_the_backend_class_is_a_facade() -> None:
    assert len((PACKAGE / "backend.py").read_text(encoding="utf-8").splitlines()) <= 400
