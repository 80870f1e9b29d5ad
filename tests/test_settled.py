"""A sync that finds nothing to do leaves a seal; the next one, when nothing it depends on
moved, gives the same report without doing the work again (:mod:`archiver.settled`).

Whether a run was replayed or done whole is told by counting calls of ``archiver.sync._run``
(the whole run), in process: the CLI's own output and the disk are what is compared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver import settled
from archiver import sync as sync_module
from archiver.archive import Archive
from archiver.catalog import parse_time
from archiver.fiche_cache import CACHE_FOLDER
from archiver.kit.bag import verify_bag

from .conftest import tagged
from .server import FileServer
from .test_sync import clip, collection, fiche, in_kit, run, sync_args  # noqa: F401 - clip: fixture

SEAL = Path("archive") / CACHE_FOLDER / settled.SEAL_NAME


@pytest.fixture
def whole_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many runs were done whole (the real ``_run``, counted), as a one-item list."""
    count = [0]
    real = sync_module._run

    def counted(*args: object, **kwargs: object) -> object:
        count[0] += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sync_module, "_run", counted)
    return count


def sealed(tmp_path: Path, server: FileServer, clip: bytes, *extra: str | Path) -> Path:  # noqa: F811
    """A collection fetched, then synced again with nothing to do: sealed (by runs with
    ``extra`` options: ``-q`` when none are given)."""
    extra = extra or ("-q",)
    folder = collection(tmp_path, server, clip)
    assert run(*sync_args(tmp_path, *extra))[0] == 0
    assert not (tmp_path / SEAL).exists()  # a run that fetched is not sealed
    assert run(*sync_args(tmp_path, *extra))[0] == 0
    assert (tmp_path / SEAL).is_file()
    return folder


def without_times(text: str) -> str:
    """A sync's output without its duration (``in 0.2 s``)."""
    return text.rsplit("; in ", 1)[0] if "; in " in text else text


def test_a_sealed_sync_replays_the_report_the_log_and_the_record(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
) -> None:
    collection(tmp_path, server, clip)
    log = tmp_path / "sync.log"
    assert run(*sync_args(tmp_path, "-v", "--log-file", log))[0] == 0
    log.unlink()
    code, out, err = run(*sync_args(tmp_path, "-v", "--log-file", log))  # nothing to do: sealed
    assert code == 0 and whole_runs[0] == 2
    whole = [json.loads(line) for line in log.read_text().splitlines()]
    log.unlink()
    requests = len(server.requests())

    code2, out2, err2 = run(*sync_args(tmp_path, "-v", "--log-file", log))
    assert code2 == 0
    assert whole_runs[0] == 2  # replayed
    assert len(server.requests()) == requests  # not even the API asked
    assert out2 == out  # -v: every file's line
    assert [without_times(line) for line in err2.splitlines()] == [
        without_times(line) for line in err.splitlines()
    ]
    replayed = [json.loads(line) for line in log.read_text().splitlines()]
    for record in (*whole, *replayed):
        del record["at"]
    assert replayed == whole and {r["event"] for r in whole} == {"held"}
    with sqlite3.connect(tmp_path / "archive" / "catalog.sqlite") as db:
        runs = db.execute("SELECT command, outcome, summary FROM runs ORDER BY id").fetchall()
    assert [(c, o) for c, o, _ in runs] == [("sync", "ok")] * 3
    last, before = json.loads(runs[-1][2]), json.loads(runs[-2][2])
    del last["seconds"], before["seconds"]
    assert last == before


def test_a_replayed_sync_notes_its_items_seen_now(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
) -> None:
    sealed(tmp_path, server, clip)
    catalog = tmp_path / "archive" / "catalog.sqlite"
    with sqlite3.connect(catalog) as db:
        before = dict(db.execute("SELECT id, last_seen FROM items"))
    time.sleep(0.01)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0 and whole_runs[0] == 2
    with sqlite3.connect(catalog) as db:
        after = dict(db.execute("SELECT id, last_seen FROM items"))
    assert after.keys() == before.keys() and all(after[k] > before[k] for k in after)


