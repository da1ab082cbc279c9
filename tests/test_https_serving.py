"""HTTPS in one setting: the certificate Quietcast makes for itself (or the one it is given), how `make run` serves
it, and the WebSocket Origin check of a site served over https. The browser side is tests/browser/test_https.py."""

import ipaddress
import os
import socket
import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from quietcast import serve, tls
from quietcast.ws_origin import is_allowed_origin, page_scheme
from tests.live_server import running_like_make_run, server_environment

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def adapter(*ips) -> SimpleNamespace:
    return SimpleNamespace(ips=[SimpleNamespace(ip=ip) for ip in ips])


@pytest.fixture
def lan(monkeypatch):
    """This machine on a LAN: a Wi-Fi address, an IPv6 one, and a link-local one no browser can open."""
    adapters = [
        adapter("127.0.0.1", ("::1", 0, 0)),
        adapter("192.168.1.23", ("fd00:1::23", 0, 0), ("fe80::1", 0, 2)),
    ]
    monkeypatch.setattr(tls.ifaddr, "get_adapters", lambda: adapters)


def alternative_names(path: Path) -> tuple[set[str], set[str]]:
    dns_names, addresses = tls.names_in(tls.load_certificate(path))
    return dns_names, {str(address) for address in addresses}


# --- the certificate made once --------------------------------------------------------------------------------


def test_the_certificate_names_the_host_its_lan_addresses_localhost_and_loopback(tmp_path, lan):
    files = tls.self_signed_certificate(tmp_path / "tls", now=NOW)
    dns_names, addresses = alternative_names(files.certificate)
    host = socket.gethostname()
    assert {host, "localhost"} <= dns_names
    if "." not in host:
        assert f"{host}.local" in dns_names  # what mDNS resolves on most LANs
    assert addresses == {"127.0.0.1", "::1", "192.168.1.23", "fd00:1::23"}  # not fe80::1


def test_the_certificate_is_one_browsers_accept_for_a_server(tmp_path, lan):
    files = tls.self_signed_certificate(tmp_path / "tls", now=NOW)
    certificate = tls.load_certificate(files.certificate)
    assert certificate.issuer == certificate.subject  # self-signed
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc <= timedelta(days=826)
    assert certificate.not_valid_before_utc < NOW < certificate.not_valid_after_utc
    assert files.private_key.stat().st_mode & 0o077 == 0  # the key is the server's alone


def test_the_certificate_is_made_once_and_kept(tmp_path, lan):
    first = tls.self_signed_certificate(tmp_path / "tls", now=NOW)
    kept = first.certificate.read_bytes(), first.private_key.read_bytes()
    again = tls.self_signed_certificate(tmp_path / "tls", now=NOW + timedelta(days=400))
    assert again == first
    assert (again.certificate.read_bytes(), again.private_key.read_bytes()) == kept


def test_a_certificate_about_to_expire_is_replaced_at_the_next_start(tmp_path, lan):
    first = tls.self_signed_certificate(tmp_path / "tls", now=NOW)
    old = tls.load_certificate(first.certificate)
    later = old.not_valid_after_utc - timedelta(days=3)
    renewed = tls.load_certificate(tls.self_signed_certificate(tmp_path / "tls", now=later).certificate)
    assert renewed.serial_number != old.serial_number
    assert renewed.not_valid_after_utc > later + timedelta(days=800)


def test_names_the_machine_gained_since_are_reported(tmp_path, lan, monkeypatch):
    files = tls.self_signed_certificate(tmp_path / "tls", now=NOW)
    certificate = tls.load_certificate(files.certificate)
    assert tls.names_missing(certificate, tls.machine_names()) == []
    monkeypatch.setattr(tls.ifaddr, "get_adapters", lambda: [adapter("10.0.0.7")])
    assert tls.names_missing(certificate, tls.machine_names()) == ["10.0.0.7"]


# --- what `make run` serves -----------------------------------------------------------------------------------


