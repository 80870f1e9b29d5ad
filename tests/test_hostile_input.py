"""Fiches and manifests written by someone hostile: every one is exit 2 naming the file, the
field and the reason, in bounded time and memory, and never an internal error (exit 70)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.cli import cli
from archiver.entry import Entry
from archiver.errors import FicheError, ManifestError
from archiver.fiches import MAX_FICHE_BYTES, parse_fiche, parse_fiche_text
from archiver.manifest import Manifest, build_manifest, dumps, loads, write_manifest

from .conftest import SEED, WriteFiche, fiche_text

GOOD_HEAD = "---\ntitle: T\nvideoDLHref: https://x.org/v.mp4\n"

# Nine levels of nine aliases: 9**9 (387 million) strings once expanded, from 500 bytes.
BILLION_LAUGHS = (
    GOOD_HEAD
    + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "---\n"
)


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# -- YAML aliases and nesting ----------------------------------------------------------------


def test_a_billion_laughs_is_refused_at_once_in_bounded_memory(tmp_path: Path) -> None:
    """The CLI runs in a child limited to 1 GiB of address space: expanding the aliases would
    raise MemoryError (exit 70) or take minutes; refusing them takes milliseconds."""
    fiches = tmp_path / "fiches"
    fiches.mkdir()
    (fiches / "lol.md").write_text(BILLION_LAUGHS, encoding="utf-8")
    (fiches / "good.md").write_text(fiche_text(), encoding="utf-8")
    assert len(BILLION_LAUGHS.encode()) < 700

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "archiver", "manifest", fiches, "-o", tmp_path / "m.json"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_memory,
        check=False,
    )
    assert time.monotonic() - start < 30
    assert (done.returncode, done.stderr) == (
        2,
        f"Error: {fiches / 'lol.md'}: front matter: YAML aliases (*name) are not allowed in a "
        "fiche (anchor at line 4); write the value out instead\n",
    )
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    ("yaml_text", "line"),
    [
        pytest.param("a: &a [*a]\n", 4, id="list-holding-itself"),
        pytest.param("a: &a {b: *a}\n", 4, id="mapping-holding-itself"),
        pytest.param("a: &x hello\nb: *x\n", 4, id="scalar-alias"),
        pytest.param("a: &x {k: v}\nb:\n  <<: *x\n", 4, id="merge-alias"),
    ],
)
def test_every_alias_is_refused_with_the_line_of_its_anchor(
    write_fiche: WriteFiche, yaml_text: str, line: int
) -> None:
    path = write_fiche("alias.md", text=f"{GOOD_HEAD}{yaml_text}---\n")
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    assert (caught.value.field, caught.value.reason) == (
        "front matter",
        f"YAML aliases (*name) are not allowed in a fiche (anchor at line {line}); "
        "write the value out instead",
    )


def test_anchors_without_aliases_and_inline_merges_are_plain_yaml(write_fiche: WriteFiche) -> None:
    path = write_fiche("ok.md", text=f"{GOOD_HEAD}a: &x 1\nb: {{<<: {{k: v}}, l: w}}\n---\n")
    assert parse_fiche(path).extra == {"a": 1, "b": {"k": "v", "l": "w"}}


def test_nesting_is_bounded(write_fiche: WriteFiche) -> None:
    deep = write_fiche("deep.md", text=f"{GOOD_HEAD}x: {'[' * 21}1{']' * 21}\n---\n")
    with pytest.raises(FicheError) as caught:
        parse_fiche(deep)
    assert caught.value.field == "x" + "[0]" * 20
    assert caught.value.reason == "nested more than 20 levels deep"
    flow = write_fiche("flow.md", text=f"{GOOD_HEAD}x: {'[' * 200_000}\n---\n")
    with pytest.raises(FicheError, match="exceeded maximum nesting depth"):
        parse_fiche(flow)
    ok = write_fiche("ok.md", text=f"{GOOD_HEAD}x: {'[' * 20}1{']' * 20}\n---\n")
    assert parse_fiche(ok).extra["x"] == [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]


# -- values with no JSON (or SQLite) form ----------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "field", "reason"),
    [
        ("published: 2024-02-30", "published", "not a valid date: day is out of range for month"),
        ("published: 0000-01-01", "published", "not a valid date: year 0 is out of range"),
        ("t: 2024-01-01 10:00:00 +25:00", "t", "not a valid date: "),
        ("d: !!timestamp soon", "d", "not a date (YYYY-MM-DD)"),
        ("n: " + "9" * 5000, "n", "number too large (5000 characters; at most 64 bits)"),
        ("videoSize: " + "9" * 30, "videoSize", "number too large (at most 64 bits)"),
        ("n: 0x8000000000000000", "n", "number too large (at most 64 bits)"),
        ("n: !!int abc", "n", "not an integer"),
        ("f: 1.0e+400", "f", "number too large for a 64-bit float"),
        ("f: .nan", "f", "not a finite number (.nan and .inf have no JSON form)"),
        ("f: -.inf", "f", "not a finite number (.nan and .inf have no JSON form)"),
        ("f: [1, {g: .inf}]", "f[1].g", "not a finite number (.nan and .inf have no JSON form)"),
        ("f: !!float ''", "f", "not a number"),
        ("b: !!bool maybe", "b", "not a boolean"),
        ("3: x", "3", "field names must be text"),
        ("2024-02-30: x", "2024-02-30", "field names must be text"),
        ("? " + "9" * 5000 + "\n: x", "9" * 40 + "…", "field names must be text"),
        ("y: {1: a}", "y.1", "field names must be text"),
        ("y: {a: {null: b}}", "y.a.null", "field names must be text"),
        ("title: " + "A" * 1_000_000, "title", "1,000,000 characters long; at most 1,000 are"),
        ("area: " + "A" * 1001, "area", "1,001 characters long; at most 1,000 are allowed"),
        ("description: " + "A" * 20_001, "description", "20,001 characters long; at most 20,000"),
        ("fichePdfHref: https://x.org/" + "a" * 9000, "fichePdfHref", "9,014 characters long"),
    ],
)
def test_values_json_cannot_hold_name_the_field(
    write_fiche: WriteFiche, yaml_text: str, field: str, reason: str
) -> None:
    text = f"---\ntitle: T\nvideoDLHref: https://x.org/v.mp4\n{yaml_text}\n---\n"
    if yaml_text.startswith("title:"):
        text = text.replace("title: T\n", "")
    assert len(text.encode()) <= MAX_FICHE_BYTES
    path = write_fiche("bad.md", text=text)
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    assert (caught.value.path, caught.value.field) == (str(path), field)
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("yaml_text", "reason"),
    [
        ("published: 2024-02-30", "published: not a valid date: day is out of range for month"),
        ("n: " + "9" * 5000, "n: number too large (5000 characters; at most 64 bits)"),
        ("f: .nan", "f: not a finite number (.nan and .inf have no JSON form)"),
        ("f: 1.0e+400", "f: number too large for a 64-bit float"),
        ("? [1, 2]\n: x", "front matter: malformed YAML at line 4: found unhashable key"),
        ("2024-02-30: x", "2024-02-30: field names must be text"),
        (
            "title: " + "A" * 1_000_000,
            "title: 1,000,000 characters long; at most 1,000 are allowed",
        ),
    ],
)
def test_the_cli_exits_2_naming_the_fiche_the_field_and_the_reason(
    write_fiche: WriteFiche, tmp_path: Path, yaml_text: str, reason: str
) -> None:
    text = f"{GOOD_HEAD}{yaml_text}\n---\n"
    if yaml_text.startswith("title:"):
        text = text.replace("title: T\n", "")
    bad = write_fiche("bad.md", text=text)
    write_fiche("good.md")
    code, stdout, stderr = run("manifest", tmp_path / "fiches", "-o", tmp_path / "m.json")
    assert (code, stdout) == (2, "")
    assert stderr == f"Error: {bad}: {reason}\n"
    assert not (tmp_path / "m.json").exists()


def test_every_bad_fiche_of_a_collection_is_reported_and_the_good_ones_parsed(
    write_fiche: WriteFiche, tmp_path: Path
) -> None:
    lol = write_fiche("a-lol.md", text=BILLION_LAUGHS)
    date = write_fiche("b-date.md", text=f"{GOOD_HEAD}d: 2024-02-30\n---\n")
    loop = write_fiche("c-loop.md", text=f"{GOOD_HEAD}a: &a [*a]\n---\n")
    write_fiche("d-good.md")
    code, _, stderr = run("manifest", tmp_path / "fiches", "-o", tmp_path / "m.json")
    assert code == 2
    assert stderr.splitlines() == [
        f"Error: {lol}: front matter: YAML aliases (*name) are not allowed in a fiche "
        "(anchor at line 4); write the value out instead",
        f"Error: {date}: d: not a valid date: day is out of range for month",
        f"Error: {loop}: front matter: YAML aliases (*name) are not allowed in a fiche "
        "(anchor at line 4); write the value out instead",
    ]
    (tmp_path / "fiches" / lol.name).unlink()
    (tmp_path / "fiches" / date.name).unlink()
    (tmp_path / "fiches" / loop.name).unlink()
    assert len(build_manifest([tmp_path / "fiches"]).entries) == 1


# -- file names and control characters -------------------------------------------------------


def test_a_pipe_named_like_a_fiche_is_refused_without_waiting(tmp_path: Path) -> None:
    """Opening a pipe to read it blocks until something writes to it: a cron job hung."""
    folder = tmp_path / "fiches"
    folder.mkdir()
    (folder / "good.md").write_text(fiche_text(), encoding="utf-8")
    os.mkfifo(folder / "pipe.md")
    done = subprocess.run(
        [sys.executable, "-m", "archiver", "manifest", folder, "-o", tmp_path / "m.json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        2,
        f"Error: {folder / 'pipe.md'}: not a regular file (a pipe or a device?)\n",
    )


def test_field_names_in_messages_and_warnings_are_one_bounded_line(
    write_fiche: WriteFiche, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_fiche("k.md", text=f'{GOOD_HEAD}"a\\nb": {{"c\\e": .nan}}\n---\n')
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    assert caught.value.field == "a\\nb.c\\x1b"
    many = "".join(f"extra{i}: {i}\n" for i in range(25))
    credits = (
        "## Crédits\n\n- **Licence** : [CC BY](https://creativecommons.org/licenses/by/4.0/)\n"
    )
    path = write_fiche("many.md", text=f"{GOOD_HEAD}{many}---\n{credits}")
    with caplog.at_level(logging.WARNING, logger="archiver"):
        parse_fiche(path)
    assert caplog.messages == [
        f"{path}: unknown front-matter field(s) kept as extra: "
        + ", ".join(f"extra{i}" for i in (0, 1, 10, 11, 12, 13, 14, 15, 16, 17))
        + " and 15 more"
    ]
    document = json.loads(_manifest_text())
    document["entries"][0]["extra"] = {"a\nb": float("nan")}
    with pytest.raises(ManifestError) as manifest_error:
        loads(json.dumps(document))
    assert manifest_error.value.field == "entries[0].extra.a\\nb"


def test_a_fiche_name_that_is_not_utf8_is_exit_2_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "fiches"
    folder.mkdir()
    try:
        name = os.fsdecode(b"caf\xe9.md")
        (folder / name).write_text(fiche_text(), encoding="utf-8")
    except (OSError, UnicodeError) as exc:  # pragma: no cover - a filesystem that refuses it
        pytest.skip(f"this filesystem refuses a Latin-1 file name: {exc}")
    code, stdout, stderr = run("manifest", folder, "-o", tmp_path / "m.json")
    assert (code, stdout) == (2, "")
    assert stderr == (
        f"Error: {folder}/caf\\xe9.md: file name: not UTF-8 (byte 0xe9); the manifest records "
        "it as text: rename the file\n"
    )
    assert not (tmp_path / "m.json").exists()


def test_control_characters_in_a_title_are_kept_as_written(
    write_fiche: WriteFiche, tmp_path: Path
) -> None:
    """Escaped in the YAML (``\\e``), an ESC is text like any other: the manifest holds it as
    written (JSON writes it ``\\u001b``); whoever prints it escapes it (the CLI, the kit's HTML)."""
    path = write_fiche(
        "esc.md",
        text='---\ntitle: "Vidéo \\e[31mrouge\\e[0m\\a"\nvideoDLHref: https://x.org/v\n---\n',
    )
    entry = parse_fiche(path)
    assert entry.title == "Vidéo \x1b[31mrouge\x1b[0m\x07"
    out = tmp_path / "m.json"
    write_manifest(Manifest(entries=(entry,)), out)
    text = out.read_text(encoding="utf-8")
    assert '"title": "Vidéo \\u001b[31mrouge\\u001b[0m\\u0007"' in text
    assert "\x1b" not in text
    assert loads(text).entries[0].title == entry.title


def test_a_raw_control_character_in_the_front_matter_is_refused_with_its_line(
    write_fiche: WriteFiche,
) -> None:
    path = write_fiche(
        "raw.md", text="\n---\ntitle: Vidéo\nvideoDLHref: https://x.org/v\narea: a\x1bb\n---\n"
    )
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    assert caught.value.message == (
        f"{path}: front matter: malformed YAML at line 5: unacceptable character #x001b: "
        "control characters are not allowed"
    )


# -- quadratic patterns ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("## a" + " " * 200_000 + "b\n", id="heading-of-blanks"),
        pytest.param("## a" + " #" * 100_000 + "b\n", id="heading-of-hashes"),
        pytest.param("## Crédits\n- **R** : a" + " " * 200_000 + "b\n", id="credit-of-blanks"),
        pytest.param("## Crédits\n- **R** : a" + " \t" * 100_000 + "etc\n", id="credit-et"),
    ],
)
def test_a_long_line_is_read_in_linear_time(body: str) -> None:
    """These took minutes: patterns that backtracked over a run of blanks at every blank."""
    start = time.monotonic()
    entry = parse_fiche_text(
        GOOD_HEAD + "---\n" + body, path=Path("x.md"), relpath="x.md", sha256="0" * 64
    )
    assert time.monotonic() - start < 2
    assert entry.title == "T"


