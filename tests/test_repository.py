"""Rules of the repository itself: text only (binaries are built by scripts, never committed)."""

from __future__ import annotations

import runpy
import subprocess
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def offenders(root: Path) -> list[str]:
    """The check lint runs (scripts/check-text-only), applied to ``root``."""
    check: Callable[[Path], list[str]] = runpy.run_path(str(ROOT / "scripts" / "check-text-only"))["offenders"]
    return check(root)


def test_the_repository_holds_no_binary_file() -> None:
    assert offenders(ROOT) == []


def test_a_committed_wheel_or_a_large_file_is_named(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "tool.whl").write_bytes(b"PK\x03\x04\0\0binary")
    (tmp_path / "big.txt").write_text("x" * (600 * 1024))
    (tmp_path / "fine.py").write_text("print('text')\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "tool.whl"], check=True)
    found = offenders(tmp_path)
    assert len(found) == 2
    assert found[0].startswith("big.txt: 614400 bytes")
    assert found[1].startswith("tool.whl: binary")
