"""Isolated shells for agents and verifiers: a bubblewrap backend and a container backend.

    from echo_rl.sandbox import make_sandbox
    async with make_sandbox(cfg.sandbox, label="run-1") as sb:
        result = await sb.exec("ls -la")

Modules: :mod:`~echo_rl.sandbox.base` (the contract), :mod:`~echo_rl.sandbox.local` (bubblewrap /
unshare), :mod:`~echo_rl.sandbox.container` and :mod:`~echo_rl.sandbox.engine` (Docker API, image builds),
:mod:`~echo_rl.sandbox.gc` (leftovers of crashed runs);
:mod:`~echo_rl.sandbox.shell` and :mod:`~echo_rl.sandbox.protocol` hold the persistent-shell engine
both backends share.
"""

from __future__ import annotations

from echo_rl.config import SandboxConfig
from echo_rl.sandbox.base import ExecResult, Sandbox, SandboxError

__all__ = ["ExecResult", "Sandbox", "SandboxError", "make_sandbox"]


def make_sandbox(
    config: SandboxConfig | None = None,
    *,
    image: str | None = None,
    allow_network: bool | None = None,
    label: str = "echo-rl",
) -> Sandbox:
    """An unstarted sandbox of ``config.backend``; ``image`` applies to the container backend only
    (default ``config.base_image``)."""
    config = config or SandboxConfig()
    if config.backend == "container":
        from echo_rl.sandbox.container import ContainerSandbox

        return ContainerSandbox(config, image=image, allow_network=allow_network, label=label)
    from echo_rl.sandbox.local import LocalSandbox

    return LocalSandbox(config, allow_network=allow_network, label=label)
