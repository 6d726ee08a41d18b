"""Reading a VM spec from a TOML or JSON file, with errors that name the file and the field."""

from __future__ import annotations

import json
import tomllib
from typing import Any

from polyvisor.errors import ValidationError
from polyvisor.model import VMSpec

__all__ = ["FORMATS", "parse_spec"]

FORMATS = ("auto", "toml", "json")


def _detect(text: str, source: str) -> str:
    lowered = source.lower()
    if lowered.endswith(".json"):
        return "json"
    if lowered.endswith(".toml"):
        return "toml"
    # stdin or an unusual extension: a JSON document is an object, and TOML cannot start with '{'.
    return "json" if text.lstrip().startswith("{") else "toml"


def _load(text: str, source: str, fmt: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(
                f"{source} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValidationError(f"{source} is not valid TOML: {error}") from None


def parse_spec(text: str, source: str, fmt: str = "auto") -> VMSpec:
    """Return the validated spec in ``text`` (read from ``source``, a path or ``-``)."""
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", field="format")
    if fmt == "auto":
        fmt = _detect(text, source)
    data = _load(text, source, fmt)
    try:
        return VMSpec.from_dict(data)
    except ValidationError as error:
        raise ValidationError(f"{error.message} (in {source}; fix this field)", field=error.field) from None