def test_heading_and_credit_parsing_is_unchanged_on_ordinary_fiches(
    write_fiche: WriteFiche,
) -> None:
    body = (
        "## Script ##\n\nTexte\n\n### Sous-titre\n\nsuite\n\n##Pas un titre\n\n"
        "## Crédits\n\n- **Scénario** : A , B;C et D  and E & F\n- **Vide** :\n"
    )
    entry = parse_fiche(write_fiche("v.md", text=GOOD_HEAD + "---\n" + body))
    assert entry.transcript == "Texte\n\n### Sous-titre\n\nsuite\n\n##Pas un titre"
    assert [(c.role, c.names) for c in entry.credits] == [
        ("Scénario", ("A", "B", "C", "D", "E", "F")),
        ("Vide", ()),
    ]


# -- manifests ---------------------------------------------------------------------------------


def _manifest_text(**changes: object) -> str:
    document = json.loads(dumps(build_manifest([SEED])))
    document["entries"][0].update(changes)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            _manifest_text(peertube={"instance": "https://x.org", "uuid": "../../victim/settings"}),
            "entries[0].peertube.uuid: expected a UUID (8-4-4-4-12 lowercase hexadecimal digits)",
            id="uuid-path",
        ),
        pytest.param(
            _manifest_text(
                peertube={
                    "instance": "https://x.org/../../victim?",
                    "uuid": "9520b54d-0a3c-43dc-8821-d559fa418cc6",
                }
            ),
            "entries[0].peertube.instance: expected the instance's address alone (https://host)",
            id="instance-with-path",
        ),
        pytest.param(
            _manifest_text(id="../../victim"),
            "entries[0].id: '../../victim' is not a safe id",
            id="id-path",
        ),
        pytest.param(
            _manifest_text(source={"path": "../../etc/passwd", "sha256": "0" * 64}),
            "entries[0].source.path: '../../etc/passwd' must not have empty, '.' or '..' segments",
            id="source-path",
        ),
        pytest.param(
            '{"schema_version": 1, "entries": [], "n": ' + "9" * 5000 + "}",
            None,
            id="huge-unused-number",
        ),
        pytest.param(
            _manifest_text(video={"url": "https://x.org/v.mp4", "size": 10**30}),
            "entries[0].video.size: number too large (at most 64 bits)",
            id="huge-size",
        ),
        pytest.param(
            _manifest_text(extra={"n": 1}).replace('"n": 1', '"n": ' + "9" * 5000),
            "entries[0].extra.n: number too large (at most 64 bits)",
            id="5000-digits",
        ),
        pytest.param(
            _manifest_text(extra={"n": 1}).replace('"n": 1', '"n": NaN'),
            "entries[0].extra.n: NaN is not JSON (no NaN or Infinity in a manifest)",
            id="nan",
        ),
        pytest.param(
            _manifest_text(extra={"n": 1}).replace('"n": 1', '"n": -Infinity'),
            "entries[0].extra.n: -Infinity is not JSON (no NaN or Infinity in a manifest)",
            id="infinity",
        ),
        pytest.param(
            _manifest_text(extra={"n": 1}).replace('"n": 1', '"n": 1e400'),
            "entries[0].extra.n: number too large for a 64-bit float",
            id="huge-float",
        ),
        pytest.param(
            '{"schema_version": 1e400, "entries": []}',
            "schema_version: number too large for a 64-bit float",
            id="huge-version",
        ),
        pytest.param(
            '{"schema_version": true, "entries": []}',
            "schema_version: unsupported version True",
            id="boolean-version",
        ),
        pytest.param(
            _manifest_text().replace('"id": ', '"id": "a", "id": ', 1),
            "entries[0]: key 'id' given twice",
            id="duplicate-key",
        ),
        pytest.param(
            '{"schema_version": 1, "schema_version": 1, "entries": []}',
            "manifest: key 'schema_version' given twice",
            id="duplicate-top-key",
        ),
        pytest.param(
            _manifest_text(extra={"x": {"y": [1]}}).replace("[1]", "[" * 30 + "]" * 30),
            "entries[0].extra.x.y" + "[0]" * 18 + ": nested more than 20 levels deep",
            id="deep-extra",
        ),
        pytest.param(
            "[" * 100_000 + "]" * 100_000,
            "invalid JSON: nested too deeply",
            id="deep-json",
        ),
        pytest.param(
            _manifest_text(title="T" * 1001),
            "entries[0].title: 1,001 characters long; at most 1,000 are allowed",
            id="long-title",
        ),
        pytest.param(
            _manifest_text(assets=[{"kind": "fiche_pdf", "url": "https://x.org/a.pdf"}] * 2),
            "entries[0].assets[1].kind: 'fiche_pdf' given twice",
            id="asset-twice",
        ),
        pytest.param(
            _manifest_text(assets=[{"kind": "../x", "url": "https://x.org/a.pdf"}]),
            "entries[0].assets[0].kind: unknown kind '../x'",
            id="asset-kind-path",
        ),
    ],
)
def test_a_hostile_manifest_is_refused_naming_the_field(text: str, message: str | None) -> None:
    if message is None:  # refused or accepted, but never an internal error
        with contextlib.suppress(ManifestError):
            loads(text)
        return
    with pytest.raises(ManifestError) as caught:
        loads(text, path="m.json")
    assert caught.value.message.startswith(f"m.json: {message}")


