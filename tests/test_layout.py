"""The core's rooms keep their rules: each test here fails the day one is broken.

* The asyncio face drives the verb engine and never reaches into a sync class (no ``_private`` of one).
* No class in ``src/`` grows past about 400 lines.
* The package root only re-exports: it does no work, and nothing it imports imports it back.
* Every type a public signature takes or returns is exported with it.
"""

from __future__ import annotations

import ast
import enum
import inspect
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import polyvisor
import polyvisor.aio
import polyvisor.backend

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "polyvisor"
AIO = PACKAGE / "aio"
MAX_CLASS_LINES = 400


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _trees(paths: list[Path]) -> Iterator[tuple[Path, ast.Module]]:
    for path in paths:
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _sources(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if ".venv" not in path.parts)


def _private_members(paths: list[Path]) -> set[str]:
    """The private names classes in ``paths`` define: methods, class attributes and ``self._x`` assignments."""
    names: set[str] = set()
    for _, tree in _trees(paths):
        for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
            for node in ast.walk(cls):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _private(node.name):
                    names.add(node.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
                    names.add(node.attr)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _private(node.id):
                    names.add(node.id)
    return names


def _aio_reaches() -> list[tuple[Path, int, str, str]]:
    """Every ``thing._name`` in aio/ whose ``thing`` is not ``self`` or ``cls``: (path, line, thing, name)."""
    found = []
    for path, tree in _trees(_sources(AIO)):
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            found.append((path, node.lineno, ast.unparse(node.value), node.attr))
    return found


def test_no_aio_module_reaches_a_private_member_of_a_sync_class() -> None:
    sync_paths = [path for path in _sources(PACKAGE) if AIO not in path.parents]
    sync_private = _private_members(sync_paths)
    aio_private = _private_members(_sources(AIO))
    offences = []
    for path, line, thing, name in _aio_reaches():
        where = f"{path.relative_to(SRC)}:{line}: {thing}.{name}"
        if name in sync_private:
            # A name both faces define could be either's: aio must give its own privates names of their own.
            offences.append(f"{where} (a private name of a sync class)")
        elif name not in aio_private:
            offences.append(f"{where} (not a private member of an aio class)")
    assert offences == [], "aio/ reaches into the sync classes; use the verb engine's public names:\n" + "\n".join(
        offences
    )


def test_no_aio_module_imports_a_private_name_of_the_core() -> None:
    offences = []
    for path, tree in _trees(_sources(AIO)):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("polyvisor.aio"):
                offences += [
                    f"{path.relative_to(SRC)}:{node.lineno}: {node.module}.{alias.name}"
                    for alias in node.names
                    if _private(alias.name)
                ]
    assert offences == []


def test_the_private_reach_check_sees_a_reach() -> None:
    """The AST check above finds what it looks for (``self.sync._x`` parses as a reach on ``self.sync``)."""
    tree = ast.parse("class A:\n    def f(self):\n        return self.sync._act()\n")
    reaches = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and _private(node.attr)]
    assert reaches == ["_act"]
    assert "_act" not in _private_members(_sources(AIO))


def test_no_class_in_src_is_over_400_lines() -> None:
    big = []
    for path, tree in _trees(_sources(SRC)):
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    big.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.name} is {lines} lines")
    assert big == [], f"split these into rooms of their own (at most {MAX_CLASS_LINES} lines a class):\n" + "\n".join(
        big
    )


def test_the_package_root_only_re_exports() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    work = []
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.ImportFrom) and (
            node.module == "__future__" or (node.module or "").startswith("polyvisor.")
        ):
            continue
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("__all__", "__version__")
            and isinstance(node.value, ast.List | ast.Constant)
        ):
            continue
        work.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
    assert work == [], "polyvisor/__init__.py does work; move it into a module of its own:\n" + "\n".join(work)


