"""The certificate Quietcast serves https with on a LAN: given (TLS_CERT, TLS_KEY), or made once and kept.

Browsers allow the microphone only on https pages (or localhost), so a second device on the LAN can broadcast only
over https. Without a certificate of their own, people get a self-signed one created on first start in the var
dir, naming what other devices may type to reach this machine: its host names (and `<host>.local`, which mDNS
resolves on most LANs), its LAN addresses, localhost and the loopback addresses. Each device's browser warns about
it once; the README says what to accept. It is kept across restarts, so that decision holds, and is only made again
when it has expired or its files are gone.

No Django here: `make run` calls this before the server starts, and tests call it with a controlled clock.
"""

import ipaddress
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ifaddr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Apple's systems refuse server certificates valid for longer than 825 days, even ones a person accepted.
VALIDITY = timedelta(days=825)
# A certificate this close to its end is replaced at the next start rather than expiring while the server runs.
RENEW_BEFORE = timedelta(days=7)
CERTIFICATE_FILE = "cert.pem"
KEY_FILE = "key.pem"


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    private_key: Path


@dataclass(frozen=True)
class MachineNames:
    """What other devices may use to reach this machine."""

    dns_names: tuple[str, ...]
    addresses: tuple[IPAddress, ...]


def machine_names() -> MachineNames:
    host = socket.gethostname()
    names = {"localhost", host, socket.getfqdn()}
    if host and "." not in host:
        names.add(f"{host}.local")
    addresses: set[IPAddress] = {ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")}
    for adapter in ifaddr.get_adapters():
        for address in adapter.ips:
            # ifaddr gives IPv6 addresses as (address, flowinfo, scope_id).
            text = address.ip if isinstance(address.ip, str) else address.ip[0]
            parsed = ipaddress.ip_address(text)
            if not parsed.is_link_local:  # fe80:: needs a zone in the URL; browsers cannot open those
                addresses.add(parsed)
    return MachineNames(
        dns_names=tuple(sorted(name for name in names if name)),
        addresses=tuple(sorted(addresses, key=lambda address: (address.version, int(address)))),
    )


def create_self_signed(files: TlsFiles, names: MachineNames, now: datetime) -> None:
    """A self-signed server certificate for `names`, valid from a day before `now` (clocks differ)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Quietcast on {socket.gethostname()}")])
    alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in names.dns_names]
    alternative_names += [x509.IPAddress(address) for address in names.addresses]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    files.certificate.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    files.private_key.touch(mode=0o600)
    files.private_key.chmod(0o600)
    files.private_key.write_bytes(key_pem)
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def load_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def self_signed_certificate(directory: Path, now: datetime | None = None) -> TlsFiles:
    """The certificate kept in `directory`, created there first when missing, expired or about to expire."""
    now = now or datetime.now(UTC)
    files = TlsFiles(certificate=directory / CERTIFICATE_FILE, private_key=directory / KEY_FILE)
    if files.certificate.exists() and files.private_key.exists():
        if load_certificate(files.certificate).not_valid_after_utc - RENEW_BEFORE > now:
            return files
    create_self_signed(files, machine_names(), now)
    return files


def names_in(certificate: x509.Certificate) -> tuple[set[str], set[IPAddress]]:
    alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = {
        value
        for value in alternative.get_values_for_type(x509.IPAddress)
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address)  # not the networks name constraints use
    }
    return set(alternative.get_values_for_type(x509.DNSName)), addresses


def names_missing(certificate: x509.Certificate, names: MachineNames) -> list[str]:
    """This machine's current names and addresses that the certificate does not cover (an address that changed
    since it was made, a new network): browsers reaching the machine by those see a name mismatch."""
    dns_names, addresses = names_in(certificate)
    return [name for name in names.dns_names if name not in dns_names] + [
        str(address) for address in names.addresses if address not in addresses
    ]
