"""TLS (-Z) with certificates the tests make themselves (trustme)."""

from __future__ import annotations

import datetime
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pymemcache.client.base import Client

from tests.e2e.wire import exchange
from tests.servers import HOST, ServerProcess, free_port, memcachepy_argv, spawn, spawn_logged


class Pki:
    """A CA, the server's certificate files, and client contexts."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()
        self.cert = self.dir / "server.pem"
        self.key = self.dir / "server.key"
        self.ca_file = self.dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.install(self.ca)

    def install(self, ca: trustme.CA) -> None:
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        leaf.private_key_pem.write_to_path(str(self.key))
        leaf.cert_chain_pems[0].write_to_path(str(self.cert))
        for pem in leaf.cert_chain_pems[1:]:
            pem.write_to_path(str(self.cert), append=True)

    def client(
        self,
        trust: trustme.CA | None = None,
        cert_from: trustme.CA | None = None,
        expired: bool = False,
    ) -> ssl.SSLContext:
        context = ssl.create_default_context()
        (trust or self.ca).configure_trust(context)
        if cert_from is not None:
            kwargs: dict[str, Any] = {}
            if expired:
                now = datetime.datetime.now(datetime.UTC)
                kwargs = {
                    "not_before": now - datetime.timedelta(days=10),
                    "not_after": now - datetime.timedelta(days=1),
                }
            cert_from.issue_cert("client@example.test", **kwargs).configure_cert(context)
        return context

    def options(self, *extra: str) -> list[str]:
        opts = [
            f"ssl_chain_cert={self.cert}",
            f"ssl_key={self.key}",
            f"ssl_ca_cert={self.ca_file}",
            *extra,
        ]
        return ["-Z", "-o", ",".join(opts)]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def start(*args: str) -> ServerProcess:
    port = free_port()
    return spawn(memcachepy_argv(port, *args), port)


@pytest.fixture
def server(pki: Pki) -> Iterator[ServerProcess]:
    srv = start(*pki.options())
    yield srv
    srv.stop()


def tls_connect(server: ServerProcess, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(server.address, timeout=5)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_pymemcache_over_tls(server: ServerProcess, pki: Pki) -> None:
    client = Client(server.address, tls_context=pki.client(), timeout=5)
    before = client.stats()[b"ssl_handshake_errors"]  # the start-up probe was plain TCP
    assert client.set("tls", b"secret", noreply=False)
    assert client.get("tls") == b"secret"
    assert client.stats()[b"ssl_handshake_errors"] == before
    client.close()


def test_plaintext_client_cannot_talk_to_a_tls_port(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"version\r\n")
        sock.settimeout(5)
        reply = b""
        try:
            reply = sock.recv(100)
        except ConnectionResetError:
            pass
        assert not reply.startswith(b"VERSION")


@pytest.mark.parametrize("mode", ["2", "3"])
def test_mutual_tls_accepts_a_client_certificate(pki: Pki, mode: str) -> None:
    srv = start(*pki.options(f"ssl_verify_mode={mode}"))
    try:
        with tls_connect(srv, pki.client(cert_from=pki.ca)) as sock:
            assert exchange(sock, b"version\r\n").startswith(b"VERSION ")
    finally:
        srv.stop()


@pytest.mark.parametrize("case", ["no-certificate", "wrong-ca", "expired"])
def test_mutual_tls_rejects(pki: Pki, case: str) -> None:
    srv = start(*pki.options("ssl_verify_mode=2"))
    try:
        context = {
            "no-certificate": pki.client(),
            "wrong-ca": pki.client(cert_from=pki.other_ca),
            "expired": pki.client(cert_from=pki.ca, expired=True),
        }[case]
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with tls_connect(srv, context) as sock:
                # TLS 1.3 reports a refused client certificate on the first read.
                exchange(sock, b"version\r\n")
        with tls_connect(srv, pki.client(cert_from=pki.ca)) as sock:
            # One failure from the start-up probe (plain TCP), one from the refused client.
            assert b"STAT ssl_handshake_errors 2\r\n" in exchange(sock, b"stats\r\n", b"END\r\n")
    finally:
        srv.stop()


def test_server_with_an_untrusted_certificate_is_refused_by_the_client(
    server: ServerProcess, pki: Pki
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(server, pki.client(trust=pki.other_ca))


def test_minimum_version_is_enforced(pki: Pki) -> None:
    srv = start(*pki.options("ssl_min_version=tlsv1.3"))
    try:
        old = pki.client()
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_connect(srv, old)
        with tls_connect(srv, pki.client()) as sock:
            assert sock.version() == "TLSv1.3"
    finally:
        srv.stop()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_client_is_refused_by_default(server: ServerProcess, pki: Pki) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # an old client: TLS 1.1 only
    pki.ca.configure_trust(old)
    try:
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.fail("this OpenSSL cannot even offer TLS 1.1; the test would prove nothing")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_connect(server, old)


def test_sighup_reloads_certificates_and_keeps_connections(server: ServerProcess, pki: Pki) -> None:
    established = tls_connect(server, pki.client())
    assert exchange(established, b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    pki.install(pki.other_ca)  # renewed certificate, from another CA
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while True:
        try:
            with tls_connect(server, pki.client(trust=pki.other_ca)) as fresh:
                assert exchange(fresh, b"get k\r\n", b"END\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
            break
        except ssl.SSLError:
            assert time.monotonic() < deadline, "new certificate never served"
            time.sleep(0.1)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(server, pki.client())  # the old CA no longer matches
    assert exchange(established, b"get k\r\n", b"END\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
    established.close()


def test_notls_listener_stays_plain(pki: Pki) -> None:
    plain_port, tls_port = free_port(), free_port()
    argv = memcachepy_argv(0, *pki.options())
    listen = argv.index("-l")
    argv[listen + 1] = f"notls:{HOST}:{plain_port},{HOST}:{tls_port}"
    srv = spawn(argv, plain_port)
    try:
        with socket.create_connection((HOST, plain_port), timeout=5) as sock:
            assert exchange(sock, b"version\r\n").startswith(b"VERSION ")
        tls_srv = ServerProcess(proc=srv.proc, port=tls_port)
        with tls_connect(tls_srv, pki.client()) as sock:
            assert exchange(sock, b"version\r\n").startswith(b"VERSION ")
    finally:
        srv.stop()


def test_bad_certificate_files_stop_start_up(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "memcachepy",
            "-Z",
            "-o",
            f"ssl_chain_cert={tmp_path}/none.pem,ssl_key={tmp_path}/none.key",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr == (
        f"memcachepy: cannot read ssl_chain_cert {tmp_path}/none.pem: No such file or directory\n"
    )


def test_start_up_line_names_each_listener_and_which_is_tls(pki: Pki, tmp_path: Path) -> None:
    plain_port, tls_port = free_port(), free_port()
    argv = memcachepy_argv(0, "-v", *pki.options())
    argv[argv.index("-l") + 1] = f"notls:{HOST}:{plain_port},{HOST}:{tls_port}"
    log = tmp_path / "daemon.log"
    srv = spawn_logged(argv, plain_port, str(log))
    try:
        tls_srv = ServerProcess(proc=srv.proc, port=tls_port)
        with tls_connect(tls_srv, pki.client()) as sock:  # up, and ours
            assert exchange(sock, b"version\r\n").startswith(b"VERSION ")
    finally:
        srv.stop()
    assert f"INFO listening on tcp {HOST}:{plain_port}, tls {HOST}:{tls_port}\n" in (
        log.read_text()
    )
