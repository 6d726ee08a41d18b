"""A loopback Windows/Hyper-V host: WinRM (WS-Management) and PowerShell remoting on 127.0.0.1.

Real pywinrm and pypsrp clients talk to it; PowerShell runs on the in-memory Hyper-V engine.
"""

from ._loopback import HostEngine, LoopbackHost

__all__ = ["HostEngine", "LoopbackHost"]
