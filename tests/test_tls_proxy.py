"""``payout131 serve`` over HTTPS, and behind a reverse proxy (docs/operations.md).

HTTPS with a self-signed certificate made here: a signed call goes through, plain HTTP to
the same port does not, and a wrong certificate or key is one line before anything starts.
Behind a proxy, ``X-Forwarded-For`` is believed from the proxies named with
``--forwarded-allow-ips`` and from nobody else.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from console_client import PASSWORD, ConsoleUser
from partner import Partner
from payout131.cli import main
from payout131.clock import SystemClock
from payout131.console import operators
from payout131.storage import Database
from served import serve


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid for a day, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "payout131 test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_serve_https_with_a_self_signed_certificate(
    database_url: str, tmp_path: Path, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    cert, key = self_signed(tmp_path)
    options = ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    with serve(tmp_path, database_url, *options) as served:
        assert served.url.startswith("https://")
        served.register("acme", partner_keys[0], wallet=10_000)
        trusted = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=served.url, verify=trusted, timeout=30) as http:
            partner = Partner(http, "acme", partner_keys[0])
            session = partner.ok("session/create")["session"]
            assert session["status"] == "created"
        db = Database(served.database_url)  # the console's cookie is Secure over HTTPS
        try:
            with db.write() as conn:
                operators.add(conn, "alice", "admin", PASSWORD, SystemClock().now())
        finally:
            db.dispose()
        user = ConsoleUser(served.url, verify=trusted)
        signed = user.sign_in("alice")
        user.close()
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("payout131_console=")
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        plain = served.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{plain}/health", timeout=5)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust it stops
            httpx.get(f"{served.url}/health", timeout=5)
        assert "payout131 listening on https://" in served.log.read_text()


def test_a_wrong_certificate_or_key_is_one_line(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other = self_signed(tmp_path / "other")
    env = {"PAYOUT131_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    alone = runner.invoke(main, ["serve", "--ssl-certfile", str(cert)], env=env)
    assert alone.exit_code == 2
    assert "HTTPS needs both --ssl-certfile and --ssl-keyfile" in alone.output
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for pair in ((garbage, key), (cert, other[1])):
        wrong = runner.invoke(
            main, ["serve", "--ssl-certfile", str(pair[0]), "--ssl-keyfile", str(pair[1])], env=env
        )
        assert wrong.exit_code == 1, wrong.output
        assert wrong.output.startswith("Error: --ssl-certfile ")
        assert len(wrong.output.strip().splitlines()) == 1
        assert "Traceback" not in wrong.output
    for root in ("bank/", "/банк", "/a b"):
        refused = runner.invoke(main, ["serve", "--root-path", root], env=env)
        assert refused.exit_code == 2
        assert "a path like /bank" in refused.output
    typo = runner.invoke(main, ["serve", "--forwarded-allow-ips", "10.0.0.5,nginx"], env=env)
    assert typo.exit_code == 2
    assert "'nginx' is not an IP address or network" in typo.output


def _client_seen(log: Path, path: str) -> str:
    """The client address the request log shows for the last request to ``path``."""
    for _ in range(50):
        found = re.findall(rf"request .*client=(\S+) .*path={re.escape(path)}\b", log.read_text())
        if found:
            return str(found[-1])
        time.sleep(0.1)
    raise AssertionError(f"no access line for {path}")


@pytest.mark.parametrize("trusted", [True, False])
def test_forwarded_headers_only_from_trusted_proxies(
    database_url: str, tmp_path: Path, trusted: bool
) -> None:
    options = ("--forwarded-allow-ips", "127.0.0.1") if trusted else ()
    with serve(tmp_path, database_url, *options) as served:
        forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        # a path only this request asks for (serve's start-up polls /health)
        assert httpx.get(f"{served.url}/openapi.json", headers=forwarded).status_code == 200
        seen = _client_seen(served.log, "/openapi.json")
    assert seen.startswith("203.0.113.7" if trusted else "127.0.0.1"), seen
