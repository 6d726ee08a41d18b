"""A VM's screen: graphics and video asked for in the spec, how to connect, a screenshot that is a real PNG.

Each case runs where its capability is declared: ``graphics`` and ``screenshot`` (the calls), ``graphics-vnc``,
``graphics-spice``, ``graphics-none``, ``graphics-password`` and the ``video-*`` models (what a spec may ask for).
One case starts a VM (the kit's spec: on a real host a real guest), and takes both the connection details and a
screenshot from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from polyvisor import (
    VM,
    Connection,
    Feature,
    GraphicsSpec,
    InvalidStateError,
    PowerState,
    Secret,
    UnsupportedError,
    ValidationError,
)
from polyvisor.png import decode
from polyvisor.testing import eventually
from polyvisor.testing.fixtures import SpecFactory, unique_name
from polyvisor.testing.suite._support import require

VMFactory = Callable[..., VM]

PASSWORD = "Kit-pw1"  # 7 characters: within VNC's 8


def _console_spec(conn: Connection) -> dict[str, Any]:
    """The spec overrides that give a VM a graphical console here (none needed where every VM has one)."""
    if conn.supports(Feature.GRAPHICS_VNC):
        password = {"password": PASSWORD} if conn.supports(Feature.GRAPHICS_PASSWORD) else {}
        return {"graphics": GraphicsSpec(protocol="vnc", **password)}  # type: ignore[arg-type]  # str is taken
    if conn.supports(Feature.GRAPHICS_SPICE):
        return {"graphics": "spice"}
    return {}


def test_a_running_vm_says_how_to_reach_its_screen_and_shows_it(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.GRAPHICS)
    overrides = _console_spec(polyvisor_connection)
    vm = polyvisor_vm_factory("scr", **overrides)
    require(vm, Feature.GRAPHICS)
    with pytest.raises(InvalidStateError) as stopped:
        vm.graphics()
    assert stopped.value.state is PowerState.STOPPED
    vm.start()
    info = vm.graphics()
    assert info.protocol in ("vnc", "spice", "rdp")
    assert 0 < info.port <= 65535
    assert info.host
    if "graphics" in overrides:
        asked = overrides["graphics"]
        assert info.protocol == (asked if isinstance(asked, str) else asked.protocol.value)
        assert info.password_required == (isinstance(asked, GraphicsSpec) and asked.password is not None)
    assert PASSWORD not in repr(info)
    assert PASSWORD not in str(info.as_dict())
    if not vm.capabilities().supports(Feature.SCREENSHOT):
        return
    # The guest may not have drawn yet right after power-on: wait until the screen is more than one colour.
    image = eventually(
        lambda: shot if len((shot := decode(vm.screenshot())).colours()) > 1 else None,
        timeout=60,
        what=f"a screenshot of {vm.seen_name} with more than one colour",
        interval=0.5,
    )
    assert image.width > 0
    assert image.height > 0
    if vm.capabilities().supports(Feature.PAUSE):
        vm.pause()
        assert decode(vm.screenshot()).width > 0  # a paused VM still shows its last frame (its mode may differ)
        assert vm.graphics().port == info.port


def test_a_stopped_vm_has_no_screenshot(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    require(polyvisor_connection, Feature.SCREENSHOT)
    vm = polyvisor_vm_factory("scr", **_console_spec(polyvisor_connection))
    require(vm, Feature.SCREENSHOT)
    with pytest.raises(InvalidStateError) as raised:
        vm.screenshot()
    assert raised.value.accepted == (PowerState.RUNNING, PowerState.PAUSED)


def test_a_vm_without_a_console_says_so(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    require(polyvisor_connection, Feature.GRAPHICS, Feature.GRAPHICS_NONE)
    vm = polyvisor_vm_factory("scr", graphics="none")
    assert not vm.capabilities().supports(Feature.GRAPHICS)
    with pytest.raises(UnsupportedError) as raised:
        vm.graphics()
    assert raised.value.feature is Feature.GRAPHICS
    assert vm.seen_name in str(raised.value)


_ASKS: list[tuple[Feature, dict[str, Any]]] = [
    (Feature.GRAPHICS_VNC, {"graphics": "vnc"}),
    (Feature.GRAPHICS_SPICE, {"graphics": "spice"}),
    (Feature.GRAPHICS_NONE, {"graphics": "none"}),
    (Feature.GRAPHICS_PASSWORD, {"graphics": {"protocol": "spice", "password": "p"}}),
    (Feature.VIDEO_VIRTIO, {"video": "virtio"}),
    (Feature.VIDEO_QXL, {"video": "qxl"}),
    (Feature.VIDEO_VGA, {"video": "vga"}),
    (Feature.VIDEO_BOCHS, {"video": "bochs"}),
    (Feature.VIDEO_NONE, {"video": "none"}),
]


@pytest.mark.parametrize(("feature", "asks"), _ASKS, ids=[feature.value for feature, _ in _ASKS])
def test_an_undeclared_screen_option_is_refused_before_anything_is_made(
    polyvisor_connection: Connection, polyvisor_spec: SpecFactory, feature: Feature, asks: dict[str, Any]
) -> None:
    require(polyvisor_connection, Feature.CREATE)
    if polyvisor_connection.supports(feature):
        pytest.skip(f"{feature.value} is declared: nothing to refuse")
    name = unique_name("scr")
    with pytest.raises(UnsupportedError) as raised:
        polyvisor_connection.create(polyvisor_spec(name, **asks))
    assert raised.value.feature in (feature, Feature.GRAPHICS_SPICE)  # the password case asks for spice too
    assert not polyvisor_connection.exists(name)


def test_a_graphics_password_never_shows() -> None:
    spec = GraphicsSpec(protocol="spice", password="hunter2-secret")  # type: ignore[arg-type]  # str is taken
    assert isinstance(spec.password, Secret)
    assert "hunter2" not in repr(spec)
    with pytest.raises(ValidationError) as raised:
        GraphicsSpec(protocol="vnc", password="hunter2-secret")  # type: ignore[arg-type]  # str is taken
    assert "hunter2" not in str(raised.value)
