"""Small pieces every backend needs and none should write again: refusing unknown options, making MAC addresses.

A backend author imports them next to :mod:`polyvisor.backend`; the built-in backends use them, so each behaves
the same on every backend that does.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from polyvisor.errors import ValidationError

__all__ = ["random_mac", "refuse_unknown_options"]

_PREFIX = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){2}")


def refuse_unknown_options(given: Iterable[str], known: Iterable[str], *, backend: str) -> None:
    """Raise :class:`~polyvisor.errors.ValidationError` (field ``options``) if ``given`` holds a name not in ``known``.

    ``given`` are the option names a connection received (the keys of
    :attr:`Credentials.options <polyvisor.backend.Credentials.options>`, with any a URI query adds), ``known``
    those the backend accepts; ``backend`` names it in the message (:attr:`~polyvisor.backend.Backend.name`). The
    message names every unknown option and lists the known ones, ``username`` and ``password`` first (the
    keywords every backend takes). Only names are shown, never a value: a misspelt ``pasword=...`` stays secret.
    """
    accepted = set(known)
    unknown = sorted(set(given) - accepted)
    if unknown:
        listed = dict.fromkeys(["username", "password", *sorted(accepted)])
        raise ValidationError(
            f"unknown {backend} connection option(s) {', '.join(unknown)}; known: {', '.join(listed)}",
            field="options",
        )


def random_mac(prefix: str) -> str:
    """Return a MAC address made of the hypervisor's three-byte ``prefix`` and three random bytes.

    ``prefix`` is the vendor part the hypervisor's guests conventionally carry, written like ``"52:54:00"``
    (QEMU/KVM) or ``"00:15:5d"`` (Hyper-V). The result is lowercase and colon-separated, as
    :class:`~polyvisor.model.NicSpec` spells MACs: ``"52:54:00:3e:a1:07"``.
    """
    vendor = prefix.lower()
    if not _PREFIX.fullmatch(vendor):
        raise ValueError(f"a MAC prefix is three bytes like '52:54:00', not {prefix!r}")
    return vendor + "".join(f":{byte:02x}" for byte in secrets.token_bytes(3))
