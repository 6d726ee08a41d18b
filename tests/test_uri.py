from __future__ import annotations

import pytest

from polyvisor import URI, ValidationError

LIBVIRT_URIS = [
    "test:///default",
    "qemu:///system",
    "qemu:///session",
    "qemu+ssh://root@example.com/system",
    "qemu+ssh://admin@example.com:2222/system?keyfile=/root/.ssh/id_ed25519&no_verify=1",
    "qemu+tls://host.example.com/system?pkipath=/etc/pki/x",
    "qemu+unix:///system?socket=/run/libvirt/libvirt-sock",
    "qemu+tcp://10.0.0.5:16509/system",
    "qemu+ext:///system?command=/opt/bin/tunnel",
    "xen:///system",
    "lxc:///",
    "esx://vc.example.com/?no_verify=1",
    "vpx://vc.example.com/Datacenter/cluster1/esx1?no_verify=1",
    "ch:///session",
    "bhyve:///system",
    "qemu+ssh://[2001:db8::1]/system",
]


@pytest.mark.parametrize("text", LIBVIRT_URIS)
def test_libvirt_uris_parse_and_keep_raw_text(text: str) -> None:
    uri = URI.parse(text)
    assert uri.raw == text
    assert text.startswith(uri.scheme + ":")
    assert URI.parse(uri.render()).render() == uri.render()


def test_parts() -> None:
    uri = URI.parse("qemu+ssh://admin@example.com:2222/system?keyfile=/k&mode=direct")
    assert (uri.driver, uri.transport, uri.username, uri.host, uri.port, uri.path) == (
        "qemu",
        "ssh",
        "admin",
        "example.com",
        2222,
        "/system",
    )
    assert uri.params == {"keyfile": "/k", "mode": "direct"}
    assert uri.param("missing", "d") == "d"
    assert not uri.is_local
    assert URI.parse("qemu:///system").is_local


def test_password_is_never_rendered() -> None:
    uri = URI.parse("hyperv://CORP%5Cadmin:s3cr%40t@hv01:5986/?transport=psrp")
    assert uri.username == "CORP\\admin"
    assert uri.password == "s3cr@t"
    for text in (str(uri), repr(uri), uri.render(), uri.without_password().raw):
        assert "s3cr" not in text
    assert "s3cr%40t" in uri.render(hide_password=False)
    assert uri.without_password().password is None


@pytest.mark.parametrize("text", ["", "default", "no scheme", "1abc:///x", "qemu://host:99999/", "qemu:///sys\ntem"])
def test_invalid_uris(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        URI.parse(text)
    assert caught.value.field == "uri"


def test_invalid_uri_error_hides_password() -> None:
    with pytest.raises(ValidationError) as caught:
        URI.parse("qemu://user:hunter2@host:notaport/")
    assert "hunter2" not in str(caught.value)


def test_frozen() -> None:
    uri = URI.parse("test:///default")
    with pytest.raises(AttributeError):
        uri.host = "x"  # type: ignore[misc]
