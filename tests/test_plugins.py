"""Plugin loading, with throwaway distributions installed into a temporary site directory.

Each scenario runs in a fresh interpreter so the distributions it installs are discovered through
importlib.metadata exactly as pip-installed ones are, and nothing leaks into this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import polyvisor
from polyvisor import URI, NotFoundError, Plugins, PolyvisorError, PowerState, UnsupportedError
from polyvisor.hookspecs import hookimpl

TINY_BACKEND = """
    \"\"\"The smallest complete backend on the 1.0 interface: VMs in a dict, every transition instant.\"\"\"

    from __future__ import annotations

    import uuid

    from polyvisor.backend import Backend, Credentials, Deadline
    from polyvisor.errors import NotFoundError
    from polyvisor.model import HostInfo, PowerState, ShutdownMode, VMDetails, VMInfo, VMSpec, VMStatus
    from polyvisor.uri import URI


    class ToyBackend(Backend):
        name = "toy"

        def __init__(self, uri: URI, credentials: Credentials) -> None:
            self.uri = uri
            self.vms: dict[str, VMInfo] = {}

        def close(self) -> None:
            pass

        def host_info(self) -> HostInfo:
            return HostInfo("toyhost", "toy", "1.0", 1, 1024, "x86_64")

        def list_vms(self) -> list[VMInfo]:
            return list(self.vms.values())

        def lookup(self, ref: str) -> VMInfo:
            for vm in self.vms.values():
                if ref in (vm.uuid, vm.name):
                    return vm
            raise NotFoundError(f"no VM {ref!r}", host="toyhost")

        def info(self, uuid: str) -> VMInfo:
            return self.lookup(uuid)

        def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
            details = VMDetails(spec.cpus, spec.memory_mib, dict(spec.labels), spec.description)
            info = VMInfo(str(uuid.uuid4()), spec.name, VMStatus(PowerState.STOPPED, "off"), False, details)
            self.vms[info.uuid] = info
            return info

        def _set(self, uuid: str, state: PowerState) -> None:
            old = self.vms[uuid]
            self.vms[uuid] = VMInfo(old.uuid, old.name, VMStatus(state, state.name), False, old.details)

        def start(self, uuid: str, deadline: Deadline) -> None:
            self._set(uuid, PowerState.RUNNING)

        def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
            self._set(uuid, PowerState.STOPPED)

        def stop(self, uuid: str, deadline: Deadline) -> None:
            self._set(uuid, PowerState.STOPPED)

        def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
            del self.vms[uuid]
