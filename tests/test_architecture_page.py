"""docs/architecture.md names the rooms of the tree as they are: every path it names exists, and every room of the
core, of both backends' shared skeleton and of the loopback host's layers is named there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
CORE = ROOT / "src" / "polyvisor"
BACKENDS = [
    ROOT / "plugins" / "polyvisor-libvirt" / "src" / "polyvisor_libvirt",
    ROOT / "plugins" / "polyvisor-hyperv" / "src" / "polyvisor_hyperv",
]
LOOPBACK = ROOT / "plugins" / "polyvisor-hyperv-loopback" / "src" / "polyvisor_hyperv_loopback"
PATH = re.compile(r"`([\w./-]+(?:\.py|/))`")


def sections() -> dict[str, str]:
    """The page's ``##`` sections by the path in their title (``src/polyvisor/``), with their text."""
    found: dict[str, str] = {}
    for block in re.split(r"^## ", PAGE.read_text(encoding="utf-8"), flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        base = re.search(r"`([\w./-]+/)`", title)
        assert base is not None, f"section {title!r} names no directory in its title"
        found[base.group(1)] = body
    return found


def named(text: str) -> set[str]:
    return {name.rstrip("/") for name in PATH.findall(text)}


def exists(root: Path, name: str) -> bool:
    """A name with a directory in it is a path from the repository's root; a bare one is found under ``root``."""
    if "/" in name:
        return (ROOT / name).exists()
    return any(root.rglob(name))


def test_every_path_the_page_names_exists_under_its_section() -> None:
    for base, body in sections().items():
        root = ROOT / base
        assert root.is_dir(), base
        missing = [name for name in named(body) if not exists(root, name)]
        assert not missing, f"docs/architecture.md names {missing} under {base}, which do not exist"


def test_every_room_of_the_core_is_named() -> None:
    rooms = {path.stem if path.is_file() else path.name for path in CORE.iterdir()}
    rooms = {room for room in rooms if not room.startswith(("_", ".")) and room != "py"}
    names = {Path(name).stem for name in named(sections()["src/polyvisor/"])}
    assert rooms <= names, f"rooms of src/polyvisor/ missing from docs/architecture.md: {sorted(rooms - names)}"


def test_every_room_both_backends_share_is_named() -> None:
    shared = set.intersection(*({path.stem for path in backend.glob("*.py")} for backend in BACKENDS))
    shared -= {"__init__", "testing"}
    names = {Path(name).stem for name in named(sections()["plugins/"])}
    assert shared <= names, f"shared backend rooms missing from docs/architecture.md: {sorted(shared - names)}"


def test_every_layer_of_the_loopback_host_is_named() -> None:
    layers = {path.name for path in LOOPBACK.iterdir() if path.is_dir() and not path.name.startswith("_")}
    names = named(sections()["plugins/polyvisor-hyperv-loopback/"])
    assert layers <= names, f"loopback layers missing from docs/architecture.md: {sorted(layers - names)}"
