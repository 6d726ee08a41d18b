"""The helpers the core gives backend authors: refusing unknown connection options, making MAC addresses."""

from __future__ import annotations

import pytest

from polyvisor.backend_helpers import random_mac, refuse_unknown_options
from polyvisor.errors import ValidationError
from polyvisor.model import NicSpec


def test_known_options_pass() -> None:
    refuse_unknown_options({"readonly": True}, ("readonly", "transport"), backend="mine")
    refuse_unknown_options((), (), backend="mine")


def test_an_unknown_option_is_named_with_the_known_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        refuse_unknown_options(
            {"readonly": "1", "colour": "red", "bogus": "x"}, {"transport", "readonly"}, backend="mine"
        )
    assert caught.value.field == "options"
    assert caught.value.message == (
        "unknown mine connection option(s) bogus, colour; known: username, password, readonly, transport"
    )


def test_the_message_never_shows_a_value() -> None:
    with pytest.raises(ValidationError) as caught:
        refuse_unknown_options({"pasword": "Sup3r-secret"}, (), backend="mine")
    assert "pasword" in str(caught.value)
    assert "Sup3r-secret" not in str(caught.value)


def test_username_and_password_are_listed_once() -> None:
    with pytest.raises(ValidationError, match=r"known: username, password, readonly$"):
        refuse_unknown_options({"x": 1}, ("password", "readonly", "username"), backend="mine")


@pytest.mark.parametrize("prefix", ["52:54:00", "00:15:5D"])
def test_a_random_mac_keeps_the_prefix_and_is_a_valid_nic_mac(prefix: str) -> None:
    mac = random_mac(prefix)
    assert mac.startswith(prefix.lower() + ":")
    assert NicSpec(mac=mac).mac == mac  # the model accepts it unchanged: lowercase, colon-separated
    assert len(mac.split(":")) == 6


def test_random_macs_differ() -> None:
    macs = {random_mac("52:54:00") for _ in range(64)}
    assert len(macs) > 60  # 3 random bytes: one collision among 64 draws has odds of about 1e-4, four of ~1e-17


@pytest.mark.parametrize("prefix", ["52:54", "52:54:00:01", "525400", "zz:54:00", "52-54-00", ""])
def test_a_malformed_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="three bytes"):
        random_mac(prefix)
