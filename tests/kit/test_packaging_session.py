"""The packaging check (nox session ``packaging``) covers every distribution of the repository, and CI runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def test_the_packaging_session_builds_every_distribution_of_the_repository(noxfile: ModuleType) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*pyproject.toml"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    distributions = {(ROOT / path).parent for path in tracked}
    assert distributions == {*noxfile.DISTRIBUTIONS, *noxfile.KIT_TEST_DISTRIBUTIONS}


def test_scripts_test_runs_the_packaging_session(noxfile: ModuleType) -> None:
    # scripts/test (what .ci/run runs) runs nox's default sessions.
    assert "packaging" in noxfile.nox.options.sessions
    assert "nox --no-venv ||" in (ROOT / "scripts" / "test").read_text(encoding="utf-8")
