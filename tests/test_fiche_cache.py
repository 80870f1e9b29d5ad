"""The cache of parsed fiches (``archive/cache/fiches.json``): a changed fiche is always read
again, and nothing in the cache file, damaged or hostile, crashes a build or adds an entry."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver import fiche_cache
from archiver._version import __version__
from archiver.cli import cli
from archiver.fiche_cache import CACHE_FOLDER, CACHE_NAME, FORMAT, FicheCache
from archiver.manifest import Built, build_valid, dumps
from archiver.urls import url_problem

from .conftest import SEED, fiche_text, tagged
from .media import make_mp4
from .server import FileServer

UUID = "11111111-2222-4333-8444-{:012d}"
EMBED = f"https://tube.example.org/videos/embed/{UUID}"


def collection(folder: Path, count: int = 3) -> list[Path]:
    """``count`` fiches, each with its own video (so its own id)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"fiche-{number}.md"
        embed = f"https://tube.example.org/videos/embed/{UUID.format(number)}"
        path.write_text(fiche_text(title=f"Vidéo {number}", embed=embed), encoding="utf-8")
        paths.append(path)
    return paths


def build(folder: Path, cache_file: Path) -> tuple[Built, FicheCache]:
    """A build with the cache at ``cache_file``, saved as a sync saves it."""
    cache = FicheCache(cache_file)
    built = build_valid([folder], cache=cache)
    cache.save()
    return built, cache


def fresh(folder: Path) -> str:
    """The manifest of ``folder`` parsed without a cache, as text."""
    return dumps(build_valid([folder]).manifest)


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    (tmp_path / "archive").mkdir()  # the archive's folder: the cache's is made in it
    return tmp_path / "archive" / CACHE_FOLDER / CACHE_NAME


def test_an_unchanged_collection_is_read_from_the_cache(tmp_path: Path, cache_file: Path) -> None:
    collection(tmp_path / "fiches")
    first, cache = build(tmp_path / "fiches", cache_file)
    assert cache.hits == 0
    assert cache_file.is_file()
    again, cache = build(tmp_path / "fiches", cache_file)
    assert cache.hits == 3
    assert again.manifest == first.manifest
    assert dumps(again.manifest) == fresh(tmp_path / "fiches")
    assert not cache.changed


def test_a_fiche_edited_in_place_with_its_size_and_time_put_back_is_read_again(
    tmp_path: Path, cache_file: Path
) -> None:
    """The size and the modification time say nothing here: the bytes' sha256 does."""
    paths = collection(tmp_path / "fiches")
    build(tmp_path / "fiches", cache_file)
    before = paths[1].stat()
    text = paths[1].read_text(encoding="utf-8")
    edited = text.replace("Vidéo 1", "Vidéo 7")
    assert len(edited.encode()) == before.st_size
    paths[1].write_text(edited, encoding="utf-8")
    os.utime(paths[1], ns=(before.st_atime_ns, before.st_mtime_ns))
    after = paths[1].stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    built, cache = build(tmp_path / "fiches", cache_file)
    assert cache.hits == 2
    assert [entry.title for entry in built.manifest.entries] == ["Vidéo 0", "Vidéo 7", "Vidéo 2"]
    assert dumps(built.manifest) == fresh(tmp_path / "fiches")


