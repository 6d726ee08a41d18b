"""The ``polyvisor`` command line: every verb of the library, tables for people and JSON for scripts.

Run ``polyvisor --help``; the exit codes are in :mod:`polyvisor.cli.exitcodes`.
"""

from __future__ import annotations

from polyvisor.cli.app import cli, main

__all__ = ["cli", "main"]
