"""PowerShell's wildcard patterns (System.Management.Automation.WildcardPattern), as ``-like`` and the ``-Name``
parameters of the Hyper-V cmdlets match them."""

from __future__ import annotations

import re

__all__ = ["has_wildcard", "wildcard_match"]


def wildcard_match(pattern: str, text: str) -> bool:
    """Match like PowerShell's WildcardPattern (case-insensitive ``*``, ``?``, ``[a-z]``, backtick escapes)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "`" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), text, re.IGNORECASE | re.DOTALL) is not None


def has_wildcard(pattern: str) -> bool:
    """Return whether ``pattern`` holds an unescaped wildcard character."""
    return re.search(r"(?<!`)[*?\[]", pattern) is not None