"""


def install_distribution(site: Path, name: str, version: str, modules: dict[str, str], entry_points: str) -> None:
    """Lay out a distribution as an installer would: its modules plus a .dist-info directory."""
    files = []
    for module, source in modules.items():
        path = site / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        files.append(module)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points), encoding="utf-8")
    (info / "INSTALLER").write_text("polyvisor-tests\n", encoding="utf-8")
    records = [*files, *(f"{info.name}/{n}" for n in ("METADATA", "entry_points.txt", "INSTALLER", "RECORD"))]
    (info / "RECORD").write_text("".join(f"{r},,\n" for r in records), encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install_distribution(
        site,
        "polyvisor-toy",
        "1.0",
        {
            "toyplug/__init__.py": """
                from polyvisor.hookspecs import hookimpl

                @hookimpl
                def polyvisor_register_backends(registry):
                    registry.add("toy", "toyplug.backend:ToyBackend", description="throwaway toy backend")
            """,
            "toyplug/backend.py": TINY_BACKEND,
        },
        "[polyvisor]\ntoyplug = toyplug\n",
    )
    install_distribution(
        site,
        "polyvisor-broken",
        "2.0",
        {"brokenplug/__init__.py": "raise ImportError('brokenplug needs libfrobnicate.so.3')\n"},
        "[polyvisor]\nbrokenplug = brokenplug\n",
    )
    return site


def run(site: Path, code: str, **env: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter that sees ``site``; it prints one JSON document."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **env}
    environ.pop("POLYVISOR_DISABLE_PLUGINS", None) if "POLYVISOR_DISABLE_PLUGINS" not in env else None
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_throwaway_distribution_registers_a_scheme_used_by_connect(site: Path) -> None:
    out = run(
        site,
        """
        import json, sys, polyvisor, polyvisor.plugins
        schemes = polyvisor.schemes()
        heavy = sorted(m for m in ("libvirt", "pypsrp", "winrm") if m in sys.modules)
        with polyvisor.connect("toy:///") as conn:
            vm = conn.create({"name": "from-a-plugin"})
            vm.start()
            state = vm.state().value
            backend = type(conn.backend).__module__
            features = sorted(conn.capabilities.features)
        failures = [f.describe() for f in polyvisor.plugins.default_plugins().failures]
        print(json.dumps({"schemes": schemes, "heavy": heavy, "state": state, "backend": backend,
                          "features": features, "failures": failures}))
        """,
    )
    assert "toy" in out["schemes"]  # type: ignore[operator]
    assert out["heavy"] == [], "listing schemes must not import hypervisor bindings"
    assert out["state"] == "running"
    assert out["backend"] == "toyplug.backend"
    assert out["features"] == ["create"], "a backend overriding no optional method declares no optional feature"
    failures = out["failures"]
    assert isinstance(failures, list)
    assert len(failures) == 1
    assert "polyvisor-broken" in failures[0]
    assert "libfrobnicate" in failures[0]


def test_broken_plugin_is_reported_when_nothing_handles_a_scheme(site: Path) -> None:
    out = run(
        site,
        """
        import json, polyvisor
        try:
            polyvisor.connect("frob:///")
        except polyvisor.NotFoundError as error:
            print(json.dumps({"error": str(error)}))
        """,
    )
    error = str(out["error"])
    assert "no installed backend handles 'frob'" in error
    assert "polyvisor-broken" in error
    assert "libfrobnicate" in error
    assert "toy" in error, "the message lists the drivers that are available"


def test_disabled_plugin_names_the_distribution_to_install(site: Path) -> None:
    out = run(
        site,
        """
        import json, polyvisor
        try:
            polyvisor.connect("qemu:///system")
        except polyvisor.NotFoundError as error:
            print(json.dumps({"error": str(error), "schemes": polyvisor.schemes()}))
        """,
        POLYVISOR_DISABLE_PLUGINS="libvirt,brokenplug",
    )
    assert "pip install polyvisor-libvirt" in str(out["error"])
    assert "POLYVISOR_DISABLE_PLUGINS=brokenplug,libvirt" in str(out["error"])
    assert "toy" in out["schemes"]  # type: ignore[operator]
    assert "qemu" not in out["schemes"]  # type: ignore[operator]


def test_in_process_registration_and_duplicate_drivers() -> None:
    class One:
        @hookimpl
        def polyvisor_register_backends(self, registry: object) -> None:
            registry.add("dup", "x:Y")  # type: ignore[attr-defined]

    class Two(One):
        pass

    plugins = Plugins(load_entry_points=False)
    plugins.register(One(), name="one")
    assert plugins.schemes() == ["dup"]
    with pytest.raises(PolyvisorError, match="registered twice"):
        plugins.register(Two(), name="two")
    assert plugins.manager.get_plugin("two") is None, "a plugin that failed to register is removed again"


def test_misspelt_hook_is_caught() -> None:
    class Typo:
        @hookimpl
        def polyvisor_register_backend(self, registry: object) -> None:  # missing "s"
            raise AssertionError("never called")

    plugins = Plugins(load_entry_points=False)
    with pytest.raises(Exception, match="unknown hook"):
        plugins.register(Typo(), name="typo")


def test_unknown_scheme_without_plugins() -> None:
    with pytest.raises(NotFoundError, match="pip install polyvisor-hyperv"):
        Plugins(load_entry_points=False).factory_for(URI.parse("hyperv://h/"))


def test_the_shipped_backend_is_valid_in_process(tmp_path: Path) -> None:
    """The backend the throwaway distribution ships is checked here too, where a failure is easy to read."""
    namespace: dict[str, object] = {"__name__": "toyplug_backend"}
    exec(compile(textwrap.dedent(TINY_BACKEND), "toyplug/backend.py", "exec"), namespace)
    factory = namespace["ToyBackend"]
    plugins = Plugins(load_entry_points=False)
    plugins.registry.add("toy", factory)  # type: ignore[arg-type]
    with polyvisor.connect("toy:///", plugins=plugins) as conn:
        vm = conn.create({"name": "tiny"})
        assert vm.start().state is PowerState.RUNNING
        assert vm.shutdown(timeout=5).state is PowerState.STOPPED
        with pytest.raises(UnsupportedError):
            vm.pause()
        vm.delete()
        assert conn.list() == []


def test_shutil_is_available_for_cleanup() -> None:
    assert shutil.which(sys.executable) or Path(sys.executable).exists()
