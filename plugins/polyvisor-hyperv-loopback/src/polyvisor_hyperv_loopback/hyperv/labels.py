"""Reading the polyvisor label block from a VM's ``Notes``, as the test hook needs it.

The host is a separate program from polyvisor and shares no code with it, so it reads the block itself. The format
is the one polyvisor writes (its Hyper-V backend's ``notes`` module)::

    Any human text, kept verbatim.
    ----- polyvisor labels (do not edit) -----
    {"env":"prod","owner":"ops"}
    ----- end polyvisor labels -----

Only a well-formed block at the very end counts: its begin line, one line of JSON that decodes to a
string-to-string object, and its end line, with at most one line break after it. Anything else is human text
and holds no labels.
"""

from __future__ import annotations

import json
import re

__all__ = ["read_labels"]

_BEGIN = "----- polyvisor labels (do not edit) -----"
_END = "----- end polyvisor labels -----"
_BLOCK = re.compile(r"(?:\A|\r?\n)" + re.escape(_BEGIN) + r"\r?\n([^\r\n]*)\r?\n" + re.escape(_END) + r"(?:\r?\n)?\Z")


def read_labels(notes: str | None) -> dict[str, str]:
    """Return the labels of the block that ends ``notes``, or no labels when there is no well-formed block."""
    match = _BLOCK.search(notes or "")
    if match is None:
        return {}
    try:
        labels = json.loads(match.group(1))
    except ValueError:
        return {}
    if not isinstance(labels, dict):
        return {}
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in labels.items()):
        return {}
    return labels
