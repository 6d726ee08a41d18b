"""``polyvisor graphics`` and ``polyvisor screenshot`` against a memory:// host: connection details as text and JSON
(never the password), a PNG written whole, and the exit codes of a VM without a screen."""

from __future__ import annotations

from pathlib import Path

from polyvisor import PowerState, png
from polyvisor.cli.exitcodes import INVALID_STATE, UNSUPPORTED

from .conftest import Lab, Run, as_json


def test_graphics_says_how_to_connect_and_never_shows_the_password(run: Run, lab: Lab) -> None:
    lab.add("desk", PowerState.RUNNING, graphics={"protocol": "spice", "password": "Desk-pw-42"}, video="qxl")
    record = as_json(run("graphics", "desk", "--json"))
    assert (record["vm"], record["protocol"], record["host"], record["port"]) == ("desk", "spice", "127.0.0.1", 5900)
    assert record["uri"] == "spice://127.0.0.1:5900"
    assert record["password_required"] is True
    assert record["tunnel"] == []
    text = run("graphics", "desk").stdout
    assert "spice://127.0.0.1:5900" in text
    assert "required" in text
    assert "Desk-pw-42" not in text + str(record)


def test_screenshot_writes_a_png_file(run: Run, lab: Lab, tmp_path: Path) -> None:
    lab.add("desk", PowerState.RUNNING, graphics="vnc")
    target = tmp_path / "desk.png"
    record = as_json(run("screenshot", "desk", str(target), "--json"))
    image = png.decode(target.read_bytes())
    assert (record["width"], record["height"], record["bytes"]) == (image.width, image.height, target.stat().st_size)
    assert len(image.colours()) > 1
    assert [path.name for path in tmp_path.iterdir()] == ["desk.png"]  # no partial file left beside it


def test_a_vm_without_a_screen_is_refused_with_the_unsupported_code(run: Run, lab: Lab, tmp_path: Path) -> None:
    headless = run("graphics", "web")
    assert headless.exit_code == UNSUPPORTED
    assert "no graphical console" in headless.output
    lab.add("off", graphics="vnc")
    refused = run("screenshot", "off", str(tmp_path / "off.png"))
    assert refused.exit_code == INVALID_STATE
    assert "stopped" in refused.output
    assert not (tmp_path / "off.png").exists()
