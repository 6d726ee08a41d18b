"""Kerberos and CredSSP for the transports: what each client library needs, and what their failures mean.

pypsrp speaks Kerberos through pyspnego itself. pywinrm's own Kerberos needs pykerberos and only reads a ticket
cache, so the WinRM shell transport gets :class:`KerberosAuth` instead: a requests authentication handler on pyspnego
(a password or the ticket cache, mutual authentication, channel binding over HTTPS) that offers the
``wrap_winrm``/``unwrap_winrm`` pywinrm's message encryption calls.

:func:`kerberos_failure` turns MIT Kerberos' error codes, found anywhere in an exception's chain, into a sentence
saying what is wrong and what to do.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

from polyvisor.errors import ValidationError

__all__ = ["KerberosAuth", "close_failed_responses", "install_kerberos", "kerberos_failure", "require"]

# MIT krb5 error codes (krb5/krb5_err.et: ERROR_TABLE_BASE_krb5 = -1765328384 plus the RFC 4120 error number).
_KRB5 = -1765328384
_C_PRINCIPAL_UNKNOWN = _KRB5 + 6
_S_PRINCIPAL_UNKNOWN = _KRB5 + 7
_PREAUTH_FAILED = _KRB5 + 24
_BAD_INTEGRITY = _KRB5 + 31  # a wrong password when the KDC asks for no preauthentication
_KEY_EXPIRED = _KRB5 + 23
_TKT_EXPIRED = _KRB5 + 32
_SKEW = _KRB5 + 37
_KDC_UNREACH = -1765328228
_REALM_UNKNOWN = -1765328230
_NO_CREDENTIALS_CACHE = -1765328189  # KRB5_FCC_NOFILE
_GSS_S_CREDENTIALS_EXPIRED = 11 << 16
_GSS_S_NO_CRED = 7 << 16
_SEARCH = re.compile(r"Clock skew too great|not found in Kerberos database|expired|No Kerberos credentials", re.I)

_INSTALL = {"kerberos": ("spnego", "gssapi"), "credssp": ("requests_credssp",)}


def require(auth: str) -> None:
    """Raise ValidationError naming the extra to install when ``auth`` needs a library that is missing."""
    import importlib.util

    missing = [module for module in _INSTALL.get(auth, ()) if importlib.util.find_spec(module) is None]
    if missing:
        raise ValidationError(
            f"auth={auth} needs {', '.join(missing)}: pip install 'polyvisor-hyperv[{auth}]' (python-gssapi also "
            "needs MIT Kerberos' libraries: Debian libkrb5-dev to build, libgssapi-krb5-2 to run)",
            field="auth",
        )


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        base = getattr(current, "base_error", None)
        if isinstance(base, BaseException) and id(base) not in seen:
            yield base
            seen.add(id(base))
        current = current.__cause__ or current.__context__


def close_failed_responses(error: BaseException) -> None:
    """Close the HTTP responses an authentication handler was holding when it raised.

    pypsrp's Negotiate handler lets a Kerberos failure (raised by pyspnego while answering a 401) escape with the
    response still checked out of the pool, so its socket is only closed by the garbage collector.
    """
    import requests

    for item in _chain(error):
        traceback = item.__traceback__
        while traceback is not None:
            for value in list(traceback.tb_frame.f_locals.values()):
                if isinstance(value, requests.Response):
                    value.close()
            traceback = traceback.tb_next


def _codes(error: BaseException) -> set[int]:
    codes: set[int] = set()
    for item in _chain(error):
        # pykrb5's Krb5Error carries its code only in its text ("Preauthentication failed -1765328360").
        codes.update(int(found) for found in re.findall(r"(-1765\d{6})\b", str(item)))
        for name in ("min_code", "errno", "code", "maj_code"):
            value = getattr(item, name, None)
            if isinstance(value, int):
                codes.add(value)
                if name == "maj_code":
                    codes.add(value & 0xFFFF0000)  # the routine error, without the calling/supplementary bits
    return codes


def kerberos_failure(error: BaseException, *, principal: str | None, spn: str) -> str | None:
    """What a Kerberos failure means and what to do, or None when ``error`` is no Kerberos failure.

    The codes are MIT's (a Windows KDC answers with the same RFC 4120 errors: MS-KILE section 3.3.5).
    """
    codes = _codes(error)
    text = " ".join(str(item) for item in _chain(error))
    who = principal or "the ticket cache's principal"
    if _SKEW in codes or "clock skew too great" in text.lower():
        return (
            "Kerberos refused the ticket because the clocks differ by more than the realm allows (5 minutes by "
            "default, KRB_AP_ERR_SKEW); synchronise this machine's and the host's clocks with the domain (NTP, "
            "w32time)"
        )
    if _S_PRINCIPAL_UNKNOWN in codes or ("not found in kerberos database" in text.lower() and spn in text):
        return (
            f"the KDC knows no service principal {spn} (KDC_ERR_S_PRINCIPAL_UNKNOWN); connect by the host's DNS "
            "name, or pass spn_host=NAME with the name its HTTP/ principal is registered under (setspn -L HOST)"
        )
    if _C_PRINCIPAL_UNKNOWN in codes or "not found in kerberos database" in text.lower():
        return (
            f"the KDC knows no user {who} (KDC_ERR_C_PRINCIPAL_UNKNOWN); check the user name and its realm "
            "(user@REALM, the realm in upper case)"
        )
    if _PREAUTH_FAILED in codes or _BAD_INTEGRITY in codes:
        return f"the KDC refused the password of {who} (KDC_ERR_PREAUTH_FAILED); check the password"
    if _KEY_EXPIRED in codes:
        return f"the password of {who} has expired (KDC_ERR_KEY_EXPIRED); change it, then connect again"
    if _TKT_EXPIRED in codes or _GSS_S_CREDENTIALS_EXPIRED in codes or "ticket expired" in text.lower():
        return (
            f"the Kerberos ticket of {who} has expired; get a new one (kinit, or kinit -R while it is renewable), "
            "or pass password=... to let polyvisor get its own"
        )
    if _NO_CREDENTIALS_CACHE in codes or _GSS_S_NO_CRED in codes:
        return (
            "there is no Kerberos ticket to use (no ticket cache, or none for that principal); run kinit first "
            "(KRB5CCNAME names the cache), or pass password=..."
        )
    if _KDC_UNREACH in codes:
        return "no KDC of the realm answered; check the realm's kdc entries in krb5.conf and that the KDC is reachable"
    if _REALM_UNKNOWN in codes:
        return (
            "the realm is unknown to this machine; add it to krb5.conf ([realms] and [domain_realm]) or use user@REALM"
        )
    if codes and _SEARCH.search(text):
        return f"Kerberos failed: {text.splitlines()[0] if text else type(error).__name__}"
    return None


def _cbt_data(response: Any) -> bytes | None:
    """RFC 5929 tls-server-end-point data of the HTTPS server's certificate, None on plain HTTP."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        sock = response.raw._fp.fp.raw._sock  # urllib3's socket: requests offers no public way to it
    except AttributeError:
        return None
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    der = getpeercert(True)
    if not der:
        return None
    certificate = x509.load_der_x509_certificate(der)
    algorithm = certificate.signature_hash_algorithm
    # RFC 5929 section 4.1: MD5 and SHA-1 certificates bind with SHA-256.
    digest = algorithm if isinstance(algorithm, hashes.SHA384 | hashes.SHA512) else hashes.SHA256()
    return b"tls-server-end-point:" + certificate.fingerprint(digest)


