"""The built-in backends are twins: one module skeleton, one room per concept, the same names in both.

Reading one backend teaches the other, so a room added, renamed or left out in one of them fails here. The rules
are read from the source (no hypervisor library is imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from polyvisor.backend import Backend

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "libvirt": ROOT / "plugins" / "polyvisor-libvirt" / "src" / "polyvisor_libvirt",
    "hyperv": ROOT / "plugins" / "polyvisor-hyperv" / "src" / "polyvisor_hyperv",
}
# Each room module holds one class named after it; the facade holds an instance as ``self._<module>``.
ROOMS = (
    "lifecycle",
    "inventory",
    "snapshots",
    "devices",
    "storage",
    "images",
    "sizing",
    "addresses",
    "readiness",
    "display",
    "networks",
    "pools",
    "transfers",
    "metrics",
    "events",
)
# Besides the rooms: the facade, its plugin hook, the host's client, error and state mapping, and the kit's
# extras for the backend's targets (``pytest -p polyvisor_<backend>.testing``).
SKELETON = frozenset({*ROOMS, "client", "errors", "states", "backend", "plugin", "testing"})
BACKEND_METHODS = frozenset(
    name for name, value in vars(Backend).items() if callable(value) and not name.startswith("_")
)


def _tree(package: str, module: str) -> ast.Module:
    return ast.parse((PACKAGES[package] / f"{module}.py").read_text(encoding="utf-8"))


def _classes(package: str) -> dict[str, list[str]]:
    """Class names by module, for every module of the package (``__init__`` aside)."""
    return {
        path.stem: [
            node.name
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ClassDef)
        ]
        for path in sorted(PACKAGES[package].glob("*.py"))
        if path.stem != "__init__"
    }


def _forwards(package: str) -> dict[str, tuple[str, str]]:
    """For each Backend method the facade overrides: the room attribute and the room method it calls."""
    facade = next(
        node
        for node in _tree(package, "backend").body
        if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id == "Backend" for b in node.bases)
    )
    found: dict[str, tuple[str, str]] = {}
    for method in facade.body:
        if not isinstance(method, ast.FunctionDef) or method.name not in BACKEND_METHODS:
            continue
        for node in ast.walk(method):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "self"
                and node.func.value.attr.lstrip("_") in ROOMS
            ):
                found[method.name] = (node.func.value.attr.lstrip("_"), node.func.attr)
    return found


def test_both_backends_have_the_same_skeleton() -> None:
    modules = {package: frozenset(_classes(package)) for package in PACKAGES}
    for package, names in modules.items():
        assert names >= SKELETON, f"{package} lacks the room(s) {sorted(SKELETON - names)}"
    assert modules["libvirt"] & modules["hyperv"] == SKELETON, "a module both backends have belongs in SKELETON"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_each_room_holds_the_class_named_after_it(package: str) -> None:
    classes = _classes(package)
    for room in ROOMS:
        assert room.capitalize() in classes[room], f"{package}.{room} has no class {room.capitalize()}"
    assert any(name.endswith("Client") for name in classes["client"]), f"{package}.client has no ...Client class"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_class_is_called_session(package: str) -> None:
    named = [f"{module}.{name}" for module, names in _classes(package).items() for name in names if name == "Session"]
    assert named == []


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_room_methods_carry_the_backend_methods_names(package: str) -> None:
    forwards = _forwards(package)
    assert len(forwards) >= 30, "the facade forwards the Backend methods to its rooms"
    misnamed = {method: target for method, target in forwards.items() if target[1] != method}
    assert misnamed == {}


def test_both_backends_put_each_backend_method_in_the_same_room() -> None:
    libvirt, hyperv = _forwards("libvirt"), _forwards("hyperv")
    shared = libvirt.keys() & hyperv.keys()
    assert {method: (libvirt[method], hyperv[method]) for method in shared if libvirt[method] != hyperv[method]} == {}