def test_a_lone_surrogate_escape_is_refused_naming_the_field() -> None:
    text = _manifest_text(title="x").replace('"title": "x"', '"title": "a\\udc80b"')
    with pytest.raises(ManifestError) as caught:
        loads(text.encode(), path="m.json")
    assert caught.value.message == (
        "m.json: entries[0].title: holds a lone surrogate (\\udc80), not text"
    )
    pair = _manifest_text(title="x").replace('"title": "x"', '"title": "\\ud83d\\ude00"')
    assert loads(pair).entries[0].title == "\U0001f600"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("", "must not be empty"),
        ("/etc/passwd", "must be relative to the collection's folder, not absolute"),
        ("a//b.md", "must not have empty, '.' or '..' segments"),
        ("./a.md", "must not have empty, '.' or '..' segments"),
        ("a\x00.md", "holds a NUL character"),
    ],
)
def test_a_source_path_is_what_find_fiches_records(source: str, reason: str) -> None:
    with pytest.raises(ManifestError) as caught:
        loads(_manifest_text(source={"path": source, "sha256": "0" * 64}))
    assert caught.value.field == "entries[0].source.path"
    assert caught.value.reason == f"{source!r} {reason}"


def test_download_of_a_hostile_manifest_is_exit_2_naming_the_field(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text(
        _manifest_text(peertube={"instance": "https://x.org", "uuid": "../../victim/settings"}),
        encoding="utf-8",
    )
    code, _, stderr = run("download", manifest, "--archive", tmp_path / "archive")
    assert code == 2
    assert stderr == (
        f"Error: {manifest}: entries[0].peertube.uuid: expected a UUID "
        "(8-4-4-4-12 lowercase hexadecimal digits)\n"
    )
    assert not (tmp_path / "victim").exists()


def test_an_oversized_manifest_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from archiver.manifest import MAX_MANIFEST_BYTES, load_manifest

    path = tmp_path / "m.json"
    with path.open("wb") as stream:
        stream.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: nothing is written
    start = time.monotonic()
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.message == f"{path}: larger than 256 MiB; not a manifest"
    assert time.monotonic() - start < 1


# -- the manifest's output ---------------------------------------------------------------------


def test_manifest_output_never_replaces_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    link = tmp_path / "m.json"
    link.symlink_to(victim)
    code, _, stderr = run("manifest", SEED, "-o", link)
    assert code == 2
    assert stderr == (
        f"Error: {link}: will not write the manifest there: a symbolic link; archiver does not "
        "write through links\n"
    )
    assert link.is_symlink() and os.readlink(link) == str(victim)
    assert victim.read_text(encoding="utf-8") == "precious"


def test_manifest_output_never_replaces_a_device_node(tmp_path: Path) -> None:
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("creating a device node needs root")
    code, _, stderr = run("manifest", SEED, "-o", node)
    assert code == 2
    assert stderr == (
        f"Error: {node}: will not write the manifest there: a device or other special file, "
        "not a regular file\n"
    )
    assert stat.S_ISCHR(node.lstat().st_mode)


def test_manifest_output_never_blocks_on_a_pipe(tmp_path: Path) -> None:
    """Comparing with the file's old content read the pipe, which blocks for ever."""
    fifo = tmp_path / "m.json"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "archiver", "manifest", SEED, "-o", fifo],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "a device or other special file, not a regular file" in done.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


