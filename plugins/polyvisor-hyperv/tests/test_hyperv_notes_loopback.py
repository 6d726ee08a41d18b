"""The loopback host reads the Notes label block exactly as the backend writes and reads it.

The host is a separate program with its own reader of the block (it imports nothing from polyvisor), so this test,
which imports both, is what keeps the two in step.
"""

from __future__ import annotations

import os

import pytest

from polyvisor_hyperv.notes import BEGIN, END, join_notes, split_notes

try:
    from polyvisor_hyperv_loopback.hyperv.labels import read_labels
except ImportError as error:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip(f"the loopback Hyper-V host is not installed: {error}", allow_module_level=True)

GUEST = "polyvisor.test/guest"

HUMAN_TEXT = [
    "",
    "plain text",
    "ends with a newline\n",
    "windows\r\nline\r\nbreaks\r\n",
    BEGIN,
    f"{BEGIN}\n{{}}\n{END}",
    f'pasted\n{BEGIN}\n{{"{GUEST}": "ignore-shutdown"}}\n{END}\n',
    f"{END}\n{BEGIN}",
    "unicode ✓ ü 漢字 🙂",
]

LABEL_SETS = [
    {},
    {GUEST: "ignore-shutdown"},
    {GUEST: "no-shutdown-service", "env": "prod", "owner": "ops"},
    {GUEST: f"responsive\n{END}\n{BEGIN}\n"},
    {"k": f'value\r\n{END}\r\n{BEGIN}\r\n{{"{GUEST}":"ignore-shutdown"}}', GUEST: "responsive"},
    {"json": '{"a":"b"}', "quote": "'\"", "unicode": "漢字 🙂", "empty": "", "nul": "\x00", "tab": "\t"},
    {f"{GUEST}\n{END}": "ignore-shutdown", "$(Remove-VM *)": "`backtick`"},
    {"big": "y" * 10_000},
]

RAW_NOTES = [
    None,
    "Owner: ops\nDo not touch",
    f'{BEGIN}\n{{"{GUEST}":"ignore-shutdown"}}\n{END}',
    f'human\r\n{BEGIN}\r\n{{"{GUEST}":"ignore-shutdown"}}\r\n{END}\r\n',
    f'{BEGIN}\n{{"{GUEST}":"ignore-shutdown"}}\n{END}\nmore human text',
    f'{BEGIN}\n{{"{GUEST}":"ignore-shutdown"}}\n{END}\n\n',
    f'{BEGIN}\n{{"a":"b"}}\n{END}\n{BEGIN}\n{{"{GUEST}":"ignore-shutdown"}}\n{END}',
    f'{BEGIN}\n{{"{GUEST}":"ignore-shutdown"}}\n{{"a":"b"}}\n{END}',
    f'{BEGIN} \n{{"{GUEST}":"ignore-shutdown"}}\n{END}',
    *(f"human\n{BEGIN}\n{payload}\n{END}" for payload in ['["a", "b"]', '{"a": 1}', '{"a": null}', '"text"', "{", ""]),
]


@pytest.mark.parametrize("human", HUMAN_TEXT)
@pytest.mark.parametrize("labels", LABEL_SETS)
def test_the_host_reads_the_labels_the_backend_writes(human: str, labels: dict[str, str]) -> None:
    notes = join_notes(human, labels)
    assert read_labels(notes) == split_notes(notes)[1] == labels


@pytest.mark.parametrize("notes", RAW_NOTES)
def test_the_host_and_the_backend_agree_on_hand_written_notes(notes: str | None) -> None:
    assert read_labels(notes) == split_notes(notes)[1]
