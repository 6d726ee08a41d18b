"""polyvisor's Hyper-V backend: PowerShell over PSRP (pypsrp) or a WinRM shell (pywinrm).

Importing this package is cheap; the transports import their clients only when a connection opens.
"""

from __future__ import annotations

__all__: list[str] = []
