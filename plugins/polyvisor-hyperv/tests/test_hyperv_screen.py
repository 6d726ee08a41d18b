"""The screen on Hyper-V: VMConnect's details for a running VM over both transports, and the options Hyper-V does
not have (a protocol, a video model, a screenshot) refused before anything is made."""

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
    assert not {Feature.SCREENSHOT, Feature.GRAPHICS_VNC, Feature.VIDEO_VGA} & conn.capabilities.features
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
        with pytest.raises(UnsupportedError) as raised:
            vm.screenshot()
        assert raised.value.feature is Feature.SCREENSHOT
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
