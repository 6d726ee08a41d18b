"""The provisioning rules the core enforces for every backend: address waits, reconfigure, resize, and specs.

Address waits poll (no hypervisor sends an event when a guest gets an address). The tests drive them with a
:class:`FakeTime` passed as the connection's clock (:attr:`polyvisor.Connection.clock`) and as the memory host's:
each poll's sleep advances the clock at once, so a guest whose address appears 2.5 s after boot is waited for
without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from polyvisor import (
    VM,
    Connection,
    Feature,
    InvalidStateError,
    NotFoundError,
    PowerState,
    TimeoutError,
    UnsupportedError,
    ValidationError,
    VMSpec,
)
from polyvisor.backend import Backend, Credentials
from polyvisor.model import AddressAnswer, CloneMode, DiskSpec, DynamicMemory, GuestAddress
from polyvisor.provisioning import CloudInit
from polyvisor.provisioning.addresses import AddressFamily, explain, parse_family, pick_address, usable
from polyvisor.testing.faults import calls
from polyvisor.testing.memory import ADDRESS_DELAY_LABEL, ADDRESS_LABEL, MemoryBackend, host_named
from polyvisor.uri import URI


class FakeTime:
    """A :class:`polyvisor.backend.Clock` whose ``sleep`` advances the clock instead of blocking."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


@pytest.fixture
def clock(host_name: str) -> Iterator[FakeTime]:
    """Fake time for the test's memory host; a test passes it to its connection for the core's waits and deadlines."""
    fake = FakeTime()
    host = host_named(host_name)
    saved, host.clock = host.clock, fake.monotonic
    yield fake
    host.clock = saved


def _running(conn: Connection, name: str = "guest", **labels: str) -> VM:
    vm = conn.create({"name": name, "nics": [{}], "labels": labels})
    vm.start()
    return vm


# -- which addresses count --------------------------------------------------------------------------------------
def _address(text: str, source: str = "agent") -> GuestAddress:
    return GuestAddress("eth0", None, text, None, source)


@pytest.mark.parametrize(
    ("text", "family", "expected"),
    [
        ("192.0.2.10", AddressFamily.IPV4, True),
        ("192.0.2.10", AddressFamily.IPV6, False),
        ("192.0.2.10", AddressFamily.ANY, True),
        ("2001:db8::5", AddressFamily.IPV6, True),
        ("2001:db8::5", AddressFamily.IPV4, False),
        ("127.0.0.1", AddressFamily.ANY, False),
        ("::1", AddressFamily.ANY, False),
        ("169.254.3.4", AddressFamily.ANY, False),
        ("fe80::1%eth0", AddressFamily.ANY, False),
        ("0.0.0.0", AddressFamily.ANY, False),
        ("224.0.0.1", AddressFamily.ANY, False),
        ("not an address", AddressFamily.ANY, False),
    ],
)
def test_a_usable_address_is_reachable_and_of_the_family(text: str, family: AddressFamily, expected: bool) -> None:
    assert usable(_address(text), family) is expected


def test_the_first_usable_address_in_source_order_wins() -> None:
    answers = [
        AddressAnswer("agent", (_address("127.0.0.1"), _address("fe80::1"))),
        AddressAnswer("lease", (_address("2001:db8::7", "lease"), _address("192.0.2.7", "lease"))),
        AddressAnswer("arp", (_address("192.0.2.8", "arp"),)),
    ]
    assert pick_address(answers, AddressFamily.IPV4) == _address("192.0.2.7", "lease")
    assert pick_address(answers, AddressFamily.IPV6) == _address("2001:db8::7", "lease")
    assert pick_address(answers, AddressFamily.ANY) == _address("2001:db8::7", "lease")
    assert pick_address(answers[:1], AddressFamily.ANY) is None


def test_explain_says_what_each_source_answered() -> None:
    answers = [
        AddressAnswer("agent", (), "agent not connected"),
        AddressAnswer("lease", (_address("127.0.0.1"),)),
        AddressAnswer("arp", ()),
    ]
    assert explain(answers, AddressFamily.IPV4) == (
        "agent: agent not connected; lease: only 127.0.0.1, none usable as ipv4; arp: no addresses"
    )
    assert explain([], AddressFamily.IPV4) == "no source was asked"


