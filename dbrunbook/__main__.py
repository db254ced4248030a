"""``python -m dbrunbook``: Ctrl-C exits in one line from here on, also while the command's modules load."""
import signal
import threading

if threading.current_thread() is threading.main_thread() \
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    def _exit_interrupted(signum: int, frame: object) -> None:
        import os

        os.write(2, b"interrupted\n")
        os._exit(130)

    _exit_interrupted.dbrunbook_early = True  # type: ignore[attr-defined]  # dbrunbook.cli takes over from it
    signal.signal(signal.SIGINT, _exit_interrupted)

from dbrunbook.cli import main  # noqa: E402 - after the handler

main()
