"""The kernel manager stage notebooks run under.

Kernels talk to papermill over local IPC sockets instead of TCP: nothing listens on a
network port while a stage (which holds a database secret) runs, and ipykernel has no
reason to warn about unencrypted TCP on every run.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager


class IPCKernelManager(AsyncKernelManager):
    """An AsyncKernelManager on the ``ipc`` transport, sockets in a private temp folder."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)
        self._socket_dir = tempfile.mkdtemp(prefix="dbrunbook-kernel-")
        self.ip = str(Path(self._socket_dir) / "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources  # type: ignore[assignment]
