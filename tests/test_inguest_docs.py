"""The console and guest-command pages' examples run on memory:// and print what the pages show."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _promised(page: str) -> list[str]:
    """The lines of the first ``text`` block after "it prints" on the page."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = re.search(r"it prints[^\n]*\n\n```text\n(.*?)```", text, re.DOTALL)
    assert found, f"{page} shows no output"
    return found.group(1).splitlines()


@pytest.mark.parametrize(
    ("page", "example"), [("console.md", "console_session.py"), ("guest-commands.md", "guest_commands.py")]
)
def test_the_example_prints_what_its_page_shows(page: str, example: str) -> None:
    assert f"```{{literalinclude}} examples/{example}" in (DOCS / page).read_text(encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(DOCS / "examples" / example)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == _promised(page)