def test_a_damaged_cache_is_ignored_and_made_again(
    tmp_path: Path, cache_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    collection(tmp_path / "fiches")
    build(tmp_path / "fiches", cache_file)
    data = cache_file.read_bytes()
    cache_file.write_bytes(data[: len(data) // 2])  # a write cut short
    with caplog.at_level(logging.INFO, logger="archiver"):
        built, cache = build(tmp_path / "fiches", cache_file)
    assert cache.hits == 0
    assert dumps(built.manifest) == fresh(tmp_path / "fiches")
    assert "the fiche cache is ignored" in caplog.text
    assert cache_file.read_bytes() == data  # made again, whole
    assert build(tmp_path / "fiches", cache_file)[1].hits == 3


def test_a_cache_from_another_version_of_archiver_is_ignored(
    tmp_path: Path, cache_file: Path
) -> None:
    collection(tmp_path / "fiches")
    build(tmp_path / "fiches", cache_file)
    document = json.loads(cache_file.read_text(encoding="utf-8"))
    for entry in document["entries"]:  # what another version may have read differently
        entry["title"] = "Lu autrement"
    for field, value in (("archiver", "0.0.1"), ("format", "archiver-fiche-cache/0")):
        cache_file.write_text(json.dumps({**document, field: value}), encoding="utf-8")
        built, cache = build(tmp_path / "fiches", cache_file)
        assert cache.hits == 0
        assert "Lu autrement" not in dumps(built.manifest)
        saved = json.loads(cache_file.read_text(encoding="utf-8"))
        assert (saved["archiver"], saved["format"]) == (__version__, FORMAT)


def test_a_removed_fiche_leaves_the_cache(tmp_path: Path, cache_file: Path) -> None:
    paths = collection(tmp_path / "fiches")
    build(tmp_path / "fiches", cache_file)
    paths[0].unlink()
    built, cache = build(tmp_path / "fiches", cache_file)
    assert cache.hits == 2
    held = [e["source"]["path"] for e in json.loads(cache_file.read_text())["entries"]]
    assert held == ["fiche-1.md", "fiche-2.md"]
    assert [entry.source.path for entry in built.manifest.entries] == held


def test_an_invalid_fiche_is_parsed_again_each_time_and_named(
    tmp_path: Path, cache_file: Path
) -> None:
    paths = collection(tmp_path / "fiches")
    paths[2].write_text("---\ntitle: [\n---\n", encoding="utf-8")
    for _ in range(2):
        built, cache = build(tmp_path / "fiches", cache_file)
        (error,) = built.errors
        assert str(error).startswith(f"{paths[2]}: front matter: malformed YAML at line ")
        assert built.invalid == {"fiche-2.md"}
    assert cache.hits == 2


def built_twice(
    folder: Path, cache_file: Path, caplog: pytest.LogCaptureFixture
) -> tuple[list[list[str]], FicheCache]:
    """The warnings of two manifests of ``folder`` (a parse, then the cache), and the cache."""
    said = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="archiver"):
            _, cache = build(folder, cache_file)
        said.append(list(caplog.messages))
    return said, cache


def test_an_unknown_field_is_said_again_when_its_fiche_comes_from_the_cache(
    tmp_path: Path, cache_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "fiches"
    folder.mkdir()
    (folder / "a.md").write_text(fiche_text(extra_yaml="duree: 4 min"), encoding="utf-8")
    said, cache = built_twice(folder, cache_file, caplog)
    assert cache.hits == 1
    assert (
        said[0]
        == said[1]
        == [f"{folder / 'a.md'}: unknown front-matter field(s) kept as extra: duree"]
    )


# Fiches as teachers write them: a typo of a field, no licence, no credits at all.
WARNED = {
    "typo.md": fiche_text(title="Vidéo 0", embed=EMBED.format(0), extra_yaml="descripton: x"),
    "unlicensed.md": fiche_text(
        title="Vidéo 1", embed=EMBED.format(1), body="## Crédits\n\n- **Voix** : Zoé\n"
    ),
    "bare.md": fiche_text(title="Vidéo 2", embed=EMBED.format(2), body="## Script\n\nx\n"),
}


def warnings_of(folder: Path) -> list[str]:
    """The warnings a parse of the fiches of ``WARNED`` gives, in file order."""
    kit_says = 'the kit will say "Aucune licence n’est indiquée"'
    return [
        f"{folder / 'bare.md'}: no credits and no licence (## Crédits is missing or empty);"
        f" {kit_says}",
        f"{folder / 'typo.md'}: descripton: unknown field — did you mean description?"
        " (kept as extra)",
        f'{folder / "unlicensed.md"}: ## Crédits: no licence line ("- **Licence** :'
        f' [name](url)"); {kit_says}',
    ]


def test_every_warning_is_said_again_the_same_when_its_fiche_comes_from_the_cache(
    tmp_path: Path, cache_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "fiches"
    folder.mkdir()
    for name, text in WARNED.items():
        (folder / name).write_text(text, encoding="utf-8")
    said, cache = built_twice(folder, cache_file, caplog)
    assert cache.hits == 3
    assert said[0] == said[1] == warnings_of(folder)


def test_sync_says_each_warning_once_a_run_from_the_cache_too_and_exits_0(
    server: FileServer, tmp_path: Path
) -> None:
    clip = make_mp4(tmp_path / "clip.mp4", seconds=1).read_bytes()
    folder = tmp_path / "fiches"
    folder.mkdir()
    for number, (name, text) in enumerate(WARNED.items()):
        server.add(f"/v{number}.mp4", tagged(clip, bytes([number])))
        url = server.url(f"/v{number}.mp4")
        # The video on the test server, not an instance's page (whose API is not there).
        text = text.replace(f"videoEmbedSrc: {EMBED.format(number)}", f"videoDLHref: {url}")
        (folder / name).write_text(text, encoding="utf-8")
    args = ["sync", str(folder), "--archive", str(tmp_path / "archive"),
            "--kit", str(tmp_path / "kit")]  # fmt: skip
    said = []
    for _ in range(2):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        said.append([line for line in result.stderr.splitlines() if line.startswith("Warning:")])
        if len(said) == 1:
            written = (tmp_path / "archive" / CACHE_FOLDER / CACHE_NAME).stat()
    assert said[0] == said[1] == [f"Warning: {line}" for line in warnings_of(folder)]
    # The second run read every fiche from the cache: it found no entry to write again.
    after = (tmp_path / "archive" / CACHE_FOLDER / CACHE_NAME).stat()
    assert (after.st_ino, after.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_a_large_collection_parsed_on_every_core_is_cached_the_same(
    tmp_path: Path, cache_file: Path
) -> None:
    """Past the threshold, the fiches the cache lacks are parsed by worker processes."""
    folder = tmp_path / "fiches"
    folder.mkdir()
    seed = SEED.read_text(encoding="utf-8")
    for number in range(520):
        text = seed.replace("9520b54d-0a3c-43dc-8821-d559fa418cc6", UUID.format(number))
        (folder / f"f{number:03d}.md").write_text(text, encoding="utf-8")
    first, cache = build(folder, cache_file)
    assert cache.hits == 0
    again, cache = build(folder, cache_file)
    assert cache.hits == 520
    assert dumps(again.manifest) == dumps(first.manifest)


# -- hostile cache files: each one ignored whole, the manifest that of the fiches -----------


def _document(cache_file: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cache_file.read_text(encoding="utf-8"))
    return data


def _set(path: list[Any], value: object) -> Callable[[dict[str, Any]], None]:
    """A change to the first entry of a cache document, at ``path`` below it."""

    def change(document: dict[str, Any]) -> None:
        target = document["entries"][0]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


HOSTILE: dict[str, Callable[[dict[str, Any]], None]] = {
    "entries not a list": lambda d: d.update(entries={"a": 1}),
    "an entry not an object": lambda d: d["entries"].insert(0, 5),
    "a field missing": lambda d: d["entries"][0].pop("transcript"),
    "a field more": _set(["injected"], "<script>"),
    "a title that is a number": _set(["title"], 42),
    "a title of a megabyte": _set(["title"], "x" * 1_000_001),
    "an empty title": _set(["title"], "  "),
    "an id that climbs out": _set(["id"], "../../etc"),
    "an id that is a list": _set(["id"], ["a"]),
    "a URL archiver would not fetch": _set(["video", "embed_url"], "file:///etc/passwd"),
    "a URL with a space": _set(["video", "embed_url"], "https://a.example/ b"),
    "a PeerTube id that is no UUID": _set(["peertube", "uuid"], "x/../y"),
    "a size that is a boolean": _set(["video", "size"], True),
    "a size past 64 bits": _set(["video", "size"], 2**70),
    "a sha256 that is not one": _set(["video", "sha256"], "zz"),
    "credits of the wrong shape": _set(["credits"], [{"role": "a", "names": "b"}]),
    "an asset of an unknown kind": _set(["assets"], [{"kind": "exe", "url": "https://a.b/c"}]),
    "extra nested too deep": _set(["extra"], {"a": json.loads("[" * 40 + "]" * 40)}),
    "extra holding a huge number": _set(["extra"], {"a": 2**80}),
    "a manifest note of the wrong shape": lambda d: d.update(manifest=["a", 1, 2]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_cache_is_ignored_whole(tmp_path: Path, cache_file: Path, name: str) -> None:
    collection(tmp_path / "fiches")
    build(tmp_path / "fiches", cache_file)
    good = cache_file.read_bytes()
    document = _document(cache_file)
    HOSTILE[name](document)
    cache_file.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    built, cache = build(tmp_path / "fiches", cache_file)
    assert cache.hits == 0
    assert dumps(built.manifest) == fresh(tmp_path / "fiches")
    assert cache_file.read_bytes() == good  # made again from the fiches


@pytest.mark.parametrize(
    "text",
    [
        "not JSON at all",
        '{"format": "archiver-fiche-cache/1", "archiver": "%s", "entries": [NaN]}',
        '{"format": "archiver-fiche-cache/1", "archiver": "%s", "entries": [1e999]}',
        '{"format": "archiver-fiche-cache/1", "archiver": "%s", "entries": ["\\ud800"]}',
        '{"format": "archiver-fiche-cache/1", "archiver": "%s", "entries": [' + "9" * 5000 + "]}",
        "[" * 100_000,
        "\xff\xfe",
    ],
)
def test_a_cache_that_is_not_json_archiver_wrote_is_ignored(
    tmp_path: Path, cache_file: Path, text: str
) -> None:
    collection(tmp_path / "fiches")
    cache_file.parent.mkdir()
    cache_file.write_bytes(text.replace("%s", __version__).encode("utf-8", "surrogatepass"))
    built, cache = build(tmp_path / "fiches", cache_file)
    assert cache.hits == 0
    assert dumps(built.manifest) == fresh(tmp_path / "fiches")
    assert build(tmp_path / "fiches", cache_file)[1].hits == 3


def test_a_huge_cache_file_is_not_read(tmp_path: Path, cache_file: Path) -> None:
    """Larger than the fiches could make: refused by its size, before a byte is read."""
    collection(tmp_path / "fiches")
    build(tmp_path / "fiches", cache_file)
    with cache_file.open("r+b") as stream:
        stream.truncate(8 * 1024**3)  # sparse: 8 GiB that take no room
    start = time.monotonic()
    built, cache = build(tmp_path / "fiches", cache_file)
    assert time.monotonic() - start < 5
    assert cache.hits == 0
    assert cache_file.stat().st_size < 64 * 1024  # made again
    assert dumps(built.manifest) == fresh(tmp_path / "fiches")


def test_records_for_fiches_not_there_add_no_entry(tmp_path: Path, cache_file: Path) -> None:
    """Well formed, but for a fiche that is not in the collection, or for other bytes of one
    that is: never an entry of the manifest."""
    collection(tmp_path / "fiches")
    build(tmp_path / "fiches", cache_file)
    document = _document(cache_file)
    ghost = json.loads(json.dumps(document["entries"][0]))
    ghost["source"]["path"] = "ghost.md"
    ghost["id"] = "ghost"
    ghost["peertube"] = None
    other = json.loads(json.dumps(document["entries"][1]))
    other["source"]["sha256"] = "0" * 64
    other["title"] = "Pas ce que dit la fiche"
    document["entries"] = [ghost, other, document["entries"][2]]
    cache_file.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    built, cache = build(tmp_path / "fiches", cache_file)
    assert cache.hits == 1
    assert dumps(built.manifest) == fresh(tmp_path / "fiches")
    paths = [e["source"]["path"] for e in _document(cache_file)["entries"]]
    assert paths == ["fiche-0.md", "fiche-1.md", "fiche-2.md"]


def test_a_link_or_a_pipe_at_the_cache_is_not_followed(tmp_path: Path, cache_file: Path) -> None:
    collection(tmp_path / "fiches")
    build(tmp_path / "fiches", cache_file)
    elsewhere = tmp_path / "elsewhere.json"
    shutil.move(cache_file, elsewhere)
    cache_file.symlink_to(elsewhere)
    assert build(tmp_path / "fiches", cache_file)[1].hits == 0
    assert cache_file.is_symlink()  # left as it is, not written through
    cache_file.unlink()
    os.mkfifo(cache_file)
    start = time.monotonic()
    assert build(tmp_path / "fiches", cache_file)[1].hits == 0  # no hang on the pipe
    assert time.monotonic() - start < 5


def test_a_linked_cache_folder_is_neither_read_nor_written(
    tmp_path: Path, cache_file: Path
) -> None:
    collection(tmp_path / "fiches")
    build(tmp_path / "fiches", cache_file)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(cache_file.parent, elsewhere)
    cache_file.parent.symlink_to(elsewhere)
    before = (elsewhere / CACHE_NAME).read_bytes()
    (tmp_path / "fiches" / "fiche-0.md").unlink()  # so that the cache would be rewritten
    _, cache = build(tmp_path / "fiches", cache_file)
    assert cache.hits == 0
    assert (elsewhere / CACHE_NAME).read_bytes() == before


# -- the fast checks agree with the ones they stand for --------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            "{}://{}{}{}".format,
            st.sampled_from(["http", "https", "HTTPS", "ftp", ""]),
            st.text(alphabet="abc.-[]:@1", max_size=12),
            st.sampled_from(["", ":0", ":80", ":65535", ":65536", ":99999", ":", ":x"]),
            st.text(max_size=20),
        ),
    )
)
def test_a_url_taken_without_url_problem_is_one_url_problem_takes(url: str) -> None:
    if fiche_cache._PLAIN_URL.fullmatch(url) is not None:
        assert url_problem(url) is None
