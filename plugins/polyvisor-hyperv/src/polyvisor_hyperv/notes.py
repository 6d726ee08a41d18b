"""Labels stored in a VM's ``Notes``, next to whatever a human wrote there.

Hyper-V has no metadata store, so labels live in a trailing block of the Notes text::

    Any human text, kept verbatim.
    ----- polyvisor labels (do not edit) -----
    {"env":"prod","owner":"ops"}
    ----- end polyvisor labels -----

Only the LAST well-formed block counts: its begin line, one line of JSON that decodes to a string-to-string object,
and its end line, with nothing but the final line break after it. Text that merely looks like a marker (a human
pasted one, a label value contains one) cannot confuse the parser: JSON escapes line breaks, so a value can never
produce a marker line, and a block that is not at the very end is human text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

__all__ = ["BEGIN", "END", "STATE_LABEL", "join_notes", "split_notes"]

BEGIN = "----- polyvisor labels (do not edit) -----"
END = "----- end polyvisor labels -----"
STATE_LABEL = "polyvisor.hyperv/checkpoint-state"
"""The backend's own label: in a checkpoint's Notes, the power state it was taken in ("paused" or "saved"),
which Hyper-V does not keep. It is never shown as one of the VM's labels."""

# The block is the last three lines; the JSON line cannot hold a line break, so only one position can match.
_BLOCK = re.compile(r"(?:\A|\r?\n)" + re.escape(BEGIN) + r"\r?\n([^\r\n]*)\r?\n" + re.escape(END) + r"(?:\r?\n)?\Z")


def split_notes(notes: str | None) -> tuple[str, dict[str, str]]:
    """Return (human text, labels) from a Notes value; a malformed block is left in the human text."""
    text = notes or ""
    match = _BLOCK.search(text)
    if match is None:
        return text, {}
    try:
        labels = json.loads(match.group(1))
    except ValueError:
        return text, {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return text, {}
    return text[: match.start()], labels


def join_notes(human: str, labels: Mapping[str, str]) -> str:
    """Return Notes holding ``human`` verbatim followed by the label block.

    Without labels no block is written, unless the human text itself ends in something block-shaped, which an
    empty block then shields from being read as labels.
    """
    if not labels and _BLOCK.search(human) is None:
        return human
    block = json.dumps(dict(sorted(labels.items())), ensure_ascii=True, separators=(",", ":"))
    # One line break separates human text from the block; split_notes removes exactly that one.
    separator = "\n" if human else ""
    return f"{human}{separator}{BEGIN}\n{block}\n{END}"
