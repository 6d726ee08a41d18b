"""``polyvisor pool`` and ``polyvisor image`` against a memory:// host: uploads with a progress bar on a terminal,
listings as tables and JSON, downloads, deletes refused while a VM uses the image."""

from __future__ import annotations

import io
from pathlib import Path

from polyvisor import connect
from polyvisor.cli.progress import TransferBar
from polyvisor.storage import TransferProgress

from .conftest import Lab, Run, as_json

MIB = 1024 * 1024


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def _image(tmp_path: Path) -> Path:
    local = tmp_path / "disk.img"
    with local.open("wb") as out:
        out.truncate(9 * MIB)
        out.write(b"polyvisor" * 1000)
    return local


def test_upload_list_download_and_delete_an_image(run: Run, tmp_path: Path) -> None:
    local = _image(tmp_path)
    uploaded = as_json(run("image", "upload", str(local), "--name", "base.img", "--json"))
    assert (uploaded["name"], uploaded["pool"], uploaded["format"], uploaded["capacity"]) == (
        "base.img",
        "default",
        "raw",
        9 * MIB,
    )
    assert uploaded["sent"] < 9 * MIB, "holes are not sent"
    listed = run("image", "list")
    assert listed.stdout.splitlines()[0].split() == ["NAME", "FORMAT", "CAPACITY", "ALLOCATION"]
    assert listed.stdout.splitlines()[1].split()[:3] == ["base.img", "raw", "9.0"]
    back = as_json(run("image", "download", "base.img", str(tmp_path / "back.img"), "--json"))
    assert Path(back["path"]).read_bytes() == local.read_bytes()
    assert run("image", "delete", "base.img").exit_code == 0
    assert as_json(run("image", "list", "--json")) == []


def test_an_image_a_vm_uses_is_not_deleted_and_the_vm_is_named(run: Run, lab: Lab, tmp_path: Path) -> None:
    uploaded = as_json(run("image", "upload", str(_image(tmp_path)), "--json"))
    with connect(lab.uri(), plugins=lab.plugins) as conn:
        conn.create({"name": "uses-it", "disks": [{"image": uploaded["path"], "clone": "linked"}]})
    refused = run("image", "delete", "disk.img")
    assert refused.exit_code != 0
    assert "uses-it" in refused.output
    assert [v["name"] for v in as_json(run("image", "list", "--json"))] == ["disk.img"]


def test_hostile_names_are_refused_before_anything_is_sent(run: Run, tmp_path: Path) -> None:
    refused = run("image", "upload", str(_image(tmp_path)), "--name", "../escape.img")
    assert refused.exit_code != 0
    assert "escape.img" in refused.output
    assert as_json(run("image", "list", "--json")) == []


def test_pools_are_created_listed_and_deleted(run: Run) -> None:
    made = as_json(run("pool", "create", "images", "--json"))
    assert (made["name"], made["path"]) == ("images", "/memory/pools/images")
    assert [p["name"] for p in as_json(run("pool", "list", "--json"))] == ["default", "images"]
    assert run("pool", "list").stdout.splitlines()[0].split()[:3] == ["NAME", "KIND", "PATH"]
    assert run("pool", "delete", "images").exit_code == 0
    assert [p["name"] for p in as_json(run("pool", "list", "--json"))] == ["default"]


def test_the_bar_draws_only_on_a_terminal() -> None:
    quiet = io.StringIO()
    TransferBar(quiet, "uploading x")(TransferProgress(1, 2, 1))
    assert quiet.getvalue() == ""
    terminal = Terminal()
    bar = TransferBar(terminal, "uploading x", width=10)
    bar(TransferProgress(5 * MIB, 10 * MIB, MIB))
    assert "uploading x [#####     ]  50%  5.0 of 10.0 MiB (1.0 MiB sent)" in terminal.getvalue()
    bar.close()
    assert terminal.getvalue().endswith("\r\x1b[K")
