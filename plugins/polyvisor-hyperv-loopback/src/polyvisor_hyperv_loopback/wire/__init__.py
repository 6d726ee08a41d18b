"""The wire: what a Windows host speaks on its WinRM port, down to the point where PowerShell runs.

A request travels ``listener`` (HTTP(S), keep-alive) -> ``auth`` (Basic, Negotiate/NTLM, message encryption;
``tls`` makes the HTTPS certificate) -> ``service`` (WS-Management: ``soap`` envelopes and faults, shell
routing, idle timeouts) -> a WinRS shell (``shell``): the cmd shell (``cmd_shell``, running command lines as
cmd.exe does: ``cmdline``, ``process_io``) or a PowerShell remoting runspace pool (``psrp_shell``, MS-PSRP).
The wire reaches PowerShell only through :mod:`polyvisor_hyperv_loopback.engine_api`.
"""