@pytest.mark.parametrize("family", ["ipv5", "IPv4 ", 4])
def test_an_unknown_family_is_refused(family: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_family(family)
    assert caught.value.field == "family"


def test_no_family_means_any() -> None:
    assert parse_family(None) is AddressFamily.ANY
    assert parse_family("ipv6") is AddressFamily.IPV6


# -- wait_for_address ---------------------------------------------------------------------------------------------
def test_wait_for_address_waits_for_a_guest_that_reports_late(mem: Connection, clock: FakeTime) -> None:
    mem.clock = clock
    vm = _running(mem, **{ADDRESS_DELAY_LABEL: "2.5"})
    began = clock.now
    address = vm.wait_for_address(timeout=30)
    assert address.source == "agent"
    assert address.interface == "eth0"
    assert address.address.startswith("10.")
    assert 2.5 <= clock.now - began < 30
    assert clock.slept[0] == 0.25, "the first poll comes soon"
    assert max(clock.slept) <= 2.0, "polls are capped"


def test_wait_for_address_returns_at_once_when_the_guest_has_one(mem: Connection, clock: FakeTime) -> None:
    mem.clock = clock
    vm = _running(mem)
    assert vm.wait_for_address(timeout=0).address == "10.0.0.1"
    assert clock.slept == []


def test_the_family_filter_skips_addresses_of_the_other_family(mem: Connection, clock: FakeTime) -> None:
    mem.clock = clock
    vm = _running(mem)
    assert vm.wait_for_address(family="any").address == "10.0.0.1"
    # The memory guest's only IPv6 addresses are loopback and link-local: none is usable.
    with pytest.raises(TimeoutError) as caught:
        vm.wait_for_address(family=AddressFamily.IPV6, timeout=3)
    message = str(caught.value)
    assert "usable ipv6 address" in message
    assert "agent: only 127.0.0.1, ::1, 10.0.0.1, fe80::5054:ff:fe00:1, none usable as ipv6" in message


def test_a_guest_without_nics_never_has_a_usable_address(mem: Connection, clock: FakeTime) -> None:
    mem.clock = clock
    vm = mem.create({"name": "no-nic"})
    vm.start()
    with pytest.raises(TimeoutError, match=r"only 127\.0\.0\.1, ::1, none usable"):
        vm.wait_for_address(timeout=1)


class ManySources(MemoryBackend):
    """A memory host whose guests are also looked up in DHCP leases and the ARP table (which never know them)."""

    address_sources = ("agent", "lease", "arp")

    def address_answers(self, uuid: str, sources: Sequence[str]) -> list[AddressAnswer]:
        vm = self._vm(uuid)
        mac = vm.nics[0] if vm.nics else "-"
        said = {"lease": f"no lease for {mac}", "arp": f"no ARP entry for {mac}"}
        agent = super().address_answers(uuid, ["agent"])
        return [agent[0] if source == "agent" else AddressAnswer(source, (), said[source]) for source in sources]


def _connect(backend_class: type[Backend], host_name: str, clock: FakeTime | None = None) -> Connection:
    uri = URI.parse(f"memory:///{host_name}")
    if clock is None:
        return Connection(backend_class(uri, Credentials()), uri)
    return Connection(backend_class(uri, Credentials()), uri, clock=clock)


def test_a_timeout_names_each_source_asked_and_its_answer(host_name: str, clock: FakeTime) -> None:
    with _connect(ManySources, host_name, clock) as conn:
        vm = _running(conn, **{ADDRESS_LABEL: "none"})
        began = clock.now
        with pytest.raises(TimeoutError) as caught:
            vm.wait_for_address(timeout=5)
        assert 5 <= clock.now - began <= 5 + 2.0
        message = str(caught.value)
        assert "timed out after 5s waiting for a usable ipv4 address; asked agent, lease, arp: " in message
        assert "agent: agent not connected; lease: no lease for 52:54:00:" in message
        assert "; arp: no ARP entry for 52:54:00:" in message
        assert caught.value.vm == "guest"
        # Asked in the order given; an unknown source is refused before any wait.
        with pytest.raises(TimeoutError, match="asked arp, agent: arp: no ARP entry"):
            vm.wait_for_address(timeout=0, sources=["arp", "agent"])


def test_the_sources_default_to_the_backends(mem: Connection, clock: FakeTime) -> None:
    mem.clock = clock
    vm = _running(mem, **{ADDRESS_LABEL: "none"})
    with pytest.raises(TimeoutError, match=r"asked agent: agent: agent not connected \["):
        vm.wait_for_address(timeout=0)
    assert [a.address for a in vm.addresses()] == []
    other = _running(mem, "reports")
    assert [a.address for a in other.addresses()][:3] == ["127.0.0.1", "::1", "10.0.0.2"]
    assert [a.address for a in other.addresses("agent")][:3] == ["127.0.0.1", "::1", "10.0.0.2"]


@pytest.mark.parametrize("sources", [["lease"], ["agent", "kvp"], [], "arp"])
def test_sources_the_backend_does_not_offer_are_refused(mem: Connection, sources: Any) -> None:
    vm = _running(mem)
    for call in (lambda: vm.wait_for_address(sources=sources), lambda: vm.addresses(sources)):
        with pytest.raises(ValidationError) as caught:
            call()
        assert caught.value.field == "sources"
        assert "this backend offers ['agent']" in str(caught.value)
    assert "address_answers" not in calls(mem)


def test_waiting_for_the_address_of_a_stopped_vm_is_refused(mem: Connection) -> None:
    vm = mem.create({"name": "off", "nics": [{}]})
    with pytest.raises(InvalidStateError) as caught:
        vm.wait_for_address(timeout=60)
    assert caught.value.state is PowerState.STOPPED
    assert caught.value.accepted == (PowerState.RUNNING,)
    assert "start it first" in str(caught.value)


def test_a_vm_that_stops_while_waiting_ends_the_wait(mem: Connection, clock: FakeTime) -> None:
    mem.clock = clock
    vm = _running(mem, **{ADDRESS_DELAY_LABEL: "30"})
    clock.on_sleep = lambda: mem.vm("guest").stop() if len(clock.slept) == 2 else None
    with pytest.raises(InvalidStateError) as caught:
        vm.wait_for_address(timeout=60)
    assert caught.value.state is PowerState.STOPPED
    assert len(clock.slept) == 2, "the wait ends at the next poll, not at the timeout"


def test_a_wait_checks_its_arguments_first(mem: Connection) -> None:
    vm = _running(mem)
    with pytest.raises(ValidationError) as caught:
        vm.wait_for_address(timeout=-1)
    assert caught.value.field == "timeout"
    with pytest.raises(ValidationError) as caught:
        vm.wait_for_address(family="ipx")
    assert caught.value.field == "family"


def test_a_backend_without_addresses_is_refused_naming_the_feature(narrow: Connection) -> None:
    vm = _running(narrow)
    with pytest.raises(UnsupportedError) as caught:
        vm.wait_for_address()
    assert caught.value.feature is Feature.GUEST_ADDRESSES


def test_the_default_answers_ask_each_source_alone_and_keep_its_error(host_name: str, clock: FakeTime) -> None:
    class OnlyAddresses(MemoryBackend):
        """Implements addresses() only, the way a backend written before address_answers() does."""

        address_sources = ("agent", "lease")

        def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
            if sources == ("lease",):
                raise NotFoundError("the network keeps no leases")
            return list(self._vm(uuid).agent_answer(self.host.clock()).addresses)

        address_answers = Backend.address_answers

    with _connect(OnlyAddresses, host_name, clock) as conn:
        vm = _running(conn, **{ADDRESS_LABEL: "none"})
        with pytest.raises(TimeoutError) as caught:
            vm.wait_for_address(timeout=0)
        assert "agent: no addresses yet; lease: the network keeps no leases" in str(caught.value)
        vm.update_labels(remove=[ADDRESS_LABEL])
        assert vm.wait_for_address(timeout=0).address == "10.0.0.1"


# -- reconfigure ------------------------------------------------------------------------------------------------
def test_reconfigure_a_stopped_vm_changes_its_definition(mem: Connection) -> None:
    vm = mem.create({"name": "cold", "cpus": 1, "memory_mib": 256})
    info = vm.reconfigure(cpus=4, memory_mib=512)
    assert (info.cpus, info.memory_mib) == (4, 512)
    assert vm.info().cpus == 4
    assert vm.reconfigure(memory_mib=384, live=False).memory_mib == 384
    assert calls(mem).count("reconfigure") == 2


def test_reconfigure_a_running_vm_changes_it_live(mem: Connection) -> None:
    vm = _running(mem)
    info = vm.reconfigure(cpus=3, memory_mib=32)
    assert (info.cpus, info.memory_mib) == (3, 32)
    assert info.state is PowerState.RUNNING


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "reconfigure"),
        ({"cpus": 0}, "cpus"),
        ({"cpus": True}, "cpus"),
        ({"cpus": 1025}, "cpus"),
        ({"memory_mib": 8}, "memory_mib"),
        ({"memory_mib": "1G"}, "memory_mib"),
        ({"cpus": 1, "timeout": -1}, "timeout"),
    ],
)
def test_reconfigure_checks_its_arguments_before_any_backend_call(
    mem: Connection, arguments: dict[str, Any], field: str
) -> None:
    vm = mem.create({"name": "args"})
    with pytest.raises(ValidationError) as caught:
        vm.reconfigure(**arguments)
    assert caught.value.field == field
    assert "reconfigure" not in calls(mem)


