"""The table, key/value and tree renderer, and the JSON records."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from polyvisor.cli.records import jsonable, snapshot_records
from polyvisor.cli.render import key_values, table, tree
from polyvisor.model import PowerState, Snapshot, SnapshotTree


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    text = table(("NAME", "CPUS", "NOTE"), [("a", 1, None), ("longer", 128, True)], right=(1,))
    assert text.splitlines() == [
        "NAME    CPUS  NOTE",
        "a          1  -",
        "longer   128  yes",
    ]


def test_table_counts_wide_characters_and_flattens_newlines() -> None:
    text = table(("NAME", "X"), [("日本", "a\nb"), ("ab", "c")])
    lines = text.splitlines()
    assert lines[1] == "日本  a b"
    assert lines[2] == "ab    c"


def test_key_values_align() -> None:
    assert key_values([("a", 1), ("long key", False)]) == "a:        1\nlong key: no"


def test_tree_draws_rails_for_unfinished_branches() -> None:
    nodes = [(0, "root"), (1, "a"), (2, "a1"), (1, "b"), (2, "b1"), (2, "b2"), (0, "other")]
    assert tree(nodes) == [
        "root",
        "├── a",
        "│   └── a1",
        "└── b",
        "    ├── b1",
        "    └── b2",
        "other",
    ]


def test_snapshot_records_are_depth_first_and_keep_orphans() -> None:
    when = datetime(2025, 1, 1, tzinfo=UTC)

    def snap(name: str, parent: str | None) -> Snapshot:
        return Snapshot(name, parent, when, PowerState.STOPPED, False)

    snaps = SnapshotTree((snap("c", "b"), snap("a", None), snap("orphan", "missing"), snap("b", "a")))
    records = snapshot_records(snaps)
    assert [(r["name"], r["depth"]) for r in records] == [("a", 0), ("b", 1), ("c", 2), ("orphan", 0)]
    assert records[0]["created"] == "2025-01-01T00:00:00+00:00"
    json.dumps(records)


def test_jsonable_turns_anything_into_json_types() -> None:
    value = {"state": PowerState.RUNNING, 1: (b"\x01", {2}), "when": datetime(2025, 1, 1), "obj": object}
    out = jsonable(value)
    assert out["state"] == "running"
    assert out["1"] == ["01", [2]]
    assert out["when"] == "2025-01-01T00:00:00"
    assert out["obj"] == "<class 'object'>"
    json.dumps(out)