class KerberosAuth:
    """A requests authentication handler: Kerberos through pyspnego, for pywinrm's Transport.

    The handshake answers the host's first 401 on the same TCP connection (Kerberos authenticates the connection);
    the context then wraps and unwraps message bodies for pywinrm's ``Encryption(session, "kerberos")``. A 401 after
    the handshake is handed back as it is: the encrypted body cannot be resent under a new context, and the
    transport opens a new session.
    """

    winrm_encryption_available = True

    def __init__(self, username: str | None, password: str | None, *, hostname: str, service: str = "HTTP") -> None:
        self._username = username
        self._password = password
        self._hostname = hostname
        self._service = service
        self.context: Any = None

    def __repr__(self) -> str:
        return f"<KerberosAuth {self._service}/{self._hostname} user={self._username!r}>"

    def __call__(self, request: Any) -> Any:
        request.headers["Connection"] = "Keep-Alive"
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: Any, **kwargs: Any) -> Any:
        if response.status_code != 401 or (self.context is not None and self.context.complete):
            return response
        if "negotiate" not in response.headers.get("WWW-Authenticate", "").lower():
            return response
        try:
            return self._handshake(response, **kwargs)
        except BaseException:
            # A failed handshake leaves the connection mid-exchange: close it rather than leave it to the GC.
            response.close()
            raise

    def _handshake(self, response: Any, **kwargs: Any) -> Any:
        import spnego
        from spnego.channel_bindings import GssChannelBindings

        cbt = _cbt_data(response)
        self.context = spnego.client(
            self._username,
            self._password,
            hostname=self._hostname,
            service=self._service,
            protocol="kerberos",
            channel_bindings=GssChannelBindings(application_data=cbt) if cbt else None,
            context_req=spnego.ContextReq.default,
            options=spnego.NegotiateOptions.wrapping_winrm,
        )
        token = self.context.step()
        while token is not None:
            response.content  # noqa: B018  # read the body so that the connection can carry the next request
            response.raw.release_conn()
            request = response.request.copy()
            request.headers["Authorization"] = "Negotiate " + base64.b64encode(token).decode()
            response = response.connection.send(request, **kwargs)
            reply = _token(response.headers.get("WWW-Authenticate", ""))
            if reply is None:
                break
            token = self.context.step(reply)  # a KRB-ERROR token raises here, with its reason
        return response

    def wrap_winrm(self, host: str, message: bytes) -> tuple[bytes, bytes]:
        """Encrypt a message body; return (sealed data, header) as pywinrm wants them."""
        wrapped = self.context.wrap_winrm(message)
        return wrapped.data, wrapped.header

    def unwrap_winrm(self, host: str, message: bytes, header: bytes) -> bytes:
        """Decrypt a message body."""
        plain: bytes = self.context.unwrap_winrm(header, message)
        return plain


def _token(header: str) -> bytes | None:
    match = re.search(r"(?:Negotiate|Kerberos)\s+([A-Za-z0-9+/=]+)", header, re.I)
    return base64.b64decode(match.group(1)) if match else None


def install_kerberos(transport: Any, auth: KerberosAuth, *, verify: bool | str, encrypt: bool) -> None:
    """Give a pywinrm Transport a requests session that authenticates with ``auth``, as its own ``build_session``
    would with pykerberos: no proxy, the CA given, pywinrm's headers, and message encryption set up when ``encrypt``
    (plain HTTP)."""
    import requests

    session = requests.Session()
    session.trust_env = False  # no proxy from the environment, and REQUESTS_CA_BUNDLE must not override ``verify``
    session.verify = verify
    session.auth = auth
    session.headers.update(transport.default_headers)
    transport.session = session
    if encrypt:
        try:
            transport.setup_encryption(session)  # authenticates now: the first request must already be encrypted
        except BaseException:
            session.close()
            transport.session = None
            raise
