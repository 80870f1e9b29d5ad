"""A glance needs no right to write: ``status`` and dry runs work for an account that may read
the archive but not write it (a monitoring script, a colleague), and leave no file behind.

The archive is made by root, as a cron job would; the glance runs as ``nobody`` in a real
child process (skipped where this test cannot change user).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_cli, snapshot, tagged
from .server import FileServer

# The child loads archiver as root, then becomes nobody before it reads the archive: the
# interpreter here may live where nobody cannot read (pyenv under /root), and what a glance
# reads of the archive, not of Python, is what this test is about.
AS_NOBODY = """
import importlib, os, pkgutil, sys
import archiver, yaml, frontmatter, sqlite3, json, urllib.parse, encodings.idna, httpx
for module in pkgutil.walk_packages(archiver.__path__, "archiver."):
    importlib.import_module(module.name)  # all of it: the checkout may be root's alone too
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.argv = ["archiver", *sys.argv[1:]]
archiver.cli.main()
"""


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user may read and enter (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="archiver-glance-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def as_nobody(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``archiver ARGS`` as the user nobody (uid 65534), in a child process."""
    if os.geteuid() != 0:
        pytest.skip("changing user needs root")
    return subprocess.run(
        [sys.executable, "-c", AS_NOBODY, *map(str, args)],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=120,
        check=False,
    )


def test_status_and_a_dry_run_work_for_a_user_who_cannot_write_the_archive(
    server: FileServer, half_second_clip: bytes, shared: Path
) -> None:
    fiches, archive, kit = shared / "fiches", shared / "archive", shared / "kit"
    fiches.mkdir()
    server.add("/v.mp4", tagged(half_second_clip, b"1"))
    (fiches / "v.md").write_text(
        f"---\ntitle: Vidéo\narea: Domaine 1\nvideoDLHref: {server.url('/v.mp4')}\n---\n\n"
        "## Crédits\n\n- **Licence** : [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/)\n",
        encoding="utf-8",
    )
    assert run_cli("sync", fiches, "--archive", archive, "--kit", kit, "-q")[0] == 0
    for path in (shared, *shared.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by all, written by root
    before = snapshot(shared)

    done = as_nobody("status", "--archive", archive, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["items"]["total"] == 1
    done = as_nobody("sync", fiches, "--archive", archive, "--kit", kit, "--offline", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"Kit {kit}: would show 1 of 1 video"
    assert snapshot(shared) == before  # no -wal, no -shm, nothing else left behind
