"""The kernel manager stage notebooks run under.

Kernels talk to papermill over local IPC sockets instead of TCP: nothing listens on a
network port while a stage (which holds a database secret) runs, and ipykernel has no
reason to warn about unencrypted TCP on every run. The kernel process's own stderr (not the
notebook's) goes to a log beside the sockets: libzmq sometimes asserts noisily while a
finished kernel closes its sockets, and that must not reach the user's terminal.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager


class IPCKernelManager(AsyncKernelManager):
    """An AsyncKernelManager on the ``ipc`` transport, sockets in a private temp folder."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)
        self._socket_dir = tempfile.mkdtemp(prefix="dbrunbook-kernel-")
        self.ip = str(Path(self._socket_dir) / "kernel")

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        self._log = open(Path(self._socket_dir) / "kernel.log", "ab")  # noqa: SIM115 - closed on cleanup
        kw.setdefault("stderr", self._log)
        await super()._async_launch_kernel(kernel_cmd, **kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            if getattr(self, "_log", None):
                self._log.close()
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources
