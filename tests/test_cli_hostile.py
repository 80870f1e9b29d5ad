"""The command line against hostile values: every bad value is exit 2 with a reason, nothing a
title or a server says can drive the terminal, no password is printed, no write goes through
a link."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli import cli
from archiver.cli.output import optional_failure_lines
from archiver.entry import Asset
from archiver.fetch import DownloadReport, Outcome, Status
from archiver.fetch.plan import Job
from archiver.manifest import Manifest, write_manifest

from .conftest import make_entry, one_held
from .server import FileServer


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("value", ["nan", "-nan", "inf", "0", "-1"])
def test_a_timeout_that_is_no_number_of_seconds_is_refused(tmp_path: Path, value: str) -> None:
    code, _, stderr = run("download", tmp_path / "m.json", "--timeout", value)
    assert code == 2
    assert "--timeout" in stderr
    assert "internal error" not in stderr


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("timeout = nan", "is not a number of seconds"),
        ("timeout = inf", "--timeout"),
        ("jobs = [1]", "jobs: expected a number or text, got a list"),
        ("jobs = 1.5", "'1.5' is not a valid integer"),
        ("retries = true", "retries: expected a number or text, got true or false"),
        ("copy = 'yes'", "copy: expected true or false, got text"),
        ("max_time = -5", "is not a duration"),
        ("[download]\nrate_limit = {a = 1}", "download.rate_limit: expected a number or text"),
        ("mirrors = [['a']]", "mirrors: expected a list of texts"),
        ("verbose = 'x'", "verbose: expected a count"),
    ],
)
def test_a_config_value_the_command_line_would_refuse_is_refused(
    tmp_path: Path, line: str, reason: str
) -> None:
    """A config value passes the option's own checks, as typed on the command line would."""
    config = tmp_path / "c.toml"
    config.write_text(line + "\n", encoding="utf-8")
    code, _, stderr = run(
        "sync", "--config", config, "--archive", tmp_path / "a", "--kit", tmp_path / "k"
    )
    assert code == 2, stderr
    assert reason in stderr
    assert not (tmp_path / "a").exists()


