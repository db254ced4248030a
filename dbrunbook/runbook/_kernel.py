"""The kernel manager stage notebooks run under, and the removal of its socket folders on every exit.

Kernels talk to papermill over local IPC sockets instead of TCP: nothing listens on a
network port while a stage (which holds a database secret) runs, and ipykernel has no
reason to warn about unencrypted TCP on every run. The sockets, the connection file and the kernel
process's own stderr (not the notebook's) live in a private folder ``dbrk-<pid>-*`` of the
temp dir: libzmq sometimes asserts noisily while a finished kernel closes its sockets, and that must
not reach the user's terminal.

The folder goes on every way a run ends: papermill's cleanup removes it when a stage ends (also
when its kernel died); :func:`kill_all` kills and removes what a Ctrl-C left running; a watchdog
process, one per process that starts kernels and in a session of its own, removes this process's
folders when it dies, even by SIGKILL; and folders of a process that is gone are swept when the next
kernel starts.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

#: Short on purpose: the kernel's IPC socket paths live below it, and a UNIX socket path holds 107 bytes at most
#: (a long TMPDIR, as a test's, plus a long prefix, failed with "File name too long").
PREFIX = "dbrk-"

#: The watchdog's program (stdlib only, run without site: it starts in milliseconds). It waits for the
#: process given by pid to end, then removes the folders that match the pattern.
_WATCHDOG = r"""
import glob, os, select, shutil, sys, time
parent, pattern = int(sys.argv[1]), sys.argv[2]
try:
    fd = os.pidfd_open(parent)
except (AttributeError, OSError):
    fd = None
while True:
    if fd is not None:
        if select.select([fd], [], [], 3600)[0]:
            break
    else:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
for _ in range(3):  # a kernel still starting may add a socket while its folder goes: look again
    for folder in glob.glob(pattern):
        shutil.rmtree(folder, ignore_errors=True)
    time.sleep(0.5)
"""

_managers: weakref.WeakSet[IPCKernelManager] = weakref.WeakSet()
_watchdog: subprocess.Popen[bytes] | None = None
#: Set while the run is being interrupted: kernels are then killed at once, not asked to finish first.
_interrupted = False


class IPCKernelManager(AsyncKernelManager):
    """An AsyncKernelManager on the ``ipc`` transport, sockets in a private temp folder."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)
        _sweep()
        _watch()
        self._socket_dir = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
        self.ip = str(Path(self._socket_dir) / "k")
        self.connection_file = str(Path(self._socket_dir) / "kernel.json")
        self._clients: list[Any] = []
        _managers.add(self)

    def client(self, **kwargs: Any) -> Any:
        # nbclient closes the client it makes only when it owns the manager; for a kernel started ahead and
        # handed to papermill it leaves the client's ZeroMQ sockets open, and an open socket can hold the
        # process at exit in libzmq's context termination. The manager remembers its clients to close them.
        made = super().client(**kwargs)
        self._clients.append(made)
        return made

    def _close_clients(self) -> None:
        for made in self._clients:
            with contextlib.suppress(Exception):  # a client already closed, or half made: nothing to keep
                made.stop_channels()
        self._clients.clear()

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        self._log = open(Path(self._socket_dir) / "kernel.log", "ab")  # noqa: SIM115 - closed on cleanup
        kw.setdefault("stderr", self._log)
        await super()._async_launch_kernel(kernel_cmd, **kw)

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        # Interrupted, the kernel is killed at once: a stage that changes a database stops where it is, and
        # the database rolls back what was not committed, as when the kernel is killed with the run.
        await super()._async_shutdown_kernel(now=now or _interrupted, restart=restart)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self._remove_folder()

    cleanup_resources = _async_cleanup_resources
    shutdown_kernel = _async_shutdown_kernel

    def _remove_folder(self) -> None:
        self._close_clients()
        if getattr(self, "_log", None):
            self._log.close()
        shutil.rmtree(self._socket_dir, ignore_errors=True)

    def _kill(self) -> None:
        """Kill the kernel if it still runs, and remove the folder; synchronous (no event loop needed)."""
        process = getattr(self.provisioner, "process", None) if self.provisioner is not None else None
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(Exception):
                process.wait(timeout=5)
        self._remove_folder()


#: What every stage notebook imports, loaded by a kernel started ahead of its stage (see :func:`prestart`).
COMMON_IMPORTS = ("pandas", "matplotlib.pyplot", "sqlalchemy", "alembic", "dbrunbook.core.stage",
                  "dbrunbook.core.results")


def prestart(cwd: Path, modules: Sequence[str] = COMMON_IMPORTS) -> IPCKernelManager:
    """Start a fresh kernel now, in ``cwd``, that imports ``modules`` as it starts, for a stage to run in later.

    The engine starts the next stage's kernel while the current stage runs, so the ~2 s a kernel takes to start
    and import pandas, matplotlib, SQLAlchemy and dbrunbook overlap with work instead of adding to it. The kernel
    is still fresh: it has run no cell of any stage. The imports run as IPython's ``exec_lines``, outside the
    history (the notebook's first cell is still ``[1]``) and bind no name in the user's namespace.
    """
    from jupyter_core.utils import run_sync

    manager = IPCKernelManager(kernel_name="python3")
    lines = [f"for _dbrunbook_m in {tuple(modules)!r}: __import__(_dbrunbook_m)", "del _dbrunbook_m"]
    arguments = [f"--IPKernelApp.exec_lines={lines!r}"] if modules else []
    run_sync(manager.start_kernel)(cwd=str(cwd), extra_arguments=arguments)
    return manager


def stop(manager: IPCKernelManager) -> None:
    """Shut down a kernel :func:`prestart` started (the stage ran in it, or it was not needed), and its folder."""
    from jupyter_core.utils import run_sync

    try:
        if manager.has_kernel:
            run_sync(manager.shutdown_kernel)(now=True)
    except Exception:  # a kernel that died on its own: what matters is that nothing is left
        manager._kill()
    manager._remove_folder()


def kill_all() -> None:
    """Kill every kernel this process started that still runs, and remove every socket folder it made.

    For a run that was interrupted while a kernel started or stopped, where papermill's own cleanup
    did not run or was cut short.
    """
    for manager in list(_managers):
        manager._kill()


def interrupted(now: bool = True) -> None:
    """From now on (until called with False), kernels that are shut down are killed at once: a Ctrl-C is handled."""
    global _interrupted
    _interrupted = now


def _watch() -> None:
    """Start this process's watchdog, once: it removes this process's socket folders when the process ends."""
    global _watchdog
    if _watchdog is not None and _watchdog.poll() is None:
        return
    pattern = str(Path(tempfile.gettempdir()) / f"{PREFIX}{os.getpid()}-*")
    try:
        _watchdog = subprocess.Popen(  # a session of its own: what kills this process group leaves it
            [sys.executable, "-S", "-c", _WATCHDOG, str(os.getpid()), pattern], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError:  # no watchdog: the next run sweeps what a killed run leaves
        _watchdog = None


def _sweep() -> None:
    """Remove the socket folders of processes that are gone (killed before their watchdog could act)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        found = re.match(rf"{PREFIX}(\d+)-", folder.name)
        if found and int(found.group(1)) != os.getpid() and not _alive(int(found.group(1))):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive, and not ours to sweep
        return True
    return True


__all__ = ["COMMON_IMPORTS", "PREFIX", "IPCKernelManager", "interrupted", "kill_all", "prestart", "stop"]
