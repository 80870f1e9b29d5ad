"""``archiver status`` while a run holds the archive: running, with its PID; once the process
is gone (even SIGKILLed), interrupted. A real second process holds the real flock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from archiver.archive import Archive, archive_status
from archiver.cli.output import status_lines

HOLDER = """
import sys, time
from pathlib import Path
from archiver.archive import Archive
archive = Archive(Path(sys.argv[1]))
archive.lock()
archive.start_run("sync")
print("holding", flush=True)
time.sleep(60)
"""


def test_a_running_sync_shows_as_running_then_a_killed_one_as_interrupted(
    tmp_path: Path,
) -> None:
    root = tmp_path / "archive"
    Archive(root).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        with Archive.existing(root) as archive:
            status = archive_status(archive)
        assert status["last_run"]["outcome"] == "running"
        assert status["last_run"]["pid"] == holder.pid
        (sync_line,) = [line for line in status_lines(status) if line.startswith("Last sync")]
        assert sync_line.endswith(f", running now (PID {holder.pid})")
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with Archive.existing(root) as archive:
        status = archive_status(archive)
    assert status["last_run"]["outcome"] == "interrupted"
    assert "pid" not in status["last_run"]
