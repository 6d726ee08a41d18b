"""Rules of the repository itself: text only (binaries are built by scripts, never committed)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_check() -> ModuleType:
    spec = importlib.util.spec_from_loader(
        "check_text_only",
        importlib.machinery.SourceFileLoader("check_text_only", str(ROOT / "scripts" / "check-text-only")),
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_repository_holds_no_binary_file() -> None:
    assert load_check().offenders(ROOT) == []


def test_a_committed_wheel_or_a_large_file_is_named(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "tool.whl").write_bytes(b"PK\x03\x04\0\0binary")
    (tmp_path / "big.txt").write_text("x" * (600 * 1024))
    (tmp_path / "fine.py").write_text("print('text')\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "tool.whl"], check=True)
    found = load_check().offenders(tmp_path)
    assert len(found) == 2
    assert found[0].startswith("big.txt: 614400 bytes")
    assert found[1].startswith("tool.whl: binary")
