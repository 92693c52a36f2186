"""The container engine behind :class:`~echo_rl.sandbox.container.ContainerSandbox`: Docker or podman,
through the Docker Engine API (the ``docker`` SDK), and images built once per task content hash.

Engine URL, first match: the ``engine_url`` argument (``sandbox.engine_url``), ``$DOCKER_HOST``, podman's
root socket ``/run/podman/podman.sock`` when it exists, Docker's default socket. ``scripts/setup-podman.sh``
makes podman answer there. Every engine failure surfaces as :class:`SandboxError`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import docker
import docker.errors

from echo_rl.sandbox.base import SandboxError
from echo_rl.sandbox.owner import LABEL_KEY, check_label

PODMAN_SOCKET = "/run/podman/podman.sock"
IMAGE_REPOSITORY = "echo-rl-task"
_POOL = 128  # HTTP connections per client: one per concurrent engine call
_clients: dict[str, docker.DockerClient] = {}
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


def connect(url: str | None = None) -> docker.DockerClient:
    """A (cached, thread-safe) client of the engine at ``engine_url(url)``; :class:`SandboxError` if it
    does not answer."""
    base = engine_url(url)
    with _guard:
        client = _clients.get(base)
    if client is not None:
        return client
    try:
        client = docker.DockerClient(base_url=base, timeout=120, max_pool_size=_POOL)
        client.ping()
    except (docker.errors.DockerException, OSError) as err:
        raise SandboxError(
            f"no container engine answers at {base} ({err}); run scripts/setup-podman.sh or set DOCKER_HOST"
        ) from err
    with _guard:
        return _clients.setdefault(base, client)


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
) -> str:
    """Build ``context_dir/dockerfile`` unless an image of the same content hash exists; return its tag.

    Concurrent calls for one context build once. Images carry the :data:`LABEL_KEY` label of the run
    that built them. A failed build raises :class:`SandboxError` with the end of the build log.
    """
    context = Path(context_dir)
    if not (context / dockerfile).is_file():
        raise SandboxError(f"no {dockerfile} in {context}")
    client = engine if isinstance(engine, docker.DockerClient) else connect(engine)
    tag = f"{IMAGE_REPOSITORY}:{context_hash(context, dockerfile)[:20]}"
    with _guard:
        lock = _build_locks.setdefault(tag, threading.Lock())
    with lock:
        try:
            client.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as err:
            raise SandboxError(f"engine error while looking up {tag}: {err}") from err
        try:
            client.images.build(  # forcerm: a failed step's container (and its mount) is removed too
                path=str(context),
                dockerfile=dockerfile,
                tag=tag,
                rm=True,
                forcerm=True,
                labels={LABEL_KEY: check_label(label)},
            )
        except docker.errors.BuildError as err:
            log = "".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in err.build_log)
            raise SandboxError(f"building {context / dockerfile} failed: {err.msg}; log ends: {log[-800:]!r}") from err
        except (docker.errors.APIError, OSError) as err:
            raise SandboxError(f"building {context / dockerfile} failed: {err}") from err
    return tag
