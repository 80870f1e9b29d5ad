"""The command line against hostile values: every bad value is exit 2 with a reason, nothing a
title or a server says can drive the terminal, no password is printed, no write goes through
a link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli import cli
from archiver.manifest import Manifest, write_manifest

from .conftest import make_entry
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