def test_values_the_vm_cannot_take_are_refused_naming_the_limit(mem: Connection) -> None:
    vm = mem.create({"name": "limits", "memory_mib": 256, "dynamic_memory": {"minimum_mib": 128, "maximum_mib": 512}})
    with pytest.raises(ValidationError, match="the host's 64") as caught:
        vm.reconfigure(cpus=65)
    assert caught.value.field == "cpus"
    vm.start()
    with pytest.raises(ValidationError, match="128-512 MiB") as caught:
        vm.reconfigure(memory_mib=1024)
    assert caught.value.field == "memory_mib"
    assert vm.reconfigure(memory_mib=512).memory_mib == 512


@pytest.mark.parametrize(
    ("state", "live", "accepted"),
    [
        (PowerState.STOPPED, True, (PowerState.RUNNING,)),
        (PowerState.RUNNING, False, (PowerState.STOPPED,)),
        (PowerState.PAUSED, None, (PowerState.STOPPED, PowerState.RUNNING)),
        (PowerState.SAVED, None, (PowerState.STOPPED, PowerState.RUNNING)),
    ],
)
def test_reconfigure_is_refused_in_states_that_cannot_take_it(
    mem: Connection, state: PowerState, live: bool | None, accepted: tuple[PowerState, ...]
) -> None:
    vm = mem.create({"name": "states"})
    if state is not PowerState.STOPPED:
        vm.start()
        if state is PowerState.PAUSED:
            vm.pause()
        elif state is PowerState.SAVED:
            vm.save()
    with pytest.raises(InvalidStateError) as caught:
        vm.reconfigure(cpus=2, live=live)
    assert caught.value.state is state
    assert tuple(caught.value.accepted) == accepted
    if state is PowerState.RUNNING:
        assert "stop it first" in str(caught.value)
    assert "reconfigure" not in calls(mem)


