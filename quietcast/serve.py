"""Serve Quietcast with Daphne on HOST:PORT, with the flags its settings call for.

`make run` starts the server through here rather than calling `daphne` from the shell script, so that settings
read from `.env` (TRUSTED_PROXY, HTTPS, TLS_CERT) shape the command line as they shape everything else.
"""

import os
import re
import sys
from pathlib import Path

import django
from django.conf import settings

from quietcast import tls

PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.DOTALL)


class CannotServe(Exception):
    """The settings ask for something the server cannot do; the message says what to change."""


def tls_files() -> tls.TlsFiles | None:
    """The certificate and key to serve https with, or None when Quietcast serves plain http."""
    if not settings.SERVE_TLS:
        return None
    if not settings.TLS_CERT:
        return tls.self_signed_certificate(settings.VAR_DIR / "tls")
    files = tls.TlsFiles(certificate=Path(settings.TLS_CERT), private_key=Path(settings.TLS_KEY))
    for name, path in (("TLS_CERT", files.certificate), ("TLS_KEY", files.private_key)):
        if not os.access(path, os.R_OK):
            raise CannotServe(f"{name}={path} cannot be read: give the path of a PEM file this account may read.")
    return files


def chain_after_leaf(certificate: Path, directory: Path) -> Path | None:
    """A certificate file with its chain after it (as certificate authorities hand them out) has its chain sent
    too: Twisted reads the first certificate, and the rest from a file of their own, written here."""
    blocks = PEM_CERTIFICATE.findall(certificate.read_bytes())
    if len(blocks) < 2:
        return None
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    chain = directory / "given-chain.pem"
    chain.write_bytes(b"".join(blocks[1:]))
    return chain


def tls_endpoint(host: str, port: int, files: tls.TlsFiles, chain: Path | None = None) -> str:
    """A Twisted endpoint description for https on host:port (colons in paths and addresses escaped)."""
    from twisted.internet.endpoints import quoteStringArgument

    parts = [
        f"port={port}",
        f"interface={quoteStringArgument(host.strip('[]'))}",
        f"privateKey={quoteStringArgument(str(files.private_key))}",
        f"certKey={quoteStringArgument(str(files.certificate))}",
    ]
    if chain is not None:
        parts.append(f"extraCertChain={quoteStringArgument(str(chain))}")
    return "ssl:" + ":".join(parts)


def daphne_arguments(host: str, port: int, files: tls.TlsFiles | None = None, chain: Path | None = None) -> list[str]:
    arguments = ["-b", host, "-p", str(port)] if files is None else ["-e", tls_endpoint(host, port, files, chain)]
    if settings.TRUSTED_PROXY:
        # Client addresses in logs come from X-Forwarded-For only when a trusted proxy sets it.
        arguments.append("--proxy-headers")
    return [*arguments, "quietcast.asgi:application"]


def addresses_to_open(host: str, port: int, scheme: str) -> list[str]:
    """Where people reach the server: every LAN address when it listens on all of them."""
    if host not in ("0.0.0.0", "::", "[::]"):
        return [f"{scheme}://{host}:{port}/"]
    names = tls.machine_names()
    hosts = [*names.dns_names, *(str(address) for address in names.addresses if address.version == 4)]
    return [f"{scheme}://{name}:{port}/" for name in hosts]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quietcast.settings")
    django.setup()
    from daphne.cli import CommandLineInterface

    host = os.environ.get("HOST") or "127.0.0.1"
    port = int(os.environ.get("PORT") or 8000)
    try:
        files = tls_files()
    except CannotServe as error:
        sys.exit(str(error))
    chain = None
    if files is not None:
        chain = chain_after_leaf(files.certificate, settings.VAR_DIR / "tls") if settings.TLS_CERT else None
        print(f"Serving https with the certificate {files.certificate}", flush=True)
        missing = tls.names_missing(tls.load_certificate(files.certificate), tls.machine_names())
        if missing and not settings.TLS_CERT:
            print(
                f"It does not name {', '.join(missing)} (made before this machine had those); delete "
                f"{files.certificate.parent} to have a new one made (each device then accepts it once more).",
                flush=True,
            )
    print(f"Quietcast is on {' '.join(addresses_to_open(host, port, 'https' if files else 'http'))} (Ctrl-C stops it)")
    sys.stdout.flush()
    CommandLineInterface().run(daphne_arguments(host, port, files, chain))


if __name__ == "__main__":
    main()
