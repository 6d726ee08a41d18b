"""The spinner draws only on a terminal, follows progress messages and clears its line at the end."""

from __future__ import annotations

import io

from polyvisor.cli.progress import Spinner
from polyvisor.testing import eventually


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with Spinner(stream, "working", interval=0.001) as spinner:
        spinner.update("still working")
    assert not spinner.enabled
    assert stream.getvalue() == ""


def test_animates_and_follows_updates_on_a_terminal() -> None:
    stream = Terminal()
    with Spinner(stream, "starting web", interval=0.001) as spinner:
        assert spinner.enabled
        # the thread keeps redrawing
        eventually(lambda: stream.getvalue().count("starting web") >= 3, timeout=5, interval=0.005)
        spinner.update("waiting to become running (now starting)")
        assert "waiting to become running (now starting)" in stream.getvalue()
    text = stream.getvalue()
    assert text.endswith("\r\x1b[K")
    frames = {chunk[0] for chunk in text.split("\r\x1b[K") if chunk}
    assert len(frames) > 1


def test_ascii_frames_when_the_terminal_is_not_utf8() -> None:
    class AsciiTerminal(Terminal):
        encoding = "ascii"

    stream = AsciiTerminal()
    with Spinner(stream, "x", interval=60):
        pass
    assert stream.getvalue().startswith("\r\x1b[K| x")