class ColdOnly(MemoryBackend):
    """Changes CPUs and memory of stopped VMs only (Hyper-V's CPUs, say)."""

    option_features = MemoryBackend.option_features - {
        Feature.RECONFIGURE_LIVE_CPUS,
        Feature.RECONFIGURE_LIVE_MEMORY,
    }


def test_live_changes_need_their_capability(host_name: str) -> None:
    with _connect(ColdOnly, host_name) as conn:
        vm = _running(conn)
        for arguments, feature in (
            ({"cpus": 2}, Feature.RECONFIGURE_LIVE_CPUS),
            ({"memory_mib": 32}, Feature.RECONFIGURE_LIVE_MEMORY),
        ):
            with pytest.raises(UnsupportedError) as caught:
                vm.reconfigure(**arguments)
            assert caught.value.feature is feature
        vm.stop()
        assert vm.reconfigure(cpus=2, memory_mib=32).cpus == 2


def test_reconfigure_and_resize_need_their_capability(narrow: Connection) -> None:
    vm = narrow.create({"name": "plain"})
    with pytest.raises(UnsupportedError) as caught:
        vm.reconfigure(cpus=2)
    assert caught.value.feature is Feature.RECONFIGURE
    with pytest.raises(UnsupportedError) as caught:
        vm.resize_disk("vda", 128)
    assert caught.value.feature is Feature.DISK_RESIZE


