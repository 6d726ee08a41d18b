"""The loopback host's layout: a program of its own (it imports nothing from polyvisor or its backends), in layers
that import each other only downwards."""

from __future__ import annotations

import ast
from pathlib import Path

import polyvisor_hyperv_loopback

PACKAGE = Path(polyvisor_hyperv_loopback.__file__).parent
NAME = "polyvisor_hyperv_loopback"


def _module_name(path: Path) -> str:
    parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved, at any depth of the file (lazy imports too)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            # ``from . import x`` and ``from pkg import module`` name modules too.
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _own_imports(path: Path) -> set[str]:
    """The modules of this package that ``path`` imports."""
    modules = {_module_name(other) for other in PACKAGE.rglob("*.py")}
    return {name for name in _imports(path) if name in modules}


def test_the_host_imports_nothing_from_polyvisor() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules
    foreign = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in modules
        for name in _imports(path)
        if name.split(".")[0].startswith("polyvisor") and name.split(".")[0] != NAME
    }
    assert foreign == set()


def test_the_wire_reaches_the_engine_only_through_engine_api() -> None:
    wire = sorted((PACKAGE / "wire").rglob("*.py"))
    assert len(wire) > 5
    outside = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in wire
        for name in _own_imports(path)
        if not name.startswith(f"{NAME}.wire") and name != f"{NAME}.engine_api"
    }
    assert outside == set()


def test_engine_api_imports_nothing_of_the_host() -> None:
    assert _own_imports(PACKAGE / "engine_api.py") == set()


def test_the_powershell_language_knows_no_cmdlet_and_no_hyperv() -> None:
    language = sorted((PACKAGE / "powershell").rglob("*.py"))
    assert len(language) > 5
    outside = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in language
        for name in _own_imports(path)
        if not name.startswith(f"{NAME}.powershell") and name != f"{NAME}.engine_api"
    }
    assert outside == set()


def test_the_package_root_holds_only_the_entry_points_and_the_layers() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    layers = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert modules == {"__init__", "__main__", "launch", "realm", "loopback", "engine", "engine_api"}
    assert layers == {"wire", "powershell", "hyperv", "cmdlets"}


def test_the_hyperv_model_knows_no_cmdlet_and_no_wire() -> None:
    model = sorted((PACKAGE / "hyperv").rglob("*.py"))
    assert len(model) > 5
    upward = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in model
        for name in _own_imports(path)
        if name.startswith((f"{NAME}.cmdlets", f"{NAME}.wire", f"{NAME}.engine"))
    }
    assert upward == set()


def test_the_cmdlets_know_no_wire() -> None:
    cmdlets = sorted((PACKAGE / "cmdlets").rglob("*.py"))
    assert len(cmdlets) > 5
    upward = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in cmdlets
        for name in _own_imports(path)
        if name.startswith(f"{NAME}.wire")
    }
    assert upward == set()


def test_hyperv_host_composes_its_rooms_and_forwards_none_of_their_verbs() -> None:
    from polyvisor_hyperv_loopback.hyperv import HyperVHost
    from polyvisor_hyperv_loopback.hyperv.state import HostState

    # The class adds only its constructor to the shared state; cmdlets call host.power.start_vm and the like.
    assert {name for name in vars(HyperVHost) if not name.startswith("__")} == set()
    host = HyperVHost()
    rooms = {name: room for name, room in vars(host).items() if name not in vars(HostState())}
    assert set(rooms) == {
        "checkpoints",
        "disks",
        "display",
        "drives",
        "guests",
        "hardware",
        "lifecycle",
        "metering",
        "netnat",
        "network",
        "power",
    }
    room_verbs = {verb for room in rooms.values() for verb in dir(type(room)) if not verb.startswith("_")}
    assert room_verbs
    assert room_verbs & set(dir(HyperVHost)) == set()
    assert {name for name in vars(HostState) if not name.startswith("_")} & room_verbs == set()
    source = ast.parse((PACKAGE / "hyperv" / "host.py").read_text(encoding="utf-8"))
    (cls,) = [node for node in source.body if isinstance(node, ast.ClassDef) and node.name == "HyperVHost"]
    assert cls.end_lineno is not None
    assert cls.end_lineno - cls.lineno < 60
