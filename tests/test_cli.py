"""What a user sees: exact lines on stderr and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from archiver import __version__
from archiver.cli import cli
from archiver.manifest import Manifest, write_manifest

from .conftest import SEED, SEED_UUID, WriteFiche, content_of, fiche_text, one_held
from .server import FileServer


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


# -- what a sync says: videos and files apart, and with -v each file's outcome ---------------

UUID_A = "0000000a-1111-4222-8333-444444444444"
UUID_B = "0000000b-1111-4222-8333-444444444444"


def test_sync_counts_videos_and_files_apart_and_verbose_itemizes_each_file(
    server: FileServer, write_fiche: WriteFiche, tmp_path: Path
) -> None:
    server.add(f"/videos/{UUID_A}.mp4", content_of(50_000))
    url_b = server.url(f"/videos/{UUID_B}.mp4")  # not served: the video fails
    write_fiche("a.md", title="Vidéo A", embed=None, download=server.url(f"/videos/{UUID_A}.mp4"))
    fiche_b = write_fiche("b.md", title="Vidéo B", embed=None, download=url_b)
    args = [
        "sync", tmp_path / "fiches", "--archive", tmp_path / "archive",
        "--kit", tmp_path / "kit", "--retries", "0", "-v",
    ]  # fmt: skip
    code, stdout, stderr = run(*args)
    assert code == 1
    assert stdout.splitlines() == [
        f"fetched   Vidéo A ({UUID_A}, video): 48.8 KiB",
        f"failed    Vidéo B ({UUID_B}, video): {url_b}: HTTP 404 Not Found",
    ]
    summary = stderr.splitlines()[-1]
    assert re.fullmatch(
        r"Sync: 2 videos \(1 failed\); 2 files: 1 fetched, 0 changed, 0 held, 1 failed"
        r" \(48\.8 KiB\); kit: 1 video, \d+ files written; in \d+\.\d s",
        summary,
    ), summary
    # Asked again at once (--refresh-after 0): upstream says unchanged; B left the collection.
    fiche_b.unlink()
    code, stdout, stderr = run(*args, "--refresh-after", "0")
    assert code == 0, stderr
    assert stdout.splitlines() == [
        f"unchanged Vidéo A ({UUID_A}, video): upstream says it has not changed",
        f"retired   Vidéo B ({UUID_B}): its fiche left the collection; the archive keeps its files",
    ]
    assert stderr.splitlines()[-1].startswith(
        "Sync: 1 video, 1 retired; 1 file: 0 fetched, 0 changed, 1 held, 0 failed (0 B); kit:"
    )
    # Within --refresh-after nothing is asked: the file is kept as held.
    code, stdout, _ = run(*args)
    assert (code, stdout) == (
        0,
        f"kept      Vidéo A ({UUID_A}, video): held, not due for a check upstream\n",
    )
    # Without -v, none of it.
    assert run(*args[:-1])[1] == ""


# -- every --help claim that can be checked, checked -----------------------------------------

CREATED = "(created if missing)"
MUST_EXIST = "(it must exist: nothing is created)"


def _archive_help(command: str) -> str:
    (option,) = [p for p in cli.commands[command].params if p.name == "archive"]
    assert isinstance(option, click.Option)
    return " ".join((option.help or "").split())


def _minimal_args(command: str, tmp_path: Path) -> list[str | Path]:
    """What each command needs besides --archive to get as far as the archive."""
    manifest = tmp_path / "m.json"
    write_manifest(Manifest(entries=()), manifest)
    fiches = tmp_path / "fiches"
    fiches.mkdir(exist_ok=True)
    (fiches / "a.md").write_text(fiche_text(), encoding="utf-8")
    return {
        "download": [manifest],
        "package": [manifest, "-o", tmp_path / "kit"],
        "sync": [fiches, "--kit", tmp_path / "kit", "--offline"],
        "prune": ["--retired-before", "2026-01-01"],
        "history": ["item"],
        "restore": ["item", "--version", "1"],
        "export": [],
        "status": [],
    }[command]


@pytest.mark.parametrize(
    "command",
    sorted(n for n, c in cli.commands.items() if any(p.name == "archive" for p in c.params)),
)
def test_what_the_help_says_of_a_missing_archive_is_true(command: str, tmp_path: Path) -> None:
    said = _archive_help(command)
    archive = tmp_path / "new-archive"
    if command == "verify":  # audits an archive, so one must be there
        assert "Audit an archive" in said
        code, _, _ = run("verify", "--archive", archive)
        assert code == 2 and not archive.exists()
        return
    args = _minimal_args(command, tmp_path)
    code, _, stderr = run(command, *args, "--archive", archive, "-q")
    if CREATED in said:
        assert archive.is_dir() and (archive / "catalog.sqlite").is_file(), (code, stderr)
        assert code in (0, 1), stderr
    else:
        assert MUST_EXIST in said, f"archiver {command} --archive: say whether it is created"
        assert not archive.exists()
        assert code == 2, stderr  # a target that cannot be used
    assert "Traceback" not in stderr


@pytest.mark.parametrize(("command", "option"), [("package", "--output"), ("sync", "--kit")])
def test_a_kit_folder_may_be_missing_or_empty_as_the_help_says(
    command: str, option: str, server: FileServer, tmp_path: Path
) -> None:
    (param,) = [p for p in cli.commands[command].params if option in getattr(p, "opts", ())]
    assert "empty, missing, or a kit archiver made" in " ".join((param.help or "").split())
    manifest, _, fiches = one_held(server, tmp_path)
    for kit in (tmp_path / "missing" / "kit", tmp_path / "empty"):
        kit.parent.mkdir(parents=True, exist_ok=True)
        if kit.name == "empty":
            kit.mkdir()
        head = [manifest] if command == "package" else [fiches, "--offline"]
        code, _, stderr = run(command, *head, "--archive", tmp_path / "archive", option, kit)
        assert (kit / "index.html").is_file(), stderr
        # And a kit archiver made is updated in place.
        again = run(command, *head, "--archive", tmp_path / "archive", option, kit, "-q")
        assert again[0] == code, again
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    head = [manifest] if command == "package" else [fiches, "--offline"]
    code, _, _ = run(command, *head, "--archive", tmp_path / "archive", option, other)
    assert code == 2  # neither empty, missing nor archiver's: refused
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_the_help_of_verbose_and_of_exit_codes_says_what_the_cli_does() -> None:
    _, stdout, _ = run("--help")
    text = " ".join(stdout.split())
    assert "one line per file: fetched, changed, unchanged, kept or failed" in text
    assert "130 interrupted (Ctrl-C)" in text
    assert "70 a bug in archiver" in text
    from archiver.cli import EXIT_INTERNAL, EXIT_INTERRUPTED

    assert (EXIT_INTERNAL, EXIT_INTERRUPTED) == (70, 130)
