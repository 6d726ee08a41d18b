"""The parts of the loopback host's PowerShell interpreter.

:class:`~polyvisor_hyperv_loopback.powershell.Interpreter` composes them.
"""
