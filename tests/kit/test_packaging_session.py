"""The packaging check (nox session ``packaging``) covers every distribution of the repository, and CI runs it."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


@functools.cache  # once: nox registers the file's sessions as it is imported
def load_noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("polyvisor_noxfile", ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_packaging_session_builds_every_distribution_of_the_repository() -> None:
    noxfile = load_noxfile()
    tracked = subprocess.run(
        ["git", "ls-files", "*pyproject.toml"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    distributions = {(ROOT / path).parent for path in tracked}
    assert distributions == {*noxfile.DISTRIBUTIONS, *noxfile.KIT_TEST_DISTRIBUTIONS}


def test_scripts_test_runs_the_packaging_session() -> None:
    # scripts/test (what .ci/run runs) runs nox's default sessions.
    noxfile = load_noxfile()
    assert "packaging" in noxfile.nox.options.sessions
    assert "nox --no-venv ||" in (ROOT / "scripts" / "test").read_text(encoding="utf-8")
