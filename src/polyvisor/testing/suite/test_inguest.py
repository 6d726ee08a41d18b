"""Inside the guest: the serial console stream, commands and files (each gated by its feature)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from polyvisor import (
    VM,
    Feature,
    GuestCredentials,
    InUseError,
    InvalidStateError,
    UnsupportedError,
    ValidationError,
)

from ._support import require

VMFactory = Callable[..., VM]


def _descriptors() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def test_a_console_needs_a_running_vm(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("con-off")
    require(vm, Feature.CONSOLE_STREAM)
    with pytest.raises(InvalidStateError):
        vm.console()


def test_one_console_at_a_time_unless_forced(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("con-one")
    require(vm, Feature.CONSOLE_STREAM)
    vm.start()
    with vm.console() as first:
        with pytest.raises(InUseError):
            vm.console()
        with vm.console(force=True):
            assert first.read(timeout=10) == b""  # taken over: the first stream ended
    with vm.console() as again:  # closing released it
        again.write(b"\r")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="no /proc/self/fd to count descriptors in")
def test_console_cycles_leak_no_descriptors(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("con-fd")
    require(vm, Feature.CONSOLE_STREAM)
    vm.start()
    with vm.console():
        pass
    before = _descriptors()
    for _ in range(20):
        with vm.console() as console:
            console.write(b"\r")
    assert _descriptors() == before


def test_stopping_the_vm_ends_the_console(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("con-stop")
    require(vm, Feature.CONSOLE_STREAM)
    vm.start()
    with vm.console() as console:
        vm.stop()
        while console.read(timeout=30):
            pass  # what the guest said last; then the end
        assert console.ended


@pytest.mark.parametrize(
    ("argv", "field"),
    [([], "argv"), ("ls -l", "argv"), (["a\0b"], "argv[0]"), (["printf", b"\xff"], "argv[1]"), ([""], "argv[0]")],
)
def test_exec_refuses_what_no_channel_carries_before_acting(
    polyvisor_vm_factory: VMFactory, argv: object, field: str
) -> None:
    vm = polyvisor_vm_factory("ex-bad")
    require(vm, Feature.GUEST_EXEC)
    with pytest.raises(ValidationError) as caught:
        vm.exec(argv)  # type: ignore[arg-type]  # the wrong types are the point
    assert caught.value.field == field


def test_exec_and_files_need_a_running_vm(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("ex-off")
    require(vm, Feature.GUEST_EXEC)
    credentials = GuestCredentials("user", "pw") if vm.capabilities().supports(Feature.GUEST_LOGIN) else None
    with pytest.raises(InvalidStateError):
        vm.exec(["true"], credentials=credentials)
    if vm.capabilities().supports(Feature.GUEST_FILES):
        with pytest.raises(InvalidStateError):
            vm.read_file("/tmp/x", credentials=credentials)


def test_credentials_are_required_exactly_where_the_channel_logs_in(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("ex-cred")
    require(vm, Feature.GUEST_EXEC)
    if vm.capabilities().supports(Feature.GUEST_LOGIN):
        with pytest.raises(ValidationError) as refused:
            vm.exec(["true"])
        assert refused.value.field == "credentials"
    else:
        with pytest.raises(UnsupportedError) as unsupported:
            vm.exec(["true"], credentials=GuestCredentials("root", "never-shown"))
        assert unsupported.value.feature is Feature.GUEST_LOGIN
        assert "never-shown" not in str(unsupported.value)


def test_guest_paths_must_be_absolute(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("fi-rel")
    require(vm, Feature.GUEST_FILES)
    with pytest.raises(ValidationError):
        vm.read_file("relative/path")
    with pytest.raises(ValidationError):
        vm.write_file("/tmp/a\nb", b"")


def test_guest_credentials_never_show_their_password() -> None:
    credentials = GuestCredentials("admin", "hunter2-secret")
    assert "hunter2-secret" not in repr(credentials) + str(credentials)
