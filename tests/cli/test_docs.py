"""docs/cli.md documents every command, every global option and every exit code the code defines."""

from __future__ import annotations

import re
from pathlib import Path

import click

from polyvisor.cli import cli, exitcodes
from polyvisor.cli.exitcodes import EXIT_CODES

DOC = (Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
HEADINGS = [line for line in DOC.splitlines() if line.startswith("### ")]


def _command_names(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names.extend(_command_names(command, f"{prefix}{name} "))
        else:
            names.append(prefix + name)
    return names


def test_every_command_has_a_heading() -> None:
    names = _command_names(cli)
    # wait-ready joined address; pool (3), image (4), network (3), stats, exporter, console, exec, copy-in,
    # copy-out, graphics and screenshot joined
    assert len(names) == 46
    for name in names:
        assert any(f"`{name}" in heading for heading in HEADINGS), name


def test_every_global_option_is_described() -> None:
    for param in cli.params:
        for opt in param.opts:
            assert f"`{opt}" in DOC, opt


def test_every_exit_code_is_in_the_table() -> None:
    rows = dict(re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", DOC, flags=re.MULTILINE))
    assert sorted(int(code) for code in rows) == [code for code, _ in EXIT_CODES]
    for code, constant in rows.items():
        assert getattr(exitcodes, constant) == int(code)
