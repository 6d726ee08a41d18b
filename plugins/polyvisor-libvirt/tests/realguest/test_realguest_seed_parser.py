"""The guest's seed reader (``/lib/polyvisor/seed.awk`` in its initramfs), run on the host by the guest's own busybox.

Booting takes seconds, so the YAML and JSON forms a NoCloud seed may take are checked here, without a guest, against
the very files the image carries: the static busybox and the awk program are taken out of ``initrd.img``.
"""

from __future__ import annotations

import gzip
import json
import platform
import subprocess
from pathlib import Path

import pytest

from polyvisor.model import CloudInit

from .support import GuestImage


def initramfs_files(initrd: Path, wanted: set[str]) -> dict[str, bytes]:
    """The named regular files of a gzipped newc cpio archive."""
    data = gzip.decompress(initrd.read_bytes())
    out: dict[str, bytes] = {}
    pos = 0
    while data[pos : pos + 6] == b"070701":
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        start = pos + 110 + namesize + (-(110 + namesize) % 4)
        if name in wanted:
            out[name] = data[start : start + size]
        if name == "TRAILER!!!":
            break
        pos = start + size + (-size % 4)
    return out


@pytest.fixture(scope="module")
def seed_reader(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(busybox, seed.awk) out of the x86_64 image."""
    from .support import NOCLOUD_SEED, ensure_environment

    image: GuestImage = ensure_environment("x86_64", (NOCLOUD_SEED,))
    if platform.machine() != "x86_64":
        pytest.skip("the x86_64 guest's busybox runs only on an x86_64 host")
    files = initramfs_files(image.initrd, {"bin/busybox", "lib/polyvisor/seed.awk"})
    assert set(files) == {"bin/busybox", "lib/polyvisor/seed.awk"}, f"{image.initrd} lacks the seed reader"
    directory = tmp_path_factory.mktemp("seed-reader")
    busybox, awk = directory / "busybox", directory / "seed.awk"
    busybox.write_bytes(files["bin/busybox"])
    busybox.chmod(0o755)
    awk.write_bytes(files["lib/polyvisor/seed.awk"])
    return busybox, awk


def read_meta(reader: tuple[Path, Path], tmp_path: Path, text: bytes) -> dict[str, bytes]:
    """Run the reader on a meta-data; return the files it wrote."""
    (tmp_path / "meta-data").write_bytes(text)
    out = tmp_path / "out"
    out.mkdir()
    busybox, awk = reader
    argv = [busybox, "awk", "-v", "mode=meta", "-v", f"dir={out}", "-f", awk, tmp_path / "meta-data"]
    subprocess.run(argv, check=True, capture_output=True)
    return {path.name: path.read_bytes() for path in out.iterdir()}


def read_keys(reader: tuple[Path, Path], tmp_path: Path, text: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run the reader on a user-data; the keys are its output."""
    (tmp_path / "user-data").write_bytes(text)
    busybox, awk = reader
    return subprocess.run(
        [busybox, "awk", "-v", "mode=keys", "-f", awk, tmp_path / "user-data"], check=False, capture_output=True
    )


HOSTILE = "h'\"$(touch /tmp/x)`id`;|&<>\\ \t ü 😀 x"


@pytest.mark.parametrize(
    ("meta_data", "expected"),
    [
        # What CloudInit writes (indented JSON); a nested local-hostname is not the top-level one.
        (
            json.dumps(
                {
                    "instance-id": "i-1",
                    "nested": {"local-hostname": "no"},
                    "list": [1, "]}"],
                    "local-hostname": HOSTILE,
                },
                ensure_ascii=False,
                indent=2,
            ),
            {"instance-id": "i-1", "local-hostname": HOSTILE, "hostname": HOSTILE},
        ),
        # The same with \\u escapes (ensure_ascii), one line, a surrogate pair for the emoji.
        (
            json.dumps({"local-hostname": HOSTILE, "instance-id": "i-2"}),
            {"instance-id": "i-2", "local-hostname": HOSTILE, "hostname": HOSTILE},
        ),
        # YAML block mapping: plain with a comment, the hostname is the part before the first dot.
        (
            "instance-id: i-3\nnested:\n  local-hostname: no\nlocal-hostname: web1.example.com  # the fqdn\n",
            {"instance-id": "i-3", "local-hostname": "web1.example.com", "hostname": "web1"},
        ),
        ("local-hostname: 'it''s #1'\n", {"local-hostname": "it's #1", "hostname": "it's #1"}),
        ('"local-hostname": "a\\"b\\\\c\\x41\\u00e9"\n', {"local-hostname": 'a"b\\cAé', "hostname": 'a"b\\cAé'}),
        ("instance-id: i-4\n", {"instance-id": "i-4"}),
    ],
)
def test_meta_data_forms(
    seed_reader: tuple[Path, Path], tmp_path: Path, meta_data: str, expected: dict[str, str]
) -> None:
    got = read_meta(seed_reader, tmp_path, meta_data.encode())
    assert got == {key: value.encode() for key, value in expected.items()}


KEYS = ['ssh-ed25519 AAAA k"1 $(x) `y` \\z ü 😀', 'ssh-rsa BBBB from="a,b" - [x]: {y} # not a comment']


@pytest.mark.parametrize(
    ("user_data", "expected"),
    [
        (f"#cloud-config\nssh_authorized_keys: {json.dumps(KEYS, ensure_ascii=False)}\n", KEYS),
        (f"#cloud-config\nssh_authorized_keys: {json.dumps(KEYS)}\n", KEYS),  # \\u escapes, surrogate pairs
        ("#cloud-config\nssh_authorized_keys: [\n  \"a b\",\n  'c''d', plain e\n]\nx: 1\n", ["a b", "c'd", "plain e"]),
        (
            "#cloud-config\nssh_authorized_keys:\n  # root's keys\n  - ssh-rsa AAA one # comment\n\n"
            "  - \"ssh-rsa B\\\"q\"\n  - 'it''s'\nother: [z]\n- not a key\n",
            ["ssh-rsa AAA one", 'ssh-rsa B"q', "it's"],
        ),
        ("#cloud-config\nssh_authorized_keys:\n- a\n- b\n", ["a", "b"]),  # a top-level block list needs no indent
        ("#cloud-config\nusers:\n  - name: u\n    ssh_authorized_keys: [nested]\n", []),
        ("#cloud-config\nssh_authorized_keys: [first]\nssh_authorized_keys: [second]\n", ["second"]),  # YAML: last
    ],
)
def test_cloud_config_authorized_keys_forms(
    seed_reader: tuple[Path, Path], tmp_path: Path, user_data: str, expected: list[str]
) -> None:
    result = read_keys(seed_reader, tmp_path, user_data.encode())
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(f"{key}\n" for key in expected).encode()


def test_unterminated_flow_list_is_reported_not_guessed(seed_reader: tuple[Path, Path], tmp_path: Path) -> None:
    result = read_keys(seed_reader, tmp_path, b'#cloud-config\nssh_authorized_keys: ["a", "b\n')
    assert result.returncode != 0
    assert result.stdout == b""


@pytest.mark.parametrize(
    ("meta_data", "expected"),
    [
        # What CloudInit writes for ssh_authorized_keys: meta-data's public-keys, a JSON list.
        (CloudInit(instance_id="i-5", ssh_authorized_keys=tuple(KEYS)).files()["meta-data"].decode(), KEYS),
        (json.dumps({"public-keys": KEYS, "instance-id": "i-6"}), KEYS),  # \\u escapes, one line
        ('{"public-keys": [], "instance-id": "i-7"}', []),
        ('{"nested": {"public-keys": ["no"]}, "instance-id": "i-8"}', []),
        ("public-keys: ssh-rsa CCCC one\n", ["ssh-rsa CCCC one"]),  # one key as a string (YAML block mapping)
    ],
)
def test_meta_data_public_keys_forms(
    seed_reader: tuple[Path, Path], tmp_path: Path, meta_data: str, expected: list[str]
) -> None:
    got = read_meta(seed_reader, tmp_path, meta_data.encode())
    assert got.get("public-keys", b"") == "".join(f"{key}\n" for key in expected).encode()
