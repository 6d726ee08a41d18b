"""The screen on Hyper-V: VMConnect's details and a screenshot (the WMI thumbnail) of a running VM over both
transports, and the options Hyper-V does not have (a protocol, a video model) refused before anything is made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, InvalidStateError, UnsupportedError
from polyvisor_hyperv.display import VMCONNECT_PORT

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]


def test_a_running_vm_gives_vmconnects_details(
    uri_for: UriFor, loopback_http: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(uri_for(loopback_http, transport))
    assert conn.supports(Feature.GRAPHICS)
    assert conn.supports(Feature.SCREENSHOT)
    assert not {Feature.GRAPHICS_VNC, Feature.VIDEO_VGA} & conn.capabilities.features
    vm = conn.create({"name": vm_name})
    try:
        with pytest.raises(InvalidStateError):
            vm.graphics()
        vm.start()
        info = vm.graphics()
        assert (info.protocol, info.port, info.host, info.password_required) == (
            "rdp",
            VMCONNECT_PORT,
            conn.host,
            False,
        )
        assert info.viewer == ("vmconnect.exe", conn.host, vm_name)
        assert vm.uuid in info.detail
        assert info.uri == ""
    finally:
        vm.stop()
        vm.delete(storage=True)


@pytest.mark.parametrize("asks", [{"graphics": "vnc"}, {"graphics": "none"}, {"video": "virtio"}])
def test_a_protocol_or_video_model_is_refused_before_anything_is_made(
    uri_for: UriFor, loopback_http: Any, connect: Connect, vm_name: str, asks: dict[str, str]
) -> None:
    conn = connect(uri_for(loopback_http, "psrp"))
    with pytest.raises(UnsupportedError):
        conn.create({"name": vm_name, **asks})
    assert not conn.exists(vm_name)


def test_a_screenshot_is_the_thumbnail_of_the_screen_as_a_png(
    uri_for: UriFor, loopback_http: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    from polyvisor.png import decode, is_png

    conn = connect(uri_for(loopback_http, transport))
    vm = conn.create({"name": vm_name})
    scripts_before = len(loopback_http.engine.scripts_run)
    try:
        with pytest.raises(InvalidStateError) as refused:
            vm.screenshot()  # the verb engine refuses first: an Off VM shows nothing
        assert refused.value.state is polyvisor.PowerState.STOPPED
        vm.start()
        shot = vm.screenshot()
        assert is_png(shot)
        image = decode(shot)
        assert (image.width, image.height) == (1024, 768)  # the screen's mode, from its video head
        assert len(image.colours()) > 2, "the modelled screen is not one colour"
        vm.pause()
        assert decode(vm.screenshot()).pixels == image.pixels, "a paused VM shows its last frame"
        scripts = loopback_http.engine.scripts_run[scripts_before:]
        assert any("GetVirtualSystemThumbnailImage" in script for script in scripts)
        assert all(vm.uuid not in script and vm.uuid.upper() not in script for script in scripts)
    finally:
        vm.stop()
        vm.delete(storage=True)


def test_the_thumbnails_refusals_are_polyvisor_errors(
    uri_for: UriFor, loopback_http: Any, connect: Connect, vm_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polyvisor_hyperv_loopback.hyperv.display import Display

    conn = connect(uri_for(loopback_http, "winrm"))
    vm = conn.create({"name": vm_name})
    try:
        vm.start()
        # The VM stops showing a screen between the engine's state check and the call: Hyper-V's 32775.
        monkeypatch.setattr(Display, "thumbnail", lambda self, target, w, h: (32775, None))
        with pytest.raises(InvalidStateError) as refused:
            vm.screenshot()
        assert refused.value.state is polyvisor.PowerState.RUNNING
        assert "32775" in str(refused.value)
        monkeypatch.setattr(Display, "thumbnail", lambda self, target, w, h: (32769, None))
        with pytest.raises(polyvisor.BackendError, match="access denied"):
            vm.screenshot()
    finally:
        monkeypatch.undo()
        vm.stop()
        vm.delete(storage=True)
