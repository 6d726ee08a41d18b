"""Reading VM specs from TOML and JSON text."""

from __future__ import annotations

import pytest

from polyvisor.cli.specfile import parse_spec
from polyvisor.errors import ValidationError
from polyvisor.model import DiskBus, Firmware

TOML = """
name = "db"
cpus = 4
memory_mib = 4096
firmware = "uefi"
labels = { role = "db" }

[[disks]]
size_mib = 10240
bus = "scsi"

[[nics]]
network = "default"
"""


def test_toml_with_tables() -> None:
    spec = parse_spec(TOML, "db.toml")
    assert (spec.name, spec.cpus, spec.firmware) == ("db", 4, Firmware.UEFI)
    assert spec.disks[0].bus is DiskBus.SCSI
    assert spec.nics[0].network == "default"


def test_format_detected_from_content_without_extension() -> None:
    assert parse_spec('{"name": "j"}', "stdin").name == "j"
    assert parse_spec('name = "t"', "stdin").name == "t"


def test_explicit_format_wins() -> None:
    with pytest.raises(ValidationError, match="not valid TOML"):
        parse_spec('{"name": "j"}', "spec.json", "toml")


def test_nested_field_errors_name_the_field_and_the_file() -> None:
    with pytest.raises(ValidationError) as info:
        parse_spec('name = "x"\n[[disks]]\nsize_mib = 0\n', "vm.toml")
    assert info.value.field == "disk.size_mib"
    assert "vm.toml" in str(info.value)


def test_a_json_list_is_not_a_spec() -> None:
    with pytest.raises(ValidationError, match="must be a table"):
        parse_spec("[1, 2]", "vm.json")


def test_toml_syntax_error_has_a_position() -> None:
    with pytest.raises(ValidationError, match=r"^vm.toml is not valid TOML: .*line 2"):
        parse_spec('name = "x"\ncpus = \n', "vm.toml")
