"""A remote engine over TLS: ``sandbox.tls_*`` become the docker SDK's TLSConfig. The engine here is the
real podman socket behind a TLS terminator that demands a client certificate signed by a test CA."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from echo_rl.config import SandboxConfig
from echo_rl.errors import UserError
from echo_rl.sandbox.base import SandboxError
from echo_rl.sandbox.container import ContainerSandbox
from echo_rl.sandbox.engine import engine_client, tls_config


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
             "-subj", "/CN=echo-rl test CA", cwd=folder)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, extra in (("server", ["-extfile", "san.cnf"]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "1", *extra, cwd=folder)
    return {name: str(folder / name) for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class TlsTerminator:
    """Accepts TLS (client certificate required) on 127.0.0.1 and relays each connection to a unix socket."""

    def __init__(self, files: dict[str, str], target: str):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=files["ca.pem"])
        self.context.load_cert_chain(files["server.pem"], files["server.key"])
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            secure = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
        upstream = socket.socket(socket.AF_UNIX)
        upstream.connect(self.target)

        def pump(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for end in (source, sink):
                    try:
                        end.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(upstream, secure), daemon=True).start()
        pump(secure, upstream)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def tls_engine(container_engine, tmp_path_factory):
    if not container_engine.startswith("unix://"):
        pytest.skip("the TLS terminator relays to a local unix socket")
    files = make_certificates(tmp_path_factory.mktemp("certs"))
    terminator = TlsTerminator(files, container_engine.removeprefix("unix://"))
    yield files, f"tcp://127.0.0.1:{terminator.port}"
    terminator.close()


def test_a_tls_engine_answers_with_the_client_certificate(tls_engine):
    files, url = tls_engine
    cfg = SandboxConfig(backend="container", engine_url=url, tls_verify=True, tls_ca_cert=files["ca.pem"],
                        tls_client_cert=files["client.pem"], tls_client_key=files["client.key"])
    assert engine_client(cfg).ping()

    async def one() -> str:
        async with ContainerSandbox(cfg, label="echo-rl-test") as box:
            return (await box.exec("echo over-tls")).output

    assert asyncio.run(one()) == "over-tls\n"


def test_a_tls_engine_refuses_a_client_without_certificate(tls_engine):
    files, url = tls_engine
    cfg = SandboxConfig(backend="container", engine_url=url, tls_verify=True, tls_ca_cert=files["ca.pem"])
    with pytest.raises(SandboxError, match="no container engine answers"):
        engine_client(cfg)


def test_tls_settings_are_checked(tmp_path):
    assert tls_config(SandboxConfig()) is None
    with pytest.raises(UserError, match="sandbox.tls_ca_cert: no such file"):
        tls_config(SandboxConfig(tls_ca_cert=str(tmp_path / "missing.pem")))
    (tmp_path / "c.pem").write_text("x")
    with pytest.raises(UserError, match="go together"):
        tls_config(SandboxConfig(tls_client_cert=str(tmp_path / "c.pem")))
