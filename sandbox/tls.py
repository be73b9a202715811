"""Throw-away TLS material for local stand-ins: a self-signed CA and a server certificate.

Some clients (the ``pagerduty`` package among them) refuse anything but ``https://`` base URLs,
so a stand-in on 127.0.0.1 has to speak TLS. :func:`make_local_tls` writes, into a fresh
temporary directory (or one you name), a one-day CA and a leaf certificate for ``127.0.0.1``,
``::1`` and ``localhost`` signed by it. Servers load the leaf with :meth:`LocalTLS.server_context`;
clients trust only the CA with :meth:`LocalTLS.client_context` or ``cafile=tls.ca_path``.

Keys are EC P-256 (fast to generate) and never leave the directory, which is created mode 0700;
:meth:`LocalTLS.cleanup` removes it. The certificates carry the extensions strict X.509
verification wants (key identifiers, key usage, serverAuth), so they pass
``ssl.VERIFY_X509_STRICT`` too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEFAULT_HOSTS", "LocalTLS", "make_local_tls"]

DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class LocalTLS:
    """Paths of the generated PEM files (and the directory holding them)."""

    directory: Path
    ca_path: Path
    cert_path: Path
    key_path: Path
    owns_directory: bool = True

    def server_context(self) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` for a server presenting the leaf certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA and nothing else."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def cleanup(self) -> None:
        """Delete the directory if :func:`make_local_tls` created it."""
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "icbot sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_local_tls(
    directory: Path | str | None = None,
    *,
    hosts: Iterable[str] = DEFAULT_HOSTS,
    valid_for: dt.timedelta = dt.timedelta(days=1),
) -> LocalTLS:
    """Create a CA and a server certificate for ``hosts``; return where they were written."""
    hosts = list(hosts)
    if not hosts:
        raise ValueError("hosts must name at least one host or IP address")
    owns = directory is None
    where = Path(tempfile.mkdtemp(prefix="icbot-tls-")) if directory is None else Path(directory)
    where.mkdir(mode=0o700, parents=True, exist_ok=True)

    now = dt.datetime.now(dt.UTC)
    not_before = now - dt.timedelta(minutes=5)
    not_after = now + valid_for

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("icbot sandbox local CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(hosts), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    ca_path = where / "ca.pem"
    cert_path = where / "server.pem"
    key_path = where / "server-key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    cert_path.write_bytes(leaf_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    _write_private(
        key_path,
        leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return LocalTLS(where, ca_path, cert_path, key_path, owns_directory=owns)
