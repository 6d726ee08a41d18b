"""The markers say what tests need: assigned by directory and fixture (conftest.py at the root), registered, and
the fast lane selects exactly the tests that need none of them."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
TEST_TREES = [ROOT / "tests", ROOT / "integrations" / "ansible" / "tests", *sorted((ROOT / "plugins").glob("*/tests"))]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ASSIGN = _load("polyvisor_root_conftest", ROOT / "conftest.py")


def _sources() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for tree in TEST_TREES for path in tree.rglob("*.py")}


def test_every_component_marker_is_registered() -> None:
    registered = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    names = {line.split(":")[0] for line in registered}
    assert set(ASSIGN.COMPONENTS) <= names
    assert "hyperv" not in names, "the loopback host's marker is `loopback`"


def test_no_test_uses_the_old_marker() -> None:
    old = "mark." + "hyperv"
    users = [str(path.relative_to(ROOT)) for path, text in _sources().items() if old in text]
    assert users == [], "name the component: pytest.mark.loopback"


def test_every_fixture_and_directory_of_the_tables_exists() -> None:
    # A renamed fixture or a moved directory would silently drop its tests' markers (and let them into the fast lane).
    text = "\n".join(_sources().values())
    missing = [name for name in ASSIGN.BY_FIXTURE if not re.search(rf"\bdef {name}\(", text)]
    assert missing == []
    assert all((ROOT / directory).is_dir() for directory in ASSIGN.BY_DIRECTORY)


def test_the_fast_lane_leaves_out_exactly_the_component_markers(noxfile: ModuleType) -> None:
    assert " and ".join(f"not {marker}" for marker in ASSIGN.COMPONENTS) == noxfile.FAST


def _collected(marker: str, *paths: str) -> tuple[int, int]:
    """How many tests of ``paths`` carry ``marker``, and how many there are."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 5), result.stdout + result.stderr
    found = re.search(r"(\d+)(?:/(\d+))? tests? collected", result.stdout)
    assert found is not None, result.stdout
    selected = int(found.group(1))
    return selected, int(found.group(2) or selected)


def test_markers_follow_what_tests_need() -> None:
    # Every real-guest test carries realguest and libvirtd, by its directory.
    selected, total = _collected(
        "realguest and libvirtd", "plugins/polyvisor-libvirt/tests/realguest/test_realguest_labels.py"
    )
    assert selected == total > 0
    # The mixed fleet reaches qemu:///system and the loopback host: its tests say both, by their fixture.
    selected, total = _collected("libvirtd and loopback", "tests/fleet/test_fleet_integration.py")
    assert selected == total > 0
