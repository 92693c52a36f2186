"""The container engine behind :class:`~echo_rl.sandbox.container.ContainerSandbox`: Docker or podman,
through the Docker Engine API (the ``docker`` SDK), and images built once per task content hash.

Engine URL, first match: the ``engine_url`` argument (``sandbox.engine_url``), ``$DOCKER_HOST``, podman's
root socket ``/run/podman/podman.sock`` when it exists, Docker's default socket. ``scripts/setup-podman.sh``
makes podman answer there. A remote engine over TLS takes ``sandbox.tls_*`` (:func:`tls_config`, the
docker SDK's ``TLSConfig``: client certificate and key, CA, verification). Every engine failure surfaces
as :class:`SandboxError`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import time
from typing import Any

import docker
import docker.errors
import docker.tls
import requests.exceptions
import urllib3.exceptions

from echo_rl.config import SandboxConfig
from echo_rl.errors import UserError
from echo_rl.sandbox.base import SandboxError
from echo_rl.sandbox.owner import LABEL_KEY, check_label

PODMAN_SOCKET = "/run/podman/podman.sock"
# The local bases scripts/setup-podman.sh makes with debootstrap (no image can be pulled there), each under a
# name of its own so that nothing uses them by accident: the stand-in as bare as the real
# debian:bookworm-slim (no python3, git or make), and a base with those tools for a sandbox that wants them
# without a build (sandbox.base_image=localhost/echo-rl/bookworm-base).
BARE_SLIM_IMAGE = "localhost/echo-rl/bookworm-slim"
TOOLS_IMAGE = "localhost/echo-rl/bookworm-base"
IMAGE_REPOSITORY = "echo-rl-task"
_POOL = 128  # HTTP connections per client: one per concurrent engine call
_TLS_API_VERSION = "1.41"  # Docker ≥ 20.10 and podman ≥ 3 answer it
_clients: dict[tuple[Any, ...], docker.DockerClient] = {}
_build_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def engine_url(url: str | None = None) -> str:
    """The Docker API URL to use (see the module docstring)."""
    if url:
        return url
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if Path(PODMAN_SOCKET).exists():
        return f"unix://{PODMAN_SOCKET}"
    return "unix:///var/run/docker.sock"


def tls_config(cfg: SandboxConfig) -> docker.tls.TLSConfig | None:
    """The TLS settings of ``cfg.tls_*`` (None when none is set); a missing file is a :class:`UserError`
    naming its field."""
    files = {"tls_ca_cert": cfg.tls_ca_cert, "tls_client_cert": cfg.tls_client_cert,
             "tls_client_key": cfg.tls_client_key}
    if not cfg.tls_verify and not any(files.values()):
        return None
    for name, path in files.items():
        if path is not None and not Path(path).is_file():
            raise UserError(f"sandbox.{name}: no such file {path}")
    if (cfg.tls_client_cert is None) != (cfg.tls_client_key is None):
        raise UserError("sandbox.tls_client_cert and sandbox.tls_client_key go together: give both or neither")
    client_cert = (cfg.tls_client_cert, cfg.tls_client_key) if cfg.tls_client_cert else None
    return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=cfg.tls_ca_cert, verify=cfg.tls_verify)


def connect(url: str | None = None, tls: docker.tls.TLSConfig | None = None) -> docker.DockerClient:
    """A (cached, thread-safe) client of the engine at ``engine_url(url)`` (over ``tls`` when given);
    :class:`SandboxError` if it does not answer."""
    base = engine_url(url)
    key = (base,) if tls is None else (base, tls.cert, tls.ca_cert, tls.verify)
    with _guard:
        client = _clients.get(key)
    if client is not None:
        return client
    try:
        if tls is None:
            client = docker.DockerClient(base_url=base, timeout=120, max_pool_size=_POOL)
        else:  # no $REQUESTS_CA_BUNDLE in place of tls_ca_cert (requests prefers it): a fixed API version,
            # since finding the engine's own is a request made before trust_env can be turned off
            client = docker.DockerClient(base_url=base, timeout=120, max_pool_size=_POOL, tls=tls,
                                         version=_TLS_API_VERSION)
            client.api.trust_env = False
        client.ping()
    except (docker.errors.DockerException, OSError) as err:
        raise SandboxError(
            f"no container engine answers at {base} ({err}); run scripts/setup-podman.sh or set DOCKER_HOST"
        ) from err
    with _guard:
        return _clients.setdefault(key, client)


def engine_client(cfg: SandboxConfig) -> docker.DockerClient:
    """The client of ``cfg``'s engine: its URL and TLS settings."""
    return connect(cfg.engine_url, tls_config(cfg))


