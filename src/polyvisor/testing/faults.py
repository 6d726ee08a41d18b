"""Faults of ``memory://``: the ways real hosts misbehave, asked for in the URI's query.

Without a query, ``memory://`` keeps the whole contract. Each query option makes *that connection* misbehave the
way a real host or hypervisor can, so the core's, the CLI's, the fleet's and the asyncio face's tests reach every
error path on the one fake. Options combine (``memory:///lab?without=pause&fail=save``); an unknown option, or a
value it does not take, is refused with :class:`~polyvisor.errors.ValidationError` naming the known ones.

``features=F,...`` and ``without=F,...``
    The host's probe narrows the connection to these features, or drops these (:class:`~polyvisor.model.Feature`
    values such as ``pause``, ``networks``, ``events``), as a host with an older hypervisor does. Without
    ``events`` the core polls for changes.
``why=FEATURE=TEXT;...``
    The probe says why it took these features away (:attr:`~polyvisor.backend.Backend.feature_reasons`), as the
    libvirt backend says why KVM-only features are missing under TCG: the reason reaches the UnsupportedError of a
    call that needs the feature, and ``polyvisor host``.
``fail=PRIMITIVE,...`` and ``fail-message=TEXT``
    These primitives (backend method names, :data:`PRIMITIVES`: ``save``, ``list_vms``, ...) raise
    :class:`~polyvisor.errors.BackendError` whose native message is TEXT (default ``injected failure``), as a
    broken hypervisor's would; the host is left unchanged.
``guest=ignore-shutdown``
    Every guest ignores the graceful shutdown and reboot requests of this connection (for one VM, use the
    :data:`~polyvisor.testing.memory.GUEST_BEHAVIOUR_LABEL` label instead).
``unreachable=true``
    Opening the connection fails with :class:`~polyvisor.errors.ConnectionError`, as for a host that is down.
``password-sha256=HEX``
    The host accepts only a password whose SHA-256 is HEX (:func:`password_digest`); any other, or none, is
    refused with :class:`~polyvisor.errors.AuthenticationError`. The URI holds the digest alone, so an output
    that shows the URI shows no secret.
``leak-secrets=true``
    The backend is careless: it logs the raw URI and the password at DEBUG (logger ``polyvisor.testing.faults``)
    and names the password it was given in authentication errors, for tests that prove callers mask them.

Every connection also records the primitives it was asked for, in call order (:attr:`Instrumented.calls`): a
call counts once, however many overrides of a test's subclass it passes through.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polyvisor.backend import Backend, Credentials
from polyvisor.errors import AuthenticationError, BackendError, ConnectionError, ValidationError
from polyvisor.model import Feature
from polyvisor.uri import URI

if TYPE_CHECKING:
    from polyvisor import Connection

__all__ = ["MUTATING", "PRIMITIVES", "Faults", "Instrumented", "calls", "password_digest"]

log = logging.getLogger(__name__)

PRIMITIVES = (
    "host_info",
    "networks",
    "host_devices",
    "create_network",
    "delete_network",
    "list_vms",
    "lookup",
    "info",
    "status",
    "create",
    "start",
    "shutdown",
    "stop",
    "reset",
    "reboot",
    "pause",
    "resume",
    "save",
    "discard_saved_state",
    "delete",
    "set_labels",
    "snapshot_create",
    "snapshot_list",
    "snapshot_revert",
    "snapshot_delete",
    "attach_disk",
    "detach_disk",
    "attach_nic",
    "detach_nic",
    "resize_disk",
    "reconfigure",
    "addresses",
    "address_answers",
    "ready_answers",
    "console_output",
    "stats",
    "open_console",
    "guest_exec",
    "guest_read_file",
    "guest_write_file",
    "subscribe",
    "pools",
    "volumes",
    "upload_image",
    "download_image",
    "create_pool",
    "delete_pool",
    "create_volume",
    "resize_volume",
    "delete_volume",
    "graphics",
    "screenshot",
)
"""The backend methods that reach the hypervisor: each is recorded, and ``fail`` can break any of them."""

MUTATING = frozenset(PRIMITIVES) - {
    "host_info",
    "networks",
    "host_devices",
    "list_vms",
    "lookup",
    "info",
    "status",
    "snapshot_list",
    "addresses",
    "address_answers",
    "ready_answers",
    "console_output",
    "stats",
    "guest_read_file",
    "subscribe",
    "pools",
    "volumes",
    "download_image",
    "graphics",
    "screenshot",
}
"""The primitives that change something on the hypervisor (the others only read)."""

_OPTIONS = (
    "features",
    "without",
    "fail",
    "fail-message",
    "guest",
    "unreachable",
    "password-sha256",
    "leak-secrets",
    "why",
)
_GUESTS = ("ignore-shutdown",)
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def password_digest(password: str) -> str:
    """The ``password-sha256`` value of a host that accepts ``password``."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def calls(conn: Connection) -> list[str]:
    """The primitives the backend of ``conn`` (a ``memory://`` connection) was asked for so far, in call order."""
    backend = conn.backend
    if not isinstance(backend, Instrumented):
        raise TypeError(f"{conn!r} records no calls: its backend is {type(backend).__name__}, not memory://")
    return backend.calls