def _imports_the_root(tree: ast.Module) -> list[int]:
    """Lines importing the package root itself (``import polyvisor``, ``from polyvisor import connect``); importing
    a submodule through it (``from polyvisor import config``) is no cycle."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(alias.name == "polyvisor" for alias in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "polyvisor" and node.level == 0:
            for alias in node.names:
                if not ((PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir()):
                    lines.append(node.lineno)
    return lines


def test_nothing_the_root_imports_imports_the_root_back() -> None:
    # The command line and the conformance kit are the package's users, and the root imports neither.
    users = (PACKAGE / "cli", PACKAGE / "testing")
    offences = []
    for path, tree in _trees(_sources(PACKAGE)):
        if (path.name == "__init__.py" and path.parent == PACKAGE) or any(user in path.parents for user in users):
            continue
        offences += [f"{path.relative_to(SRC)}:{line}" for line in _imports_the_root(tree)]
    assert offences == [], "these import the package root (a cycle: root -> module -> root):\n" + "\n".join(offences)


def test_the_root_imports_neither_the_command_line_nor_the_kit() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {m for m in modules if m.startswith(("polyvisor.cli", "polyvisor.testing"))}


def test_connecting_to_memory_imports_no_test_runner() -> None:
    """memory:// lives in the kit's package, yet a program that only connects to it does not import pytest."""
    script = (
        "import sys, polyvisor\n"
        "with polyvisor.connect('memory:///layout') as conn:\n"
        "    conn.list()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'pytest', '_pytest', 'hypothesis'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_the_model_imports_no_room_but_the_errors() -> None:
    """Frozen values depend on nothing but the error tree (no model <-> provisioning cycle)."""
    tree = ast.parse((PACKAGE / "model.py").read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {m for m in modules if m.startswith("polyvisor")} == {"polyvisor.errors"}


def _types_in(hint: object) -> Iterator[type]:
    if isinstance(hint, type):
        yield hint
    for argument in typing.get_args(hint):
        yield from _types_in(argument)


def _signatures(module: ModuleType) -> Iterator[tuple[str, object]]:
    """Every public callable a module exports, with its public methods and properties: (label, function)."""
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            yield name, obj
        if not inspect.isclass(obj) or issubclass(obj, BaseException | enum.Enum):
            continue
        for member_name in dir(obj):
            if _private(member_name) or (member_name.startswith("__") and member_name != "__init__"):
                continue
            member = inspect.getattr_static(obj, member_name)
            if isinstance(member, property):
                member = member.fget
            elif isinstance(member, staticmethod | classmethod):
                member = member.__func__
            if inspect.isfunction(member):
                yield f"{name}.{member_name}", member


@pytest.mark.parametrize("module", [polyvisor, polyvisor.aio], ids=lambda module: module.__name__)
def test_every_type_in_a_public_signature_is_exported(module: ModuleType) -> None:
    exported = {id(getattr(polyvisor, name)) for name in polyvisor.__all__}
    exported |= {id(getattr(polyvisor.aio, name)) for name in polyvisor.aio.__all__}
    # The backend interface's own values (deadlines, event sinks) are for backend authors, in polyvisor.backend.
    for_backends = {id(getattr(polyvisor.backend, name)) for name in polyvisor.backend.__all__}
    missing: dict[str, list[str]] = {}
    for label, function in _signatures(module):
        names = {**vars(polyvisor), **vars(polyvisor.aio), **function.__globals__}  # type: ignore[attr-defined]
        hints = typing.get_type_hints(function, globalns=names)
        allowed = exported | for_backends if label.startswith("Backend.") else exported
        for hint in hints.values():
            for kind in _types_in(hint):
                if kind.__module__.startswith("polyvisor") and id(kind) not in allowed:
                    missing.setdefault(f"{kind.__module__}.{kind.__qualname__}", []).append(label)
    assert missing == {}, f"types of public signatures missing from {module.__name__}.__all__: {missing}"
