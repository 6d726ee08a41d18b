"""The Notes label codec keeps human text verbatim, whatever it contains."""

from __future__ import annotations

import pytest

from polyvisor_hyperv.notes import BEGIN, END, join_notes, split_notes

HOSTILE_TEXT = [
    "",
    "plain text",
    "ends with a newline\n",
    "windows\r\nline\r\nbreaks\r\n",
    BEGIN,
    f"{BEGIN}\n{{}}\n{END}",
    f'pasted\n{BEGIN}\n{{"owner": "someone"}}\n{END}\n',
    f"{BEGIN}\nnot json\n{END}",
    f"{END}\n{BEGIN}",
    "unicode ✓ ü 漢字 🙂",
    "$(Remove-VM *) `backtick` ; 'quotes' \"double\"",
    "x" * 10_000,
]

HOSTILE_LABELS = [
    {},
    {"a": "b"},
    {"k": f"value\n{END}\n{BEGIN}\n"},
    {"json": '{"a":"b"}', "quote": "'\"", "unicode": "漢字 🙂", "empty": ""},
    {"big": "y" * 10_000},
]


@pytest.mark.parametrize("human", HOSTILE_TEXT)
@pytest.mark.parametrize("labels", HOSTILE_LABELS)
def test_round_trip_is_verbatim(human: str, labels: dict[str, str]) -> None:
    assert split_notes(join_notes(human, labels)) == (human, labels)


def test_notes_without_a_block_are_all_human_text() -> None:
    assert split_notes("Owner: ops\nDo not touch") == ("Owner: ops\nDo not touch", {})
    assert split_notes(None) == ("", {})


def test_a_block_that_is_not_last_is_human_text() -> None:
    text = f'{BEGIN}\n{{"a":"b"}}\n{END}\nmore human text'
    assert split_notes(text) == (text, {})


@pytest.mark.parametrize(
    "payload",
    ['["a", "b"]', '{"a": 1}', '{"a": null}', '"text"', "{"],
)
def test_a_malformed_block_is_human_text(payload: str) -> None:
    text = f"human\n{BEGIN}\n{payload}\n{END}"
    assert split_notes(text) == (text, {})


def test_block_written_by_windows_with_crlf_is_read() -> None:
    assert split_notes(f'human\r\n{BEGIN}\r\n{{"a":"b"}}\r\n{END}\r\n') == ("human", {"a": "b"})


def test_replacing_labels_keeps_human_text() -> None:
    notes = join_notes("Owner: ops", {"a": "1"})
    human, _ = split_notes(notes)
    assert split_notes(join_notes(human, {"b": "2"})) == ("Owner: ops", {"b": "2"})
    assert join_notes(human, {}) == "Owner: ops"
