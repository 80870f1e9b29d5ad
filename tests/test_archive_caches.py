"""What archiver keeps to spare work, held to what it spares: a cache of parses made by
another build is not this build's; a file noted as written is noted by what no edit keeps (its
change time); the temporaries a killed run left are removed by the next; a cache's read bound
counts what its records hold."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archiver import code_key, fiche_cache, settled
from archiver import sync as sync_module
from archiver.fiche_cache import CACHE_FOLDER, CACHE_NAME, FicheCache
from archiver.files import temporaries_of, temporary_file
from archiver.kit.page_cache import pages_path
from archiver.manifest import build_valid, write_manifest

from .conftest import run_cli as run
from .server import FileServer
from .test_sync import clip, collection, sync_args  # noqa: F401 - clip: fixture

SRC = Path(code_key.__file__).parent.parent

# What a fresh interpreter runs: the fiches of argv[1] built through the cache at argv[2], as
# a sync builds them; the titles printed.
BUILD = """
import sys
from pathlib import Path
from archiver.fiche_cache import FicheCache
from archiver.manifest import build_valid
cache = FicheCache(Path(sys.argv[2]))
built = build_valid([Path(sys.argv[1])], cache=cache)
cache.save()
print(cache.hits, *[entry.title for entry in built.manifest.entries], sep="|")
"""


def build_in(package: Path, fiches: Path, cache: Path) -> str:
    """The hits and titles of a build of ``fiches`` by the archiver found under ``package``."""
    env = {**os.environ, "PYTHONPATH": str(package)}
    done = subprocess.run(
        [sys.executable, "-c", BUILD, fiches, cache],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_parses_cached_by_another_build_of_the_same_version_are_not_used(
    tmp_path: Path,
) -> None:
    """A build whose parser differs (here: titles upper-cased), under the same version number:
    its first run parses every fiche itself, and what it caches is its own."""
    fiches = tmp_path / "fiches"
    fiches.mkdir()
    for number in range(2):
        (fiches / f"v{number}.md").write_text(
            f"---\ntitle: Vidéo {number}\nvideoDLHref: https://example.org/v{number}.mp4\n---\n",
            encoding="utf-8",
        )
    cache = tmp_path / "archive" / CACHE_FOLDER / CACHE_NAME
    (tmp_path / "archive").mkdir()
    assert build_in(SRC, fiches, cache) == "0|Vidéo 0|Vidéo 1"
    assert build_in(SRC, fiches, cache) == "2|Vidéo 0|Vidéo 1"
    other = tmp_path / "other"
    shutil.copytree(
        SRC / "archiver", other / "archiver", ignore=shutil.ignore_patterns("__pycache__")
    )
    parser = other / "archiver" / "fiches.py"
    text = parser.read_text(encoding="utf-8")
    assert text.count("title=title.strip(),") == 1
    parser.write_text(text.replace("title=title.strip(),", "title=title.strip().upper(),"))
    assert build_in(other, fiches, cache) == "0|VIDÉO 0|VIDÉO 1"
    assert build_in(other, fiches, cache) == "2|VIDÉO 0|VIDÉO 1"
    assert build_in(SRC, fiches, cache) == "0|Vidéo 0|Vidéo 1"  # and back


def test_the_parser_key_follows_the_libraries_that_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML upgraded (or libyaml, python-frontmatter, Python): the fiches may parse
    otherwise; the fiche cache and the seals are keyed anew."""
    import yaml

    before = code_key.parser()
    monkeypatch.setattr(yaml, "__version__", "99.0")
    assert code_key.parser() != before
    monkeypatch.undo()
    assert code_key.parser() == before


def edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    """``path`` with ``old`` replaced by ``new`` (as long), written in place, its times put
    back: only its change time tells."""
    before = path.stat()
    data = path.read_bytes()
    edited = data.replace(old, new, 1)
    assert len(new) == len(old) and edited != data
    with path.open("r+b") as stream:
        stream.write(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


def test_a_manifest_edited_in_place_with_its_size_and_time_put_back_is_made_again(
    tmp_path: Path,
) -> None:
    """Size, modification time and inode can all be kept by an edit: the change time cannot."""
    fiches = tmp_path / "fiches"
    fiches.mkdir()
    (fiches / "v.md").write_text(
        "---\ntitle: Vidéo de formation\nvideoDLHref: https://example.org/v.mp4\n---\n",
        encoding="utf-8",
    )
    (tmp_path / "archive").mkdir()
    cache_file = tmp_path / "archive" / CACHE_FOLDER / CACHE_NAME
    manifest = tmp_path / "archive" / "manifest.json"
    cache = FicheCache(cache_file)
    built = build_valid([fiches], cache=cache)
    write_manifest(built.manifest, manifest)
    cache.wrote_manifest(manifest)
    cache.save()
    cache = FicheCache(cache_file)
    build_valid([fiches], cache=cache)
    assert cache.holds_manifest(manifest)  # untouched: not made again

    edit_in_place(manifest, "Vidéo de formation".encode(), b"HACKED de formation")
    cache = FicheCache(cache_file)
    build_valid([fiches], cache=cache)
    assert not cache.holds_manifest(manifest)


def test_files_a_sync_left_and_a_person_edited_keeping_size_and_times_are_written_again(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The last manifest (what a fiche that stops validating falls back on) and an item's
    ``entry.json``, edited in place to the same size with their times put back: the next sync
    writes them again, and a sync after it leaves them be."""
    collection(tmp_path, server, clip)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    manifest = tmp_path / "archive" / "manifest.json"
    entry = sorted((tmp_path / "archive" / "media").glob("*/entry.json"))[0]
    originals = {manifest: manifest.read_bytes(), entry: entry.read_bytes()}
    edit_in_place(manifest, "Vidéo 1".encode(), b"HACKED!!")
    edit_in_place(entry, b"Texte", b"XXXXX")
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert {path: path.read_bytes() for path in originals} == originals
    written = {path: path.stat().st_ctime_ns for path in originals}
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert {path: path.stat().st_ctime_ns for path in originals} == written  # left be


def test_the_temporaries_a_killed_run_left_are_removed_by_the_next_and_nothing_else(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A run killed while writing the last manifest, the fiche cache, a kit's page notes or a
    seal leaves its temporary (tens of MB at 10,000 videos): the next run removes each, by
    its exact name; a person's files named alike stay, a link is unlinked and not followed."""
    collection(tmp_path, server, clip)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0  # fetched: not sealed
    archive = tmp_path / "archive"
    cache = archive / CACHE_FOLDER
    pages = pages_path(cache, tmp_path / "kit").name
    seal = f"{settled.SEAL_PREFIX}{'0' * 32}.pickle"
    left = [
        archive / ".manifest.json.k2_9xqa1.tmp",
        cache / ".fiches.json.a1b2c3d4.tmp",
        cache / f".{pages}.zz_00a1b.tmp",
        cache / f".{seal}.q1w2e3r4.tmp",
        cache / ".sync-seal-abcd1234.tmp",  # as earlier builds named them
    ]
    kept = [
        archive / "notes.tmp",
        archive / ".manifest.json.mine.tmp",
        archive / ".manifest.json.k2_9xqa1.tmp.txt",
        cache / "notes.tmp",
        cache / ".fiches.json.a1b2c3d4e.tmp",
        cache / ".other.json.a1b2c3d4.tmp",
        tmp_path / ".fiches.json.a1b2c3d4.tmp",  # not in the archive
    ]
    for path in left + kept:
        path.write_bytes(b"x" * 100)
    target = tmp_path / "mine.txt"
    target.write_text("a person's file", encoding="utf-8")
    link = cache / ".fiches.json.linkto01.tmp"
    link.symlink_to(target)
    folder = archive / ".manifest.json.folder01.tmp"
    folder.mkdir()
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert [path for path in left if os.path.lexists(path)] == []
    assert not os.path.lexists(link)
    assert target.read_text(encoding="utf-8") == "a person's file"
    assert [path for path in kept if not path.exists()] == []
    assert folder.is_dir()


def test_the_tidied_names_are_those_the_writers_make(tmp_path: Path) -> None:
    """One naming, made by :func:`files.temporary_file` and found by the tidier: the names of
    the files written through it in an archive are those the tidier knows."""
    cache = tmp_path / CACHE_FOLDER
    cache.mkdir()
    for folder, name, pattern in (
        (tmp_path, sync_module.LAST_MANIFEST, fiche_cache._TOP_TEMPORARIES),
        (cache, CACHE_NAME, fiche_cache._CACHE_TEMPORARIES),
        (cache, pages_path(cache, tmp_path / "kit").name, fiche_cache._CACHE_TEMPORARIES),
        (cache, f"kit-{'a' * 32}.files.json", fiche_cache._CACHE_TEMPORARIES),
        (cache, f"{settled.SEAL_PREFIX}{'f' * 32}.pickle", settled._TEMPORARIES),
    ):
        fd, made = temporary_file(folder / name)
        os.close(fd)
        assert pattern.fullmatch(Path(made).name), (name, made)
    assert not temporaries_of(re.escape("manifest.json")).fullmatch(".manifest.json.tmp")


def test_small_fiches_under_a_long_folder_are_read_from_the_cache(tmp_path: Path) -> None:
    """Each record holds its fiche's path, which is not in the fiche's bytes: one-line fiches
    deep in a collection make records larger than eight times their bytes, and their cache
    must still be read."""
    deep = tmp_path / "fiches" / ("d" * 200) / ("e" * 200) / ("f" * 200)
    deep.mkdir(parents=True)
    count = 500
    for number in range(count):
        (deep / f"v{number:04d}.md").write_text(
            f"---\ntitle: v{number}\nvideoDLHref: http://127.0.0.1:9/v{number}.mp4\n---\n",
            encoding="utf-8",
        )
    (tmp_path / "archive").mkdir()
    cache_file = tmp_path / "archive" / CACHE_FOLDER / CACHE_NAME
    for expected in (0, count, count):
        cache = FicheCache(cache_file)
        build_valid([tmp_path / "fiches"], cache=cache)
        assert cache.save() is (expected == 0)  # read, not ignored and written again
        assert cache.hits == expected
    fiche_bytes = sum(path.stat().st_size for path in deep.iterdir())
    assert cache_file.stat().st_size > 8 * fiche_bytes + 64 * 1024  # the bound once was that
    document = json.loads(cache_file.read_text(encoding="utf-8"))
    assert len(document["entries"]) == count


def test_a_cache_of_many_empty_lists_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Within the bound on bytes, ``[],[],…`` parses into 80 bytes of memory for every 3 (4 GB
    at 10,000 fiches): counted first, and refused unparsed; what archiver writes passes."""
    fiches = tmp_path / "fiches"
    fiches.mkdir()
    for number in range(20):
        (fiches / f"v{number}.md").write_text(
            f"---\ntitle: Vidéo [{number}] {{HD}}\nvideoDLHref: https://e.org/{number}.mp4\n"
            f"tags: [[a, b], {{c: [d]}}]\n---\n\n## Script\n\n[Un lien](https://e.org/) {{x}}\n",
            encoding="utf-8",
        )
    (tmp_path / "archive").mkdir()
    cache_file = tmp_path / "archive" / CACHE_FOLDER / CACHE_NAME
    for expected in (0, 20):  # what archiver wrote is read
        cache = FicheCache(cache_file)
        build_valid([fiches], cache=cache)
        cache.save()
        assert cache.hits == expected
    total = sum(path.stat().st_size for path in fiches.iterdir())
    most = fiche_cache.containers(total, 20)
    assert most < fiche_cache.bound(total, 0, 20) // 3  # the bytes' bound lets more in
    document = json.loads(cache_file.read_text(encoding="utf-8"))
    head = json.dumps({**document, "entries": []})[:-2].encode()
    cache_file.write_bytes(head + b"[]," * most + b"[]]}")
    assert cache_file.stat().st_size < fiche_cache.bound(total, 0, 20)
    parsed: list[int] = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda *a, **k: parsed.append(1) or real(*a, **k))
    with caplog.at_level(logging.INFO, logger="archiver"):
        cache = FicheCache(cache_file)
        built = build_valid([fiches], cache=cache)
    assert cache.hits == 0 and len(built.manifest.entries) == 20
    assert parsed == []
    assert "objects and lists, more than these fiches make" in caplog.text
