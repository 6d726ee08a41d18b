"""The loopback host with its default engine (the in-memory Hyper-V model), end to end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pypsrp.powershell import PowerShell, RunspacePool

from polyvisor_hyperv_loopback import LoopbackHost

from ._clients import PASSWORD, USER, psrp_wsman, winrm_session
from ._engine_check import require_real_engine


@pytest.fixture(scope="module")
def real_host() -> Iterator[LoopbackHost]:
    require_real_engine()
    with LoopbackHost(USER, PASSWORD) as host:
        yield host


def test_default_engine_is_the_hyper_v_engine(real_host: LoopbackHost) -> None:
    from polyvisor_hyperv_loopback.engine import Engine

    assert isinstance(real_host.engine, Engine)


def test_missing_vm_is_reported_like_windows(real_host: LoopbackHost) -> None:
    with RunspacePool(psrp_wsman(real_host)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-VM").add_parameter("Name", "no-such-vm-anywhere")
        output = ps.invoke()

    assert output == []
    assert ps.streams.error, "Get-VM must report the missing VM"
    # Windows: InvalidArgument: (name:String) [Get-VM], VirtualizationException
    assert ps.streams.error[0].category == 5  # ErrorCategory.InvalidArgument
    assert ps.streams.error[0].fq_error == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"


def test_powershell_exe_over_winrs(real_host: LoopbackHost) -> None:
    result = winrm_session(real_host).run_ps("Write-Output 'hello from the loopback host'")

    assert result.status_code == 0
    assert b"hello from the loopback host" in result.std_out