# -- resize_disk --------------------------------------------------------------------------------------------------
def _sizes(vm: VM) -> dict[str, int]:
    return dict(vm.info().extra["disk_sizes_mib"])


def test_resize_grows_a_disk_stopped_or_running(mem: Connection) -> None:
    vm = mem.create({"name": "grow", "disks": [{"size_mib": 64}, {"size_mib": 16}]})
    vm.resize_disk("vda", 128)
    assert _sizes(vm) == {"vda": 128, "vdb": 16}
    vm.start()
    vm.resize_disk("vdb", 32)
    vm.resize_disk("vdb", 32)  # the same size: nothing to do
    assert _sizes(vm) == {"vda": 128, "vdb": 32}


def test_resize_never_shrinks(mem: Connection) -> None:
    vm = mem.create({"name": "shrink", "disks": [{"size_mib": 64}]})
    with pytest.raises(ValidationError, match="disks only grow; give at least 64") as caught:
        vm.resize_disk("vda", 63)
    assert caught.value.field == "size_mib"
    assert _sizes(vm) == {"vda": 64}


@pytest.mark.parametrize(
    ("target", "size", "field"),
    [("", 64, "target"), (None, 64, "target"), ("vda", 0, "size_mib"), ("vda", 1.5, "size_mib")],
)
def test_resize_checks_its_arguments_before_any_backend_call(
    mem: Connection, target: Any, size: Any, field: str
) -> None:
    vm = mem.create({"name": "args", "disks": [{"size_mib": 64}]})
    with pytest.raises(ValidationError) as caught:
        vm.resize_disk(target, size)
    assert caught.value.field == field
    assert "resize_disk" not in calls(mem)


def test_resizing_a_disk_the_vm_does_not_have_says_which_it_has(mem: Connection) -> None:
    vm = mem.create({"name": "which", "disks": [{"size_mib": 64}]})
    with pytest.raises(NotFoundError, match=r"no disk 'vdz'; its disks: \['vda'\]"):
        vm.resize_disk("vdz", 128)