# -- properties: anything in, an entry or one clear error out --------------------------------

# YAML and Markdown pieces that reach the loader's and the parser's corners.
YAML_PIECES = [
    "title: ",
    "videoDLHref: ",
    "videoEmbedSrc: ",
    "area: ",
    "videoSize: ",
    "videoSha256: ",
    "fichePdfHref: ",
    "description: ",
    "https://x.org/videos/embed/11111111-2222-4333-8444-555555555555",
    "https://x.org/v.mp4",
    "&a ",
    "*a",
    "&b [*a, *a]",
    "<<: ",
    "? ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "\n",
    "\n  ",
    "'",
    '"',
    "\\e",
    "\\x00",
    "\\ud800",
    "!!int ",
    "!!float ",
    "!!bool ",
    "!!timestamp ",
    "!!binary ",
    "!!set ",
    "!!omap ",
    "!!str ",
    "!!python/object:os.system ",
    "!custom ",
    "2024-02-30",
    "2024-01-01T25:00:00",
    "0000-01-01",
    ".nan",
    "-.inf",
    "1.0e+400",
    "0x" + "f" * 40,
    "9" * 5000,
    "1:2:3",
    "~",
    "null",
    "yes",
    "0o17",
    "|\n  x",
    ">-\n  y",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "#",
    "\t",
    "\x1b",
    "\x85",
    "\u2028",
    "\ufeff",
]
BODY_PIECES = [
    "## Script\n",
    "## Crédits\n",
    "## Credits ##\n",
    "- **Licence** : ",
    "[CC](javascript:x)",
    "[CC](https://x.org/l)",
    "- **Rôle** : ",
    "A, B et C",
    " " * 50,
    "\r\n",
    "\n",
    "**",
    "##",
]
yaml_texts = st.lists(st.sampled_from(YAML_PIECES) | st.text(max_size=8), max_size=30).map("".join)
body_texts = st.lists(st.sampled_from(BODY_PIECES) | st.text(max_size=8), max_size=20).map("".join)
fiche_texts = (
    st.text()
    | st.builds(lambda fm, body: f"---\n{fm}\n---\n{body}", yaml_texts, body_texts)
    | st.builds(lambda fm, body: f"{GOOD_HEAD}{fm}\n---\n{body}", yaml_texts, body_texts)
    # A long run of one piece: what a quadratic pattern or an unbounded expansion would show.
    | st.builds(
        lambda head, piece, count, tail: f"{GOOD_HEAD}---\n{head}{piece * count}{tail}",
        st.sampled_from(["## a", "## Crédits\n- **R** : a", "", "x"]),
        st.sampled_from([" ", "\t", " #", ",", " et", "*", "[", "-", "## "]),
        st.integers(1, 100_000),
        st.sampled_from(["", "b", "\n"]),
    )
)