def test_a_config_value_of_the_right_kind_is_taken(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('timeout = 5\nmax_time = "2h"\nmin_rate = 2048\n', encoding="utf-8")
    _, _, stderr = run("status", "--config", config, "--archive", tmp_path / "a")
    assert "Invalid value" not in stderr


def _failing_manifest(tmp_path: Path, url: str, title: str) -> Path:
    path = tmp_path / "m.json"
    write_manifest(Manifest(entries=(make_entry("item", url, title=title),)), path)
    return path


def test_control_characters_and_passwords_never_reach_the_terminal(
    tmp_path: Path, server: FileServer
) -> None:
    """A title that carries ESC sequences (clear the screen, retitle the window) and a URL
    with a password: the failure line shows both escaped and hidden."""
    url = server.url("/missing.mp4").replace("http://", "http://ann:s3cret@")
    manifest = _failing_manifest(tmp_path, url, "Vidéo\x1b]0;pwned\x07\x1b[2J")
    code, stdout, stderr = run("download", manifest, "--archive", tmp_path / "a", "--retries", "0")
    assert code == 1
    assert "\x1b" not in stderr + stdout and "\x07" not in stderr
    assert "s3cret" not in stderr + stdout
    assert "Vidéo\\x1b]0;pwned\\x07\\x1b[2J (item, video)" in stderr
    assert "http://***@127.0.0.1" in stderr
    code, stdout, _ = run("status", "--archive", tmp_path / "a")
    assert "s3cret" not in stdout and "\x1b" not in stdout
    code, stdout, _ = run("status", "--archive", tmp_path / "a", "--json")
    assert "s3cret" not in stdout


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_the_log_file_is_never_written_through_a_link_or_a_device(
    tmp_path: Path, kind: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    log = tmp_path / "sync.log"
    if kind == "symlink":
        log.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(log)
    else:
        log.mkdir()
    code, _, stderr = run(
        "sync", "--offline", "--archive", tmp_path / "a", "--kit", tmp_path / "k",
        "--log-file", log,
    )  # fmt: skip
    assert code == 2
    if kind != "folder":  # click's own check says "is a directory"
        assert f"{log}: not a log file archiver will write" in stderr
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("name", ["..", "a/b", ".", ""])
def test_a_subfolder_is_one_name(tmp_path: Path, name: str) -> None:
    code, _, stderr = run(
        "package", tmp_path / "m.json", "-o", tmp_path / "key", "--subfolder", name
    )
    assert code == 2
    assert "--subfolder" in stderr


@pytest.mark.parametrize(
    "title", ["Vidéo\r\nError: forged line", "Vid\u2028éo", "evil\u202efdp.exe"]
)
def test_a_title_cannot_forge_a_line_nor_turn_text_around(
    tmp_path: Path, server: FileServer, title: str
) -> None:
    """A cron mail is read line by line: a title with a line break would print a line of its
    own, and U+202E shows ``exe.pdf`` for ``fdp.exe``."""
    manifest = _failing_manifest(tmp_path, server.url("/missing.mp4"), title)
    code, _, stderr = run("download", manifest, "--archive", tmp_path / "a", "--retries", "0")
    assert code == 1
    lines = stderr.splitlines()
    assert [line for line in lines if line.startswith("Error:")] == [lines[0]]
    assert "(item, video)" in lines[0]
    assert not any(c in stderr for c in "\r\u2028\u202e")
    _, stdout, _ = run("status", "--archive", tmp_path / "a")
    assert not any(c in stdout for c in "\r\u2028\u202e")
    assert "forged line (item" not in stdout.splitlines()[-1]


@pytest.mark.parametrize("where", ["archive", "kit"])
def test_the_log_file_may_not_sit_in_the_archive_or_the_kit(tmp_path: Path, where: str) -> None:
    (tmp_path / where).mkdir()
    log = tmp_path / where / "index.html"
    code, _, stderr = run(
        "sync", "--offline", "--archive", tmp_path / "archive", "--kit", tmp_path / "kit",
        "--log-file", log,
    )  # fmt: skip
    assert code == 2
    assert f"{log}: inside the {where}" in stderr
    assert not log.exists()


@pytest.mark.parametrize("path", ["/dev/zero", "fifo"])
def test_a_config_that_is_no_file_is_refused_at_once(tmp_path: Path, path: str) -> None:
    config = Path(path) if path.startswith("/") else tmp_path / path
    if not config.exists():
        os.mkfifo(config)
    code, _, stderr = run("--config", config, "status", "--archive", tmp_path / "a")
    assert code == 2
    assert "not a regular file" in stderr


def test_a_config_too_large_to_be_one_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("# " + "x" * 300_000 + "\n", encoding="utf-8")
    code, _, stderr = run("--config", config, "status", "--archive", tmp_path / "a")
    assert code == 2
    assert "not a config" in stderr


def test_a_config_key_may_be_the_option_as_typed(tmp_path: Path) -> None:
    """``mirror = [...]`` for ``--mirror``, as docs/cli.md says, not only the code's name."""
    config = tmp_path / "c.toml"
    config.write_text('[download]\nmirror = ["nope"]\n', encoding="utf-8")
    code, _, stderr = run("download", tmp_path / "m.json", "--config", config)
    assert code == 2
    assert "'nope' is not FROM=TO" in stderr


def test_a_config_path_with_a_line_break_stays_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('config = "a\\nb"\n', encoding="utf-8")
    code, _, stderr = run("--config", config, "status", "--archive", tmp_path / "a")
    assert code == 2
    assert len([line for line in stderr.splitlines() if line.startswith("Error:")]) == 1


def test_a_failed_optional_file_is_named_not_only_counted() -> None:
    """A preview that came back as a login page is quarantined: the run still succeeds, but
    the summary's "1 failed" must point at it."""
    entry = make_entry("item", "https://x.org/v.mp4", title="Une vidéo")
    preview = Job(entry, "preview", "https://x.org/p.jpg", "preview.jpg", optional=True)
    video = Job(entry, "video", "https://x.org/v.mp4", "video.mp4")
    report = DownloadReport(
        outcomes=(
            Outcome(preview, Status.FAILED, reason="answered text/html, not an image"),
            Outcome(video, Status.FETCHED),
        ),
        seconds=1.0,
    )
    assert report.failures == []
    assert optional_failure_lines(report) == [
        "Une vidéo (item, preview): https://x.org/p.jpg: answered text/html, not an image"
        " (optional: the kit goes without it)"
    ]


def test_credentials_a_redirect_brings_are_not_kept_in_the_catalog(
    tmp_path: Path, server: FileServer
) -> None:
    server.add("/real.pdf", b"%PDF-1.7\n%%EOF\n")
    target = server.url("/real.pdf").replace("http://", "http://ann:s3cret@")
    server.redirect("/fiche.pdf", target)
    assets = (Asset("fiche_pdf", server.url("/fiche.pdf")),)
    entry = make_entry("item", server.url("/v.mp4"), assets=assets)
    write_manifest(Manifest(entries=(entry,)), tmp_path / "m.json")
    code, _, stderr = run(
        "download", tmp_path / "m.json", "--archive", tmp_path / "a", "--retries", "0"
    )
    assert code == 1, stderr  # the video is missing; the PDF is what this is about
    db = sqlite3.connect(tmp_path / "a" / "catalog.sqlite")
    try:
        (final,) = db.execute("SELECT final_url FROM files WHERE role = 'fiche_pdf'").fetchone()
    finally:
        db.close()
    assert "s3cret" not in final
    assert final.startswith("http://***@127.0.0.1")


# -- exit 2 for a target that cannot be used, 1 only when items failed -----------------------


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A read-only file system (a tmpfs mounted ``ro``) at ``tmp_path/ro``: root writes
    through any permission bits, not through that. Skipped where it cannot be mounted."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("cannot mount tmpfs: no mount program")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {done.stderr.decode().strip()}")
    yield folder
    if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_kit_or_archive_folder_that_cannot_be_used_is_exit_2_not_1(
    server: FileServer, tmp_path: Path, read_only: Path
) -> None:
    manifest, archive, fiches = one_held(server, tmp_path)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder", encoding="utf-8")
    for kit in (a_file / "kit", read_only / "kit"):
        code, _, stderr = run("package", manifest, "--archive", archive, "-o", kit)
        assert code == 2, stderr
        assert stderr.startswith(f"Error: {kit}: ") and stderr.count("\n") == 1, stderr
        code, _, stderr = run("sync", fiches, "--archive", archive, "--kit", kit, "--offline")
        assert code == 2, stderr
        assert f"Error: {kit}: " in stderr
    for where in (a_file / "archive", read_only / "archive"):
        code, _, stderr = run("download", manifest, "--archive", where)
        assert code == 2, stderr
        assert stderr.startswith(f"Error: {where}") and stderr.count("\n") == 1, stderr
        code, _, stderr = run("sync", fiches, "--archive", where, "--kit", tmp_path / "kit")
        assert code == 2, stderr
    code, _, stderr = run("package", manifest, "--archive", tmp_path / "none", "-o", tmp_path / "k")
    assert (code, stderr) == (
        2,
        f"Error: {tmp_path / 'none'}: no archive here\nHint: run 'archiver download' first\n",
    )
    assert not (tmp_path / "k").exists()


def test_exit_1_only_when_items_failed(server: FileServer, tmp_path: Path) -> None:
    manifest, archive, _ = one_held(server, tmp_path)
    assert run("package", manifest, "--archive", archive, "-o", tmp_path / "kit")[0] == 0
    gone = tmp_path / "m2.json"
    entries = (make_entry("item", server.url("/v.mp4")), make_entry("x", server.url("/gone")))
    write_manifest(Manifest(entries=entries), gone)
    code, _, stderr = run("download", gone, "--archive", archive, "--retries", "0")
    assert code == 1
    assert stderr.splitlines()[0].startswith("Error: Vidéo x (x, video): ")
    assert stderr.splitlines()[-1].startswith(
        "Download: 2 videos (1 failed), 2 files: 0 downloaded, 0 changed, 1 already held,"
        " 1 failed; "
    )
