"""The PowerShell language as the loopback host runs it, knowing no cmdlet and no Hyper-V.

``interpreter`` runs a script (parsed by tree-sitter-powershell: ``syntax``) statement by statement, with
``expressions``, ``operators`` and ``members`` (properties, methods, static members); ``commands`` says what it
needs from the commands a script calls. ``values`` are PowerShell values held in Python, ``psjson`` is
ConvertTo-/ConvertFrom-Json, ``exe`` is powershell.exe's command line and CLIXML streams, ``wildcards`` is
WildcardPattern, and ``errors`` are the error records a pipeline ends with.

This ``__init__`` imports nothing, so that a module using only ``errors`` or ``wildcards`` does not load the
parser.
"""