HOSTILE = settings(
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _entry_or_error(text: str) -> Entry | FicheError:
    try:
        return parse_fiche_text(text, path=Path("f.md"), relpath="f.md", sha256="0" * 64)
    except FicheError as error:
        return error


@HOSTILE
@given(fiche_texts)
def test_any_fiche_text_gives_an_entry_or_a_fiche_error(text: str) -> None:
    entry = _entry_or_error(text)
    if isinstance(entry, FicheError):
        assert "\n" not in entry.message  # one line
        return
    assert isinstance(entry, Entry)
    # What a fiche gives, the manifest holds: written as UTF-8 and read back equal.
    manifest = Manifest(entries=(entry,))
    assert loads(dumps(manifest).encode("utf-8")) == manifest


JSON_PIECES = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"schema_version"',
    '"entries"',
    '"id"',
    '"title"',
    '"video"',
    '"url"',
    '"extra"',
    '"peertube"',
    '"uuid"',
    '"source"',
    '"path"',
    '"assets"',
    '"kind"',
    '"fiche_pdf"',
    '"../x"',
    '"https://x.org/v.mp4"',
    "1",
    "-0",
    "1e400",
    "9" * 5000,
    "NaN",
    "-Infinity",
    "true",
    "null",
    '"\\ud800"',
    '"\\u0000"',
    " ",
    "\n",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
SEED_DOCUMENT = json.loads(dumps(build_manifest([SEED])))
FIELDS = sorted(SEED_DOCUMENT["entries"][0])


def _with_field(field: str, value: object) -> str:
    document = json.loads(json.dumps(SEED_DOCUMENT))
    document["entries"][0][field] = value
    return json.dumps(document, allow_nan=True)


manifest_inputs = (
    st.binary()
    | st.text()
    | st.lists(st.sampled_from(JSON_PIECES), max_size=40).map("".join)
    | st.builds(_with_field, st.sampled_from(FIELDS), json_values)
    | st.builds(lambda n: "[" * n + "]" * n, st.integers(1, 200_000))
)


def _manifest_or_error(data: bytes | str) -> Manifest | ManifestError:
    try:
        return loads(data)
    except ManifestError as error:
        return error


@HOSTILE
@given(manifest_inputs)
def test_any_manifest_input_gives_a_manifest_or_a_manifest_error(data: bytes | str) -> None:
    manifest = _manifest_or_error(data)
    if isinstance(manifest, ManifestError):
        assert "\n" not in manifest.message  # one line
        return
    assert isinstance(manifest, Manifest)
    # A manifest that loads can be written again as UTF-8, and reads back equal.
    assert loads(dumps(manifest).encode("utf-8")) == manifest


def test_a_fiche_name_with_a_newline_stays_one_line_in_every_message(tmp_path: Path) -> None:
    folder = tmp_path / "fiches"
    folder.mkdir()
    (folder / "new\nline.md").write_text(fiche_text(extra_yaml="tags: [a]"), encoding="utf-8")
    (folder / "bad\x1b[31m.md").write_text(fiche_text(title=None), encoding="utf-8")
    code, _, stderr = run("manifest", folder, "-o", tmp_path / "m.json")
    assert code == 2
    assert stderr.splitlines() == [
        f"Warning: {folder}/new\\nline.md: unknown front-matter field(s) kept as extra: tags",
        f"Error: {folder}/bad\\x1b[31m.md: title: missing required field",
    ]


def test_a_folder_tree_a_thousand_levels_deep_is_walked(tmp_path: Path) -> None:
    """os.walk recursed once a level (before Python 3.12): RecursionError, exit 70."""
    top = tmp_path / "fiches"
    deep = top
    top.mkdir()
    try:
        for _ in range(1100):  # Path.mkdir(parents=True) recurses too
            deep = deep / "a"
            deep.mkdir()
        (deep / "v.md").write_text(fiche_text(), encoding="utf-8")
        code, _, stderr = run("-q", "manifest", top, "-o", tmp_path / "m.json")
        assert (code, stderr) == (0, "")
        (entry,) = loads((tmp_path / "m.json").read_bytes()).entries
        assert entry.source.path == "a/" * 1100 + "v.md"
    finally:
        # Removed level by level: pytest's clean-up (shutil.rmtree) recurses as os.walk did,
        # and a tree left this deep breaks every later session's clean-up.
        (deep / "v.md").unlink(missing_ok=True)
        while deep != top:
            deep.rmdir()
            deep = deep.parent
