"""What a user sees: exact lines on stderr and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver import __version__
from archiver.cli import cli

from .conftest import SEED, SEED_UUID, WriteFiche


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_manifest_writes_the_file_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    code, stdout, stderr = run("manifest", SEED, "-o", out)
    assert (code, stdout) == (0, "")
    assert stderr == f"Manifest: 1 entry written to {out}\n"
    assert json.loads(out.read_text(encoding="utf-8"))["entries"][0]["id"] == SEED_UUID
    code, _, stderr = run("manifest", SEED, "-o", out)
    assert stderr == f"Manifest: 1 entry unchanged in {out}\n"


def test_manifest_without_paths_uses_the_bundled_collection() -> None:
    code, stdout, _ = run("manifest")
    assert code == 0
    assert json.loads(stdout)["entries"][0]["id"] == SEED_UUID


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_works_before_and_after_the_command(tmp_path: Path, where: str) -> None:
    out = tmp_path / "m.json"
    args = ["manifest", str(SEED), "-o", str(out)]
    args = ["-q", *args] if where == "before" else [*args, "-q"]
    assert run(*args) == (0, "", "")
    assert out.exists()


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        (
            "yaml.md",
            "---\ntitle: T\n  bad: indent\nvideoEmbedSrc: https://x.org/v\n---\n",
            "front matter: malformed YAML at line 3: mapping values are not allowed in this context",
        ),
        (
            "notitle.md",
            "---\nvideoEmbedSrc: https://x.org/v\n---\n",
            "title: missing required field",
        ),
        (
            "nourl.md",
            "---\ntitle: T\n---\n",
            "videoDLHref: no video URL: the fiche needs videoDLHref or videoEmbedSrc",
        ),
        (
            "type.md",
            "---\ntitle: T\ndescription: {a: 1}\nvideoEmbedSrc: https://x.org/v\n---\n",
            "description: expected text, got a mapping",
        ),
        (
            "scheme.md",
            "---\ntitle: T\nvideoDLHref: data:text/html,hi\n---\n",
            "videoDLHref: URL scheme must be http or https, got 'data'",
        ),
        (
            "tag.md",
            "---\ntitle: !!python/name:os.system\nvideoEmbedSrc: https://x.org/v\n---\n",
            "front matter: malformed YAML at line 2: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/name:os.system' (only plain YAML is allowed; tags are not)",
        ),
    ],
)
def test_each_bad_fiche_gives_exit_2_and_one_line(
    write_fiche: WriteFiche, tmp_path: Path, name: str, text: str, line: str
) -> None:
    path = write_fiche(name, text=text)
    out = tmp_path / "m.json"
    code, stdout, stderr = run("manifest", path, "-o", out)
    assert code == 2
    assert stdout == ""
    assert stderr == f"Error: {path}: {line}\n"
    assert not out.exists()


def test_not_utf8_and_oversized_fiches(write_fiche: WriteFiche, tmp_path: Path) -> None:
    latin = write_fiche("latin.md", text="---\ntitle: é\n---\n".encode("latin-1"))
    big = write_fiche("big.md", text=b"---\n" + b"#" * (2 * 1024 * 1024))
    code, _, stderr = run("manifest", tmp_path / "fiches", "-o", tmp_path / "m.json")
    assert code == 2
    assert stderr == (
        f"Error: {big}: larger than 1024 KiB; not a fiche\n"
        f"Error: {latin}: not UTF-8 text (invalid byte at offset 11)\n"
    )


def test_every_invalid_fiche_is_listed_and_nothing_written(
    write_fiche: WriteFiche, tmp_path: Path
) -> None:
    write_fiche("ok.md")
    one = write_fiche("one.md", title=None)
    two = write_fiche("two.md", text="no front matter\n")
    out = tmp_path / "m.json"
    code, _, stderr = run("manifest", tmp_path / "fiches", "-o", out)
    assert code == 2
    assert stderr == (
        f"Error: {one}: title: missing required field\n"
        f"Error: {two}: front matter: missing: a fiche starts with a '---' line\n"
    )
    assert not out.exists()


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    code, _, stderr = run("manifest", tmp_path / "nope")
    assert code == 2
    assert "does not exist" in stderr
    assert "Traceback" not in stderr


def test_verbose_shows_the_traceback(write_fiche: WriteFiche) -> None:
    path = write_fiche("bad.md", title=None)
    code, _, stderr = run("-v", "manifest", path)
    assert code == 2
    assert "Traceback" in stderr
    assert stderr.endswith(f"Error: {path}: title: missing required field\n")


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = run("manifest", SEED, "-o", blocker / "m.json")
    assert code == 2
    assert stderr.startswith(f"Error: {blocker / 'm.json'}: cannot write: ")
    assert stderr.count("\n") == 1


def test_unknown_fields_warn_unless_quiet(write_fiche: WriteFiche) -> None:
    path = write_fiche(extra_yaml="duree: 3")
    code, _, stderr = run("manifest", path)
    assert code == 0
    assert stderr == f"Warning: {path}: unknown front-matter field(s) kept as extra: duree\n"
    assert run("manifest", path, "-q")[2] == ""


def test_version_and_help() -> None:
    code, stdout, _ = run("--version")
    assert (code, stdout) == (0, f"archiver, version {__version__}\n")
    code, stdout, _ = run("-h")
    assert code == 0 and "Exit codes:" in stdout
    code, stdout, _ = run("manifest", "--help")
    assert code == 0 and "archiver manifest fiches/ -o manifests/canope.json" in stdout


def test_config_file_supplies_defaults(tmp_path: Path) -> None:
    out = tmp_path / "from-config.json"
    config = tmp_path / "archiver.toml"
    config.write_text(f'[manifest]\noutput = "{out}"\n', encoding="utf-8")
    code, _, _ = run("--config", config, "manifest", SEED)
    assert code == 0 and out.exists()
    out.unlink()
    code, _, _ = run("manifest", SEED, "--config", config)
    assert code == 0 and out.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("jobs = [", "invalid TOML"),
        ("colour = 'red'", "colour: no command has this option"),
        ("[manifest]\ncolour = 1", "manifest.colour: 'archiver manifest' has no such option"),
        ("[nope]\nx = 1", "[nope]: no such command"),
    ],
)
def test_bad_config_is_one_line_with_exit_2(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(content, encoding="utf-8")
    code, _, stderr = run("--config", config, "manifest", SEED)
    assert code == 2
    assert f"{config}: {message}" in stderr
    assert stderr.startswith("Usage:") or stderr.startswith("Error:")
    assert "Traceback" not in stderr


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    done = subprocess.run(
        [sys.executable, "-m", "archiver", "manifest", str(SEED), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert out.exists()


def test_info_lines_only_with_verbose(tmp_path: Path) -> None:
    import logging

    from archiver.cli import _configure_logging, _State

    logger = logging.getLogger("archiver")
    for verbosity, level in (
        (-1, logging.ERROR),
        (0, logging.WARNING),
        (1, logging.INFO),
        (2, logging.DEBUG),
    ):
        _configure_logging(_State(verbosity=verbosity))
        assert logger.level == level