def edit_title(tmp_path: Path) -> None:
    path = tmp_path / "fiches" / "fiche-2.md"
    path.write_text(path.read_text().replace("Vidéo 2", "Vidéo 9"))


def edit_keeping_time(tmp_path: Path) -> None:
    path = tmp_path / "fiches" / "fiche-2.md"
    found = path.stat()
    path.write_text(path.read_text().replace("Vidéo 2", "Vidéo 8"))
    os.utime(path, ns=(found.st_atime_ns, found.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (found.st_size, found.st_mtime_ns)


def delete_kit_video(tmp_path: Path) -> None:
    in_kit(tmp_path, "00000001-1111-4222-8333-444444444444").unlink()


def change_kit_page(tmp_path: Path) -> None:
    page = tmp_path / "kit" / "index.html"
    found = page.stat()
    page.write_bytes(page.read_bytes().replace(b"<", b"{", 1))
    os.utime(page, ns=(found.st_atime_ns, found.st_mtime_ns))


def add_to_kit(tmp_path: Path) -> None:
    (tmp_path / "kit" / "data" / "notes-de-la-bibliothecaire.txt").write_text("à moi")


def delete_view(tmp_path: Path) -> None:
    (view,) = (tmp_path / "archive" / "media" / "00000002-1111-4222-8333-444444444444").glob(
        "*.mp4"
    )
    view.unlink()


def change_catalog(tmp_path: Path) -> None:
    with Archive(tmp_path / "archive") as archive:
        archive.catalog.set_meta("note", "written by another command")


def delete_last_manifest(tmp_path: Path) -> None:
    (tmp_path / "archive" / "manifest.json").unlink()


CHANGES: dict[str, Callable[[Path], None]] = {
    "a fiche edited": edit_title,
    "a fiche edited, its size and time put back": edit_keeping_time,
    "a kit video deleted": delete_kit_video,
    "a kit page changed, its time put back": change_kit_page,
    "a file added to the kit": add_to_kit,
    "a view in the archive deleted": delete_view,
    "the catalog changed by another process": change_catalog,
    "the last manifest deleted": delete_last_manifest,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_whatever_a_seal_depends_on_changed_makes_a_whole_run(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
    change: Callable[[Path], None],
) -> None:
    sealed(tmp_path, server, clip)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0 and whole_runs[0] == 2  # replayed
    change(tmp_path)
    code, _, err = run(*sync_args(tmp_path, "-q"))
    assert code == 0, err
    assert whole_runs[0] == 3  # not replayed
    # The kit made right again, whatever it was; a person's own file is left where it is.
    problems = verify_bag(tmp_path / "kit")[2]
    assert [p.path for p in problems] in ([], ["data/notes-de-la-bibliothecaire.txt"])
    # Sealed again: by the whole run if it found nothing to mend, else by the one after.
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert (tmp_path / SEAL).is_file()
    whole = whole_runs[0]
    assert run(*sync_args(tmp_path, "-q"))[0] == 0 and whole_runs[0] == whole  # replayed


def test_what_the_whole_run_makes_right_is_right(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The runs after a change do what a run without seals does: a deleted view and kit
    video come back, an edited fiche's title shows, a person's file is named."""
    sealed(tmp_path, server, clip, "--retries", "1")
    delete_view(tmp_path)
    delete_kit_video(tmp_path)
    edit_keeping_time(tmp_path)
    add_to_kit(tmp_path)
    code, _, err = run(*sync_args(tmp_path))
    assert code == 0
    assert "notes-de-la-bibliothecaire.txt" in err
    assert in_kit(tmp_path, "00000001-1111-4222-8333-444444444444").is_file()
    media = tmp_path / "archive" / "media" / "00000002-1111-4222-8333-444444444444"
    assert list(media.glob("*.mp4"))
    assert (
        "<h1>Vidéo 8</h1>"
        in (tmp_path / "kit" / "data" / "videos" / "Video-8" / "index.html").read_text()
    )


@pytest.mark.parametrize(
    "extra",
    [("--title", "Autre titre"), ("--refresh-after", "0"), ("--offline",)],
    ids=["another option", "every file due upstream", "offline"],
)
def test_a_run_asked_otherwise_is_a_whole_run(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
    extra: tuple[str, ...],
) -> None:
    sealed(tmp_path, server, clip)
    assert run(*sync_args(tmp_path, "-q", *extra))[0] == 0
    assert whole_runs[0] == 3


def test_a_fiche_added_is_fetched(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
) -> None:
    folder = sealed(tmp_path, server, clip)
    path = "/videos/00000007-1111-4222-8333-444444444444-480.mp4"
    server.add(path, tagged(clip, b"\x00\x07"))
    fiche(folder, 7, server.url(path), title="Nouvelle")
    assert run(*sync_args(tmp_path, "-q"))[0] == 0 and whole_runs[0] == 3
    assert in_kit(tmp_path, "00000007-1111-4222-8333-444444444444").is_file()
    assert not (tmp_path / SEAL).exists()  # it fetched: no seal


def test_a_seal_ends_when_the_first_file_is_due_upstream(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
) -> None:
    sealed(tmp_path, server, clip, "--refresh-after", "1h")
    with sqlite3.connect(tmp_path / "archive" / "catalog.sqlite") as db:
        rows = db.execute("SELECT checked_at FROM files WHERE current = 1").fetchall()
    checked = min(parse_time(text).timestamp() for (text,) in rows)  # type: ignore[union-attr]
    key = _seal_key(tmp_path)
    assert settled.read(tmp_path / "archive", key, now=checked + 3599) is not None
    assert settled.read(tmp_path / "archive", key, now=checked + 3601) is None


def _seal_key(tmp_path: Path) -> settled.Key:
    found = settled.read_head(tmp_path / SEAL)
    assert found is not None
    head, _ = found
    assert isinstance(head, dict) and isinstance(head["key"], settled.Key)
    return head["key"]


def seal_of(body: bytes, head: dict[str, object]) -> bytes:
    """A seal's bytes as :func:`archiver.settled.write` lays them out."""
    return body + pickle.dumps(head) + len(body).to_bytes(8, "big")


class _Boom:
    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return (os.system, ("touch pwned",))


def test_a_hostile_seal_runs_nothing_and_the_run_is_whole(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sealed(tmp_path, server, clip)
    monkeypatch.chdir(tmp_path)
    seal = tmp_path / SEAL
    found = settled.read_head(seal)
    assert found is not None and isinstance(found[0], dict)
    head = found[0]
    # A head that would call a function; then a sound head over a report that would.
    seal.write_bytes(seal_of(b"", {**head, "boom": _Boom()}))
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert not (tmp_path / "pwned").exists() and whole_runs[0] == 3
    body = pickle.dumps(_Boom())
    seal.write_bytes(seal_of(body, {**head, "body_sha256": hashlib.sha256(body).hexdigest()}))
    hostile = settled.read(tmp_path / "archive", head["key"])
    assert hostile is not None
    with Archive(tmp_path / "archive") as archive:
        assert hostile.survey.holds(archive)  # all holds, but the report is refused
    assert hostile.report(sync_module.SyncReport) is None and not (tmp_path / "pwned").exists()
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert not (tmp_path / "pwned").exists() and whole_runs[0] == 4


@pytest.mark.parametrize("damage", ["truncated", "body changed", "garbage"])
def test_a_damaged_seal_is_no_seal(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
    damage: str,
) -> None:
    sealed(tmp_path, server, clip)
    seal = tmp_path / SEAL
    data = seal.read_bytes()
    if damage == "truncated":
        seal.write_bytes(data[: len(data) - 100])
    elif damage == "body changed":
        seal.write_bytes(data[:-200] + bytes(b ^ 1 for b in data[-200:-100]) + data[-100:])
    else:
        seal.write_bytes(os.urandom(len(data)))
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert whole_runs[0] == 3
    assert not seal.exists()  # forgotten: the run after seals again, and the next replays
    assert run(*sync_args(tmp_path, "-q"))[0] == 0 and whole_runs[0] == 4
    assert run(*sync_args(tmp_path, "-q"))[0] == 0 and whole_runs[0] == 4


def test_a_change_while_the_run_works_leaves_no_seal(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A person deletes a kit video while a run that had nothing to do packages: the run's
    report says the kit is whole, so it is not sealed, and the next run puts it back."""
    collection(tmp_path, server, clip)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    real = sync_module.build_kit

    def then_deleted(*args: object, **kwargs: object) -> object:
        report = real(*args, **kwargs)  # type: ignore[arg-type]
        delete_kit_video(tmp_path)
        return report

    monkeypatch.setattr(sync_module, "build_kit", then_deleted)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert not (tmp_path / SEAL).exists()
    monkeypatch.setattr(sync_module, "build_kit", real)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert in_kit(tmp_path, "00000001-1111-4222-8333-444444444444").is_file()
    assert whole_runs[0] == 3


def test_the_catalogs_count_of_changes_moves_with_what_runs_depend_on(tmp_path: Path) -> None:
    with Archive(tmp_path / "archive") as archive:
        catalog = archive.catalog
        first = catalog.changes()
        catalog.record_items([("a", "A")])
        second = catalog.changes()
        assert second[0] > first[0] and second[1] != first[1]
        catalog.record_items([("a", "A")])  # seen again: last_seen only
        assert catalog.changes() == second
        run_id = catalog.start_run("sync")
        catalog.finish_run(run_id, "ok", {})
        catalog.seen_again()
        assert catalog.changes() == second
        catalog.record_items([("a", "A, renamed")])
        assert catalog.changes()[0] > second[0]
        third = catalog.changes()
        catalog.set_meta("x", "y")
        assert catalog.changes()[0] > third[0]


def test_a_seal_serves_a_run_that_asks_no_more_words_of_it(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
) -> None:
    """Sealed at -v, a -q run is replayed (what it logs is a part of what was captured); sealed
    at -q, a run at the default verbosity is whole: its warnings were never captured."""
    sealed(tmp_path, server, clip, "-v")
    assert run(*sync_args(tmp_path, "-q"))[0] == 0 and whole_runs[0] == 2
    settled.forget(tmp_path / "archive")
    assert run(*sync_args(tmp_path, "-q"))[0] == 0 and whole_runs[0] == 3  # sealed at -q
    assert run(*sync_args(tmp_path))[0] == 0 and whole_runs[0] == 4


def test_whether_bars_ask_sizes_first_is_no_part_of_the_key(tmp_path: Path) -> None:
    folder = tmp_path / "fiches"
    fiche(folder, 1, "https://example.org/a.mp4")
    plain = sync_module.SyncSettings()
    bars = dataclasses.replace(
        plain, download=dataclasses.replace(plain.download, sizes_first=True)
    )
    other = dataclasses.replace(plain, download=dataclasses.replace(plain.download, jobs=2))
    keys = [
        settled.key_of([folder], tmp_path / "archive", tmp_path / "kit", sync_module._as_sealed(s))
        for s in (plain, bars, other)
    ]
    assert keys[0] is not None and keys[0] == keys[1] != keys[2]


@pytest.mark.parametrize("shape", ["link to a seal", "pipe", "cache folder a link"])
def test_a_seal_is_never_read_or_removed_through_a_link_nor_waited_on(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
    shape: str,
) -> None:
    """The seal's place holds what someone else put there: a link to a seal elsewhere (not
    read), a named pipe (not waited on), the cache folder a link out of the archive (nothing
    read, removed or written there)."""
    sealed(tmp_path, server, clip)
    seal = tmp_path / SEAL
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / settled.SEAL_NAME).write_bytes(seal.read_bytes())
    if shape == "link to a seal":
        seal.unlink()
        seal.symlink_to(elsewhere / settled.SEAL_NAME)
    elif shape == "pipe":
        seal.unlink()
        os.mkfifo(seal)
    else:
        cache = seal.parent
        for file in cache.iterdir():
            file.unlink()
        cache.rmdir()
        cache.symlink_to(elsewhere, target_is_directory=True)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0 and whole_runs[0] == 3
    assert (elsewhere / settled.SEAL_NAME).read_bytes()  # left where it is, as it was
    assert sorted(p.name for p in elsewhere.iterdir()) == [settled.SEAL_NAME]
