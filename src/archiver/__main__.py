"""``python -m archiver``: the same as the ``archiver`` console script, and a quicker exit.

Once the command is done (files closed, the catalog committed and closed, the exit handlers
run, standard output and error flushed), nothing is left for the interpreter's own teardown
to do but free every object of every module, one by one: 45 to 50 ms measured between a
download's last byte and its exit (issue 14's poor line), that aria2c does not spend. So
the process ends there with :func:`os._exit`. It does so only when no other thread is left
but daemon threads (a thread's work must not be cut short; a daemon's is cut at any exit:
a name still resolving for a connection opened ahead, :mod:`archiver.fetch.ahead`);
otherwise it exits as usual.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

from .cli import main


def _code(exc: SystemExit) -> int:
    """The exit status ``exc`` means, as the interpreter would make it (a message: 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def run() -> None:
    """Run the command line, then end the process without the interpreter's teardown."""
    main_thread = threading.main_thread()
    try:
        main()
    except SystemExit as exc:
        code = _code(exc)
    else:
        code = 0
    if any(not thread.daemon for thread in threading.enumerate() if thread is not main_thread):
        sys.exit(code)
    atexit._run_exitfuncs()  # logging's flush, the FFmpeg reader let go, coverage...
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: as the interpreter reports it
            code = code or 120
    os._exit(code)


if __name__ == "__main__":
    run()
