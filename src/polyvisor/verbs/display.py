"""A VM's screen as steps: what a spec's graphics and video need, how to reach the screen, a screenshot (no I/O).

Both calls need a VM whose screen exists: running or paused (a paused VM shows its last frame). A stopped VM has
no screen, and on libvirt no port yet (an automatic port is chosen when the VM starts), so it is refused with
:class:`~polyvisor.errors.InvalidStateError` rather than answered with a port that is not there.
"""

from __future__ import annotations

from polyvisor.backend import Deadline, validate_timeout
from polyvisor.errors import BackendError, InvalidStateError, UnsupportedError
from polyvisor.model import (
    Capabilities,
    Feature,
    GraphicsInfo,
    GraphicsProtocol,
    PowerState,
    VideoModel,
    VMSpec,
    VMStatus,
)
from polyvisor.png import is_png
from polyvisor.verbs.deadlines import READ_GRACE
from polyvisor.verbs.ops import Handle, Probe, Query, Read, Steps

__all__ = ["SCREEN_STATES", "display_needs", "graphics", "screenshot"]

SCREEN_STATES = (PowerState.RUNNING, PowerState.PAUSED)
"""The states in which a VM has a screen."""

_PROTOCOL_FEATURES = {
    GraphicsProtocol.VNC: Feature.GRAPHICS_VNC,
    GraphicsProtocol.SPICE: Feature.GRAPHICS_SPICE,
    GraphicsProtocol.NONE: Feature.GRAPHICS_NONE,
}
_VIDEO_FEATURES = {
    VideoModel.VIRTIO: Feature.VIDEO_VIRTIO,
    VideoModel.QXL: Feature.VIDEO_QXL,
    VideoModel.VGA: Feature.VIDEO_VGA,
    VideoModel.BOCHS: Feature.VIDEO_BOCHS,
    VideoModel.NONE: Feature.VIDEO_NONE,
}


def display_needs(spec: VMSpec) -> list[tuple[bool, Feature]]:
    """The features a spec's ``graphics`` and ``video`` need, as (needed, feature) pairs for the create checks."""
    needs = []
    if spec.graphics is not None:
        needs.append((True, _PROTOCOL_FEATURES[spec.graphics.protocol]))
        needs.append((spec.graphics.password is not None, Feature.GRAPHICS_PASSWORD))
    if spec.video is not None:
        needs.append((True, _VIDEO_FEATURES[spec.video]))
    return needs


_NONE_HERE = {
    Feature.GRAPHICS: "has no graphical console (its definition has no VNC or SPICE display); give its spec "
    "graphics='vnc' or 'spice'",
    Feature.SCREENSHOT: "has no display adapter to capture (no video device, or video 'none'); give its spec a "
    "video model or graphics='vnc'",
}


def _require_screen(vm: Handle, feature: Feature, deadline: Deadline) -> Steps[None]:
    """Like :func:`~polyvisor.verbs.engine.require`, saying when it is this VM, not the backend, that lacks it."""
    caps: Capabilities = yield Probe(deadline)
    if not caps.supports(feature) and vm.connection.capabilities.supports(feature):
        raise UnsupportedError(
            f"{vm.seen_name!r} {_NONE_HERE[feature]}", feature=feature, host=vm.connection.host, vm=vm.seen_name
        )
    caps.require(feature, host=vm.connection.host, vm=vm.seen_name)


def _screen_state(vm: Handle, deadline: Deadline, doing: str) -> Steps[None]:
    status: VMStatus = yield Read(deadline.extended(READ_GRACE))
    if status.state not in SCREEN_STATES:
        raise InvalidStateError(
            f"{vm.seen_name!r} is {status.state.value}, so it has no screen to {doing}; start it first",
            state=status.state,
            accepted=SCREEN_STATES,
            host=vm.connection.host,
            vm=vm.seen_name,
        )


def graphics(vm: Handle, timeout: float) -> Steps[GraphicsInfo]:
    """How to reach the screen of a running (or paused) VM from this machine."""
    validate_timeout(timeout)
    deadline = Deadline(timeout, vm.connection.clock)
    yield from _require_screen(vm, Feature.GRAPHICS, deadline)
    yield from _screen_state(vm, deadline, "connect to")
    uuid = vm.uuid
    info: GraphicsInfo = yield Query(lambda b: b.graphics(uuid), deadline)
    return info


def screenshot(vm: Handle, timeout: float) -> Steps[bytes]:
    """The screen of a running (or paused) VM as PNG bytes."""
    validate_timeout(timeout)
    deadline = Deadline(timeout, vm.connection.clock)
    yield from _require_screen(vm, Feature.SCREENSHOT, deadline)
    yield from _screen_state(vm, deadline, "capture")
    uuid = vm.uuid
    data: bytes = yield Query(lambda b: b.screenshot(uuid, deadline), deadline)
    if not is_png(data):
        raise BackendError(
            f"the backend returned {len(data)} bytes that are not a PNG for the screenshot of {vm.seen_name!r}",
            host=vm.connection.host,
            vm=vm.seen_name,
        )
    return data