def _refuse(option: str, value: str, known: Iterable[str]) -> ValidationError:
    return ValidationError(
        f"memory:// option {option}={value!r} is not known; give one of: {', '.join(sorted(known))}", field="uri"
    )


def _flag(option: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _refuse(option, value, ("true", "false"))


def _features(option: str, value: str) -> frozenset[Feature]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    known = {feature.value for feature in Feature}
    for name in names:
        if name not in known:
            raise _refuse(option, name, known)
    return frozenset(Feature(name) for name in names)


@dataclass(frozen=True)
class Faults:
    """The misbehaviour one ``memory://`` connection was asked for (see the module's documentation)."""

    features: frozenset[Feature] | None = None
    without: frozenset[Feature] = frozenset()
    fail: frozenset[str] = frozenset()
    fail_message: str = "injected failure"
    ignore_shutdown: bool = False
    unreachable: bool = False
    password_sha256: str | None = None
    leak_secrets: bool = False
    why: tuple[tuple[Feature, str], ...] = ()

    @classmethod
    def from_uri(cls, uri: URI) -> Faults:
        """Read the faults from the URI's query; refuse options and values that are not known."""
        options: dict[str, Any] = {}
        for option, value in uri.params.items():
            if option not in _OPTIONS:
                raise ValidationError(
                    f"memory:// has no option {option!r}; its options: {', '.join(sorted(_OPTIONS))}", field="uri"
                )
            if option in ("features", "without"):
                options[option] = _features(option, value)
            elif option == "why":
                pairs = [item.partition("=") for item in value.split(";") if item.strip()]
                options["why"] = tuple((next(iter(_features(option, name))), text) for name, _, text in pairs)
            elif option == "fail":
                primitives = frozenset(name.strip() for name in value.split(",") if name.strip())
                unknown = sorted(primitives - set(PRIMITIVES))
                if unknown:
                    raise _refuse(option, unknown[0], PRIMITIVES)
                options["fail"] = primitives
            elif option == "guest":
                if value not in _GUESTS:
                    raise _refuse(option, value, _GUESTS)
                options["ignore_shutdown"] = True
            elif option in ("unreachable", "leak-secrets"):
                options[option.replace("-", "_")] = _flag(option, value)
            else:  # fail-message, password-sha256
                options[option.replace("-", "_")] = value
        return cls(**options)

    def open(self, uri: URI, credentials: Credentials, host: str) -> None:
        """Fail as the host would when a client connects: unreachable, or refusing the credentials."""
        given = credentials.password.reveal() if credentials.password else None
        if self.leak_secrets:
            log.debug("opening %s with %s", uri.raw, given)
        if self.unreachable:
            raise ConnectionError(f"cannot reach {host}: connection refused; is the host up?", host=host)
        if self.password_sha256 is None:
            return
        if given is None or not hmac.compare_digest(password_digest(given), self.password_sha256.lower()):
            leak = f" (password {given!r})" if self.leak_secrets else ""
            raise AuthenticationError(
                f"{host} refused the credentials of {credentials.username!r}{leak}; check the password", host=host
            )

    def narrow(self, features: frozenset[Feature]) -> frozenset[Feature] | None:
        """What the host's probe reports of ``features`` (None: no narrowing)."""
        if self.features is None and not self.without:
            return None
        kept = features if self.features is None else features & self.features
        return kept - self.without

    def inject(self, primitive: str) -> None:
        """Raise the failure this connection was asked for on ``primitive``, if any."""
        if primitive in self.fail:
            message = self.fail_message
            raise BackendError(f"{primitive} failed: {message}", code="injected", native_message=message)


class Instrumented(Backend):
    """A backend whose primitives record their calls and obey the :class:`Faults` of the connection's URI.

    Subclasses call ``super().__init__(uri, credentials, host=NAME)``; every primitive (:data:`PRIMITIVES`) a
    subclass defines is wrapped when the class is made, so test subclasses of ``memory://`` are recorded too.
    """

    calls: list[str]
    """The primitives this connection was asked for, in call order (a test may clear it)."""
    faults: Faults

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in PRIMITIVES:
            method = cls.__dict__.get(name)
            if callable(method):
                setattr(cls, name, _instrumented(name, method))

    def __init__(self, uri: URI, credentials: Credentials, *, host: str) -> None:
        self.calls = []
        self._inside = threading.local()
        self.faults = Faults.from_uri(uri)
        self.faults.open(uri, credentials, host)
        self.feature_reasons = dict(self.faults.why)

    def mutations(self) -> list[str]:
        """The recorded calls that change something (:data:`MUTATING`)."""
        return [call for call in self.calls if call in MUTATING]

    def probe_features(self) -> frozenset[Feature] | None:
        return self.faults.narrow(self.static_features())


def _instrumented(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def primitive(self: Instrumented, *args: Any, **kwargs: Any) -> Any:
        inside = self._inside
        if getattr(inside, "call", None) is not None:  # a primitive calling another, or an override its base
            return method(self, *args, **kwargs)
        self.calls.append(name)
        self.faults.inject(name)
        inside.call = name
        try:
            return method(self, *args, **kwargs)
        finally:
            inside.call = None

    return primitive