# -- specs -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("disk", "field"),
    [
        ({"clone": "linked"}, "disk.clone"),
        ({"clone": "linked", "size_mib": 64}, "disk.clone"),
        ({"image": "/b.qcow2", "clone": "thin"}, "disk.clone"),
        ({"image": "/b.qcow2", "clone": "copy", "readonly": True}, "disk.readonly"),
        ({"image": "/b.qcow2", "clone": "linked", "size_mib": 0}, "disk.size_mib"),
        ({"image": "/b.qcow2", "size_mib": 64}, "disk"),
    ],
)
def test_invalid_clones_are_refused_by_field(disk: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VMSpec.from_dict({"name": "x", "disks": [disk]})
    assert caught.value.field == field


def test_a_clone_is_a_new_disk_from_a_base() -> None:
    disk = DiskSpec(image="/srv/base.qcow2", clone="linked", size_mib=4096)  # type: ignore[arg-type]
    assert disk.clone is CloneMode.LINKED
    assert DiskSpec.from_dict({"image": "/b.img", "clone": "copy"}).clone is CloneMode.COPY
    with pytest.raises(ValidationError, match="clone='linked'"):
        DiskSpec(image="/b.img", size_mib=4)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"dynamic_memory": {"minimum_mib": 512, "maximum_mib": 256}}, "dynamic_memory"),
        ({"dynamic_memory": {"minimum_mib": 8, "maximum_mib": 256}}, "dynamic_memory.minimum_mib"),
        ({"dynamic_memory": {"minimum_mib": 128, "maximum_mib": "lots"}}, "dynamic_memory.maximum_mib"),
        ({"dynamic_memory": {"minimum_mib": 128}}, "dynamic_memory"),
        (
            {"dynamic_memory": {"minimum_mib": 128, "maximum_mib": 512, "buffer_percent": 1}},
            "dynamic_memory.buffer_percent",
        ),
        ({"dynamic_memory": {"minimum_mib": 128, "maximum_mib": 512, "spare": 1}}, "dynamic_memory"),
        ({"dynamic_memory": 512}, "dynamic_memory"),
        ({"memory_mib": 1024, "dynamic_memory": {"minimum_mib": 128, "maximum_mib": 512}}, "memory_mib"),
        ({"memory_mib": 64, "dynamic_memory": {"minimum_mib": 128, "maximum_mib": 512}}, "memory_mib"),
    ],
)
def test_dynamic_memory_ranges_are_checked(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VMSpec.from_dict({"name": "x", "memory_mib": 256, **overrides})
    assert caught.value.field == field


def test_dynamic_memory_around_the_startup_memory_is_kept() -> None:
    table = {"minimum_mib": 128, "maximum_mib": 512, "buffer_percent": 20}
    spec = VMSpec.from_dict({"name": "x", "memory_mib": 256, "dynamic_memory": table})
    assert spec.dynamic_memory == DynamicMemory(128, 512, 20)
    assert VMSpec(name="x", memory_mib=128, dynamic_memory=DynamicMemory(128, 128)).dynamic_memory is not None


def test_a_cloud_init_table_without_instance_id_gets_the_vm_name() -> None:
    spec = VMSpec.from_dict({"name": "web1", "cloud_init": {"local_hostname": "web1.example"}})
    assert spec.cloud_init == CloudInit(instance_id="web1", local_hostname="web1.example")
    given = VMSpec.from_dict({"name": "web1", "cloud_init": {"instance_id": "iid-7"}})
    assert given.cloud_init is not None
    assert given.cloud_init.instance_id == "iid-7"
    value = CloudInit(instance_id="iid-8")
    assert VMSpec(name="web1", cloud_init=value).cloud_init is value


@pytest.mark.parametrize(
    ("cloud_init", "field"),
    [
        ({"user_data": 5}, "cloud_init.user_data"),
        ({"local_hostname": "two\nlines"}, "cloud_init.local_hostname"),
        ({"ssh_authorized_keys": "ssh-ed25519 AAAA"}, "cloud_init.ssh_authorized_keys"),
        ({"ssh_authorized_keys": ["ok", " padded"]}, "cloud_init.ssh_authorized_keys[1]"),
        ({"meta_data": {"instance-id": "x"}}, "cloud_init.meta_data"),
        ({"userdata": "#cloud-config"}, "cloud_init"),
        ("#cloud-config", "cloud_init"),
    ],
)
def test_cloud_init_errors_in_a_spec_name_the_field_under_cloud_init(cloud_init: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VMSpec.from_dict({"name": "x", "cloud_init": cloud_init})
    assert caught.value.field == field


class Plain(MemoryBackend):
    """A memory host without any provisioning option."""

    option_features = frozenset({Feature.DELETE_STORAGE})


@pytest.mark.parametrize(
    ("overrides", "feature"),
    [
        ({"disks": [{"image": "/b.img", "clone": "linked"}]}, Feature.DISK_CLONE_LINKED),
        ({"disks": [{"image": "/b.img", "clone": "copy"}]}, Feature.DISK_CLONE_COPY),
        ({"cloud_init": {}}, Feature.CLOUD_INIT),
        ({"memory_mib": 64, "dynamic_memory": {"minimum_mib": 32, "maximum_mib": 64}}, Feature.DYNAMIC_MEMORY),
    ],
)
def test_create_refuses_provisioning_options_the_backend_does_not_declare(
    host_name: str, overrides: dict[str, Any], feature: Feature
) -> None:
    with _connect(Plain, host_name) as conn:
        with pytest.raises(UnsupportedError) as caught:
            conn.create({"name": "x", **overrides})
        assert caught.value.feature is feature
        assert conn.list() == []


def test_a_memory_buffer_needs_its_own_capability(host_name: str) -> None:
    class NoBuffer(MemoryBackend):
        option_features = MemoryBackend.option_features - {Feature.MEMORY_BUFFER}

    table = {"minimum_mib": 32, "maximum_mib": 64}
    with _connect(NoBuffer, host_name) as conn:
        with pytest.raises(UnsupportedError) as caught:
            conn.create({"name": "x", "memory_mib": 64, "dynamic_memory": {**table, "buffer_percent": 10}})
        assert caught.value.feature is Feature.MEMORY_BUFFER
        assert conn.create({"name": "y", "memory_mib": 64, "dynamic_memory": table}).info().details is not None