def context_hash(context_dir: Path, dockerfile: str = "Dockerfile") -> str:
    """A digest of everything a build reads: the Dockerfile name and every file's path, mode and bytes."""
    digest = hashlib.sha256(dockerfile.encode())
    for path in sorted(context_dir.rglob("*")):
        rel = path.relative_to(context_dir).as_posix()
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            digest.update(f"F {rel} {path.stat().st_mode & 0o777}\n".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        elif path.is_dir():
            digest.update(f"D {rel}\n".encode())
    return digest.hexdigest()


def build_image(
    context_dir: str | Path,
    dockerfile: str = "Dockerfile",
    engine: str | docker.DockerClient | None = None,
    *,
    label: str = "echo-rl",
    timeout_s: float | None = None,
) -> str:
    """Build ``context_dir/dockerfile`` unless an image of the same content hash exists; return its tag.

    Concurrent calls for one context build once. Images carry the :data:`LABEL_KEY` label of the run
    that built them. A failed build, or one still running after ``timeout_s``, raises
    :class:`SandboxError` with the end of the build log; the connection is closed, which makes Docker
    stop the build (podman 4 finishes it in the background: the next call may find its image).
    """
    context = Path(context_dir)
    if not (context / dockerfile).is_file():
        raise SandboxError(f"no {dockerfile} in {context}")
    client = engine if isinstance(engine, docker.DockerClient) else connect(engine)
    tag = f"{IMAGE_REPOSITORY}:{context_hash(context, dockerfile)[:20]}"
    with _guard:
        lock = _build_locks.setdefault(tag, threading.Lock())
    with lock:
        if not has_image(client, tag):
            _build(client, context, dockerfile, tag, check_label(label), timeout_s)
    return tag


def has_image(client: docker.DockerClient, name: str) -> bool:
    """Whether the engine holds image ``name``; an engine failure is a :class:`SandboxError`."""
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as err:
        raise SandboxError(f"engine error while looking up {name}: {err}") from err


def _build(client: docker.DockerClient, context: Path, dockerfile: str, tag: str, label: str,
           timeout_s: float | None) -> None:
    """Stream one build's log, stopping at the first error or at the deadline."""
    what = context / dockerfile
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    log: list[str] = []
    stream = None
    try:
        stream = client.api.build(  # forcerm: a failed step's container (and its mount) is removed too
            path=str(context), dockerfile=dockerfile, tag=tag, rm=True, forcerm=True, labels={LABEL_KEY: label},
            decode=True, timeout=timeout_s,
        )
        for chunk in stream:
            log.append(str(chunk.get("stream") or chunk.get("error") or ""))
            if "error" in chunk:
                raise SandboxError(f"building {what} failed: {chunk['error']}; log ends: {''.join(log)[-800:]!r}")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError
    except (TimeoutError, requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as err:
        if timeout_s is None or not _timed_out(err):
            raise SandboxError(f"building {what} failed: {err}") from err
        raise SandboxError(f"building {what} timed out after {timeout_s:g} s (build_timeout_sec); "
                           f"log ends: {''.join(log)[-400:]!r}") from None
    except (docker.errors.APIError, OSError) as err:
        raise SandboxError(f"building {what} failed: {err}") from err
    finally:
        if stream is not None:
            stream.close()  # the generator closes the response: the engine sees the client leave


def _timed_out(err: BaseException) -> bool:
    """Whether a build error was the deadline or a read that waited past it."""
    timeouts = TimeoutError | requests.exceptions.Timeout | urllib3.exceptions.TimeoutError
    return isinstance(err, timeouts) or "timed out" in str(err).lower()