def test_https_is_served_by_quietcast_itself_only_without_a_tls_proxy(settings, tmp_path, lan):
    settings.VAR_DIR = tmp_path
    settings.TLS_CERT = settings.TLS_KEY = ""
    settings.SERVE_TLS = False
    assert serve.tls_files() is None
    assert serve.daphne_arguments("0.0.0.0", 8000)[:4] == ["-b", "0.0.0.0", "-p", "8000"]
    settings.SERVE_TLS = True
    files = serve.tls_files()
    assert files == tls.TlsFiles(tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem")


@pytest.mark.parametrize(
    ("environment", "serves_tls"),
    [
        ({"HTTPS": "false"}, False),
        ({"HTTPS": "true"}, True),
        ({"HTTPS": "true", "TRUSTED_PROXY": "true"}, False),  # the proxy in front terminates TLS
        ({"HTTPS": "true", "TRUSTED_PROXY": "true", "TLS_CERT": "/c.pem", "TLS_KEY": "/k.pem"}, True),
    ],
)
def test_one_setting_decides_whether_quietcast_serves_https_itself(tmp_path, environment, serves_tls):
    script = "import django; django.setup(); from django.conf import settings; print(settings.SERVE_TLS)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "quietcast.settings", "QUIETCAST_VAR_DIR": str(tmp_path)}
    env.update({"HTTPS": "", "TRUSTED_PROXY": "", "TLS_CERT": "", "TLS_KEY": "", **environment})
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == str(serves_tls), result.stderr


def test_the_tls_endpoint_escapes_colons_in_paths_and_addresses(settings):
    settings.TRUSTED_PROXY = False
    files = tls.TlsFiles(certificate=Path("/srv/c:d/cert.pem"), private_key=Path("/srv/c:d/key.pem"))
    assert serve.daphne_arguments("::", 8443, files) == [
        "-e",
        r"ssl:port=8443:interface=\:\::privateKey=/srv/c\:d/key.pem:certKey=/srv/c\:d/cert.pem",
        "quietcast.asgi:application",
    ]


def test_an_unreadable_given_certificate_is_refused_naming_the_setting(settings, tmp_path):
    settings.SERVE_TLS = True
    settings.TLS_CERT, settings.TLS_KEY = str(tmp_path / "missing.pem"), str(tmp_path / "key.pem")
    with pytest.raises(serve.CannotServe, match="TLS_CERT=.*missing.pem cannot be read"):
        serve.tls_files()


def test_a_certificate_without_its_key_stops_the_server_and_says_why():
    env = {**os.environ, "HTTPS": "true", "TLS_CERT": "/etc/cert.pem", "TLS_KEY": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "TLS_CERT and TLS_KEY go together" in result.stderr


def test_a_chain_after_the_certificate_is_sent_too(tmp_path, lan):
    leaf = tls.self_signed_certificate(tmp_path / "leaf", now=NOW)
    intermediate = tls.self_signed_certificate(tmp_path / "intermediate", now=NOW)
    given = tmp_path / "fullchain.pem"
    given.write_bytes(leaf.certificate.read_bytes() + intermediate.certificate.read_bytes())
    chain = serve.chain_after_leaf(given, tmp_path / "var")
    assert chain is not None and chain.read_bytes() == intermediate.certificate.read_bytes()
    assert serve.chain_after_leaf(leaf.certificate, tmp_path / "var") is None


def test_make_run_serves_the_certificate_it_is_given(tmp_path, lan):
    given = tls.self_signed_certificate(tmp_path / "given", now=datetime.now(UTC))
    env = server_environment(
        tmp_path, HTTPS="true", TLS_CERT=str(given.certificate), TLS_KEY=str(given.private_key)
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    with running_like_make_run(env, tmp_path / "serve.log") as server:
        port = int(server.url.rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=given.certificate)  # trusting only the given certificate
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as connection:
                served = connection.getpeercert(binary_form=True)
    assert served == tls.load_certificate(given.certificate).public_bytes(Encoding.DER)
    assert not (tmp_path / "var" / "tls" / "cert.pem").exists()  # none of its own was made


# --- the WebSocket Origin check over https --------------------------------------------------------------------


def scope(*headers: tuple[bytes, bytes]) -> dict:
    return {"type": "websocket", "headers": list(headers)}


@pytest.mark.parametrize(
    ("https", "trusted_proxy", "forwarded_proto", "expected"),
    [
        (False, False, None, "http"),
        (True, False, None, "https"),  # Quietcast serves TLS itself, or a proxy redirects plain http
        (False, True, b"https", "https"),  # a trusted proxy says so, as Django's CSRF check reads it
        (False, False, b"https", "http"),  # anyone else saying so is not believed
    ],
)
def test_the_pages_scheme_follows_the_https_settings(settings, https, trusted_proxy, forwarded_proto, expected):
    settings.HTTPS, settings.TRUSTED_PROXY = https, trusted_proxy
    headers = [(b"x-forwarded-proto", forwarded_proto)] if forwarded_proto else []
    assert page_scheme(scope(*headers)) == expected


def test_a_same_origin_https_page_passes_with_no_trusted_origins_set(settings):
    settings.HTTPS, settings.TRUSTED_PROXY, settings.CSRF_TRUSTED_ORIGINS = True, False, []
    host = "quietcast.local:8000"
    scheme = page_scheme(scope((b"host", host.encode())))
    assert is_allowed_origin(f"https://{host}", host, scheme)
    assert is_allowed_origin("https://QuietCast.local:8000", host, scheme)
    assert not is_allowed_origin(f"http://{host}", host, scheme)  # a plain-http page on the same name
    assert not is_allowed_origin("https://quietcast.local:9000", host, scheme)
    assert not is_allowed_origin("https://evil.example", host, scheme)
    assert not is_allowed_origin("null", host, scheme)


def test_an_address_on_the_lan_is_its_own_origin(settings):
    settings.HTTPS, settings.CSRF_TRUSTED_ORIGINS = True, []
    host = f"{ipaddress.IPv4Address('192.168.1.23')}:8000"
    assert is_allowed_origin(f"https://{host}", host, page_scheme(scope()))
