"""docs/architectures.md's example, run as the page shows it: a riscv64 guest booted on qemu:///system (libvirt's
test driver has no other architecture than i686), its output the page's, and nothing left behind."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import libvirt

from .support import TEST_PREFIX, cleanup, ensure_environment

ROOT = Path(__file__).resolve().parents[4]
PAGE = ROOT / "docs" / "architectures.md"
EXAMPLE = ROOT / "docs" / "examples" / "other_arch.py"


def _documented_output() -> list[str]:
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index("(other-arch-output)=") + 2
    return lines[start : lines.index("```", start)]


def test_the_architectures_page_example_boots_a_riscv64_guest_and_prints_what_the_page_shows(
    libvirt_conn: libvirt.virConnect,
) -> None:
    image = ensure_environment("riscv64")
    name = f"{TEST_PREFIX}docs-arch-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, str(EXAMPLE), "qemu:///system", "riscv64", str(image.kernel), str(image.initrd)]
    argv += [image.cmdline, name, image.marker]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=400, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        expected = [line.replace("arch-demo", name) for line in _documented_output()]
        assert result.stdout.splitlines() == expected
        assert name not in {dom.name() for dom in libvirt_conn.listAllDomains()}
    finally:
        cleanup(libvirt_conn, name)
