"""A sync that finds nothing to do leaves a seal; the next one, when nothing it depends on
moved, gives the same report without doing the work again (:mod:`archiver.settled`).

Whether a run was replayed or done whole is told by counting calls of ``archiver.sync._run``
(the whole run), in process: the CLI's own output and the disk are what is compared.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import io
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver import code_key, settled
from archiver import kit as kit_module
from archiver import manifest as manifest_module
from archiver import sync as sync_module
from archiver.archive import Archive
from archiver.catalog import parse_time
from archiver.fiche_cache import CACHE_FOLDER
from archiver.fiches import FicheFile
from archiver.kit.bag import verify_bag

from .conftest import fresh_python, tagged
from .conftest import run_cli as run
from .server import FileServer
from .test_sync import clip, collection, fiche, in_kit, sync_args  # noqa: F401 - clip: fixture


def seals(tmp_path: Path) -> list[Path]:
    """The archive's seals (one for each command that sealed it)."""
    return sorted((tmp_path / "archive" / CACHE_FOLDER).glob(f"{settled.SEAL_PREFIX}*.pickle"))


def the_seal(tmp_path: Path) -> Path:
    """The seal written last (a command run otherwise keeps its own: a fiche edited is
    another key)."""
    found = seals(tmp_path)
    assert found
    return max(found, key=lambda path: path.stat().st_mtime_ns)


def counted_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    """How many times ``owner.name`` is called from now on (the real one, counted), as a
    one-item list."""
    count = [0]
    real = getattr(owner, name)

    def counted(*args: object, **kwargs: object) -> object:
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return count


@pytest.fixture
def whole_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many syncs were done whole (not replayed)."""
    return counted_calls(monkeypatch, sync_module, "_run")


@dataclasses.dataclass
class Sealing:
    """A collection served on 127.0.0.1 and synced into ``tmp``, and how many runs were whole."""

    tmp: Path
    server: FileServer
    clip: bytes
    whole_runs: list[int]

    @property
    def whole(self) -> int:
        """How many runs so far were done whole (not replayed)."""
        return self.whole_runs[0]

    def sync(self, *extra: str | Path) -> int:
        """One sync's exit code, with ``extra`` options (``-q`` when none are given)."""
        return run(*sync_args(self.tmp, *(extra or ("-q",))))[0]

    def seal(self, *extra: str | Path) -> Path:
        """The collection fetched, then synced again with nothing to do: sealed (by runs with
        ``extra`` options: ``-q`` when none are given); its fiches' folder."""
        folder = collection(self.tmp, self.server, self.clip)
        assert self.sync(*extra) == 0
        assert not seals(self.tmp)  # a run that fetched is not sealed
        assert self.sync(*extra) == 0
        the_seal(self.tmp)
        return folder


@pytest.fixture
def sealing(
    server: FileServer,
    clip: bytes,  # noqa: F811
    tmp_path: Path,
    whole_runs: list[int],
) -> Sealing:
    return Sealing(tmp_path, server, clip, whole_runs)


def without_times(text: str) -> str:
    """A sync's output without its duration (``in 0.2 s``)."""
    return text.rsplit("; in ", 1)[0] if "; in " in text else text


def test_a_sealed_sync_replays_the_report_the_log_and_the_record(
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    collection(tmp_path, sealing.server, sealing.clip)
    log = tmp_path / "sync.log"
    assert run(*sync_args(tmp_path, "-v", "--log-file", log))[0] == 0
    log.unlink()
    code, out, err = run(*sync_args(tmp_path, "-v", "--log-file", log))  # nothing to do: sealed
    assert code == 0 and sealing.whole == 2
    whole = [json.loads(line) for line in log.read_text().splitlines()]
    log.unlink()
    requests = len(sealing.server.requests())

    code2, out2, err2 = run(*sync_args(tmp_path, "-v", "--log-file", log))
    assert code2 == 0
    assert sealing.whole == 2  # replayed
    assert len(sealing.server.requests()) == requests  # not even the API asked
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
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    sealing.seal()
    catalog = tmp_path / "archive" / "catalog.sqlite"
    with sqlite3.connect(catalog) as db:
        before = dict(db.execute("SELECT id, last_seen FROM items"))
    time.sleep(0.01)
    assert sealing.sync() == 0 and sealing.whole == 2
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
    sealing: Sealing,
    tmp_path: Path,
    change: Callable[[Path], None],
) -> None:
    sealing.seal()
    assert sealing.sync() == 0 and sealing.whole == 2  # replayed
    change(tmp_path)
    code, _, err = run(*sync_args(tmp_path, "-q"))
    assert code == 0, err
    assert sealing.whole == 3  # not replayed
    # The kit made right again, whatever it was; a person's own file is left where it is.
    problems = verify_bag(tmp_path / "kit")[2]
    assert [p.path for p in problems] in ([], ["data/notes-de-la-bibliothecaire.txt"])
    # Sealed again: by the whole run if it found nothing to mend, else by the one after.
    assert sealing.sync() == 0
    the_seal(tmp_path)
    whole = sealing.whole
    assert sealing.sync() == 0 and sealing.whole == whole  # replayed


def fiche_opens(monkeypatch: pytest.MonkeyPatch, folder: Path) -> dict[str, int]:
    """How many times each fiche under ``folder`` is opened from now on, by name: by
    ``os.open`` (what reads a fiche's bytes) or ``open``."""
    opened: dict[str, int] = {}
    inside = str(folder) + os.sep

    def noted(path: object) -> None:
        name = os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else ""
        if name.startswith(inside) and name.endswith(".md"):
            opened[name.removeprefix(inside)] = opened.get(name.removeprefix(inside), 0) + 1

    def counting(real: Callable[..., object]) -> Callable[..., object]:
        def counted(path: object, *args: object, **kwargs: object) -> object:
            noted(path)
            return real(path, *args, **kwargs)

        return counted

    monkeypatch.setattr(os, "open", counting(os.open))
    monkeypatch.setattr(io, "open", counting(io.open))
    monkeypatch.setattr(builtins, "open", counting(builtins.open))
    return opened


def remove_seals(tmp_path: Path) -> None:
    for seal in seals(tmp_path):
        seal.unlink()


@pytest.mark.parametrize(
    ("change", "parsed"),
    [(remove_seals, {}), (edit_keeping_time, {"fiche-2.md": 1})],
    ids=["the seal removed", "a fiche edited, its size and time put back"],
)
def test_a_sync_that_meets_no_seal_reads_each_fiche_once(
    sealing: Sealing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[Path], None],
    parsed: dict[str, int],
) -> None:
    """The seal's check reads and hashes every fiche; the fiche cache finds their entries by
    those sha256, not reading them again. Only a fiche the cache does not hold (edited) is read
    once more, to be parsed; each entry is that of the bytes its sha256 is of."""
    folder = collection(tmp_path, sealing.server, sealing.clip, count=3)
    assert sealing.sync() == 0
    assert sealing.sync() == 0
    the_seal(tmp_path)
    change(tmp_path)
    opened = fiche_opens(monkeypatch, folder)
    assert sealing.sync() == 0 and sealing.whole == 3  # not replayed
    names = ("fiche-1.md", "fiche-2.md", "fiche-3.md")
    assert opened == {name: 1 + parsed.get(name, 0) for name in names}
    last = json.loads((tmp_path / "archive" / "manifest.json").read_text())
    assert {entry["source"]["path"]: entry["source"]["sha256"] for entry in last["entries"]} == {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names
    }
    titles = [entry["title"] for entry in last["entries"]]
    assert titles == ["Vidéo 1", "Vidéo 8" if parsed else "Vidéo 2", "Vidéo 3"]


def test_a_fiche_that_cannot_be_read_is_named_while_the_cache_serves_the_others(
    sealing: Sealing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pipe named like a fiche leaves no seal's key (no run is sealed over it); the build
    names it, as without a seal, and the other fiches come from the cache."""
    folder = sealing.seal()
    os.mkfifo(folder / "pipe.md")
    parsed: list[str] = []
    real = manifest_module._parse_or_error

    def noted(fiche: FicheFile) -> object:
        parsed.append(fiche.relpath)
        return real(fiche)

    monkeypatch.setattr(manifest_module, "_parse_or_error", noted)
    code, _, err = run(*sync_args(tmp_path, "-q"))
    assert code == 2
    assert err.count(f"{folder / 'pipe.md'}: not a regular file (a pipe or a device?)") == 1
    assert sealing.whole == 3 and parsed == ["pipe.md"]
    assert not (tmp_path / "kit" / "data" / "videos" / "pipe").exists()


def test_what_the_whole_run_makes_right_is_right(
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    """The runs after a change do what a run without seals does: a deleted view and kit
    video come back, an edited fiche's title shows, a person's file is named."""
    sealing.seal("--retries", "1")
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
    sealing: Sealing,
    tmp_path: Path,
    extra: tuple[str, ...],
) -> None:
    sealing.seal()
    assert sealing.sync("-q", *extra) == 0
    assert sealing.whole == 3


def test_a_fiche_added_is_fetched(
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    folder = sealing.seal()
    before = seals(tmp_path)
    path = "/videos/00000007-1111-4222-8333-444444444444-480.mp4"
    sealing.server.add(path, tagged(sealing.clip, b"\x00\x07"))
    fiche(folder, 7, sealing.server.url(path), title="Nouvelle")
    assert sealing.sync() == 0 and sealing.whole == 3
    assert in_kit(tmp_path, "00000007-1111-4222-8333-444444444444").is_file()
    assert seals(tmp_path) == before  # it fetched: no seal of its own (another key's stays)


def test_a_seal_ends_when_the_first_file_is_due_upstream(
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    sealing.seal("--refresh-after", "1h")
    with sqlite3.connect(tmp_path / "archive" / "catalog.sqlite") as db:
        rows = db.execute("SELECT checked_at FROM files WHERE current = 1").fetchall()
    checked = min(parse_time(text).timestamp() for (text,) in rows)  # type: ignore[union-attr]
    key = _seal_key(tmp_path)
    assert settled.read(tmp_path / "archive", key, now=checked + 3599) is not None
    assert settled.read(tmp_path / "archive", key, now=checked + 3601) is None


def _seal_key(tmp_path: Path) -> settled.Key:
    key = settled.key_in(the_seal(tmp_path))
    assert key is not None
    return key


def seal_of(body: bytes, head: dict[str, object], key: settled.Key) -> bytes:
    """A seal's bytes as :func:`archiver.settled.write` lays them out."""
    head_bytes = pickle.dumps(head)
    key_at = len(body) + len(head_bytes)
    trailer = len(body).to_bytes(8, "big") + key_at.to_bytes(8, "big")
    return body + head_bytes + pickle.dumps(key) + trailer


class _Boom:
    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return (os.system, ("touch pwned",))


def test_a_hostile_seal_runs_nothing_and_the_run_is_whole(
    sealing: Sealing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # where "touch pwned" would write; the working folder is keyed
    sealing.seal()
    seal = the_seal(tmp_path)
    key = _seal_key(tmp_path)
    found = settled.read_head(seal, key)
    assert found is not None
    head = found[0]
    # A head that would call a function; then a sound head over a report that would.
    seal.write_bytes(seal_of(b"", {**head, "boom": _Boom()}, key))
    assert sealing.sync() == 0
    assert not (tmp_path / "pwned").exists() and sealing.whole == 3
    body = pickle.dumps(_Boom())
    sound = {**head, "body_sha256": hashlib.sha256(body).hexdigest()}
    seal.write_bytes(seal_of(body, sound, key))
    hostile = settled.read(tmp_path / "archive", key)
    assert hostile is not None
    with Archive(tmp_path / "archive") as archive:
        assert hostile.survey.holds(archive)  # all holds, but the report is refused
    assert hostile.report(sync_module.SyncReport) is None and not (tmp_path / "pwned").exists()
    assert sealing.sync() == 0
    assert not (tmp_path / "pwned").exists() and sealing.whole == 4


@pytest.mark.parametrize("damage", ["truncated", "body changed", "garbage"])
def test_a_damaged_seal_is_no_seal(
    sealing: Sealing,
    tmp_path: Path,
    damage: str,
) -> None:
    sealing.seal()
    seal = the_seal(tmp_path)
    data = seal.read_bytes()
    if damage == "truncated":
        seal.write_bytes(data[: len(data) - 100])
    elif damage == "body changed":
        seal.write_bytes(data[:-200] + bytes(b ^ 1 for b in data[-200:-100]) + data[-100:])
    else:
        seal.write_bytes(os.urandom(len(data)))
    assert sealing.sync() == 0
    assert sealing.whole == 3
    assert not seal.exists()  # forgotten: the run after seals again, and the next replays
    assert sealing.sync() == 0 and sealing.whole == 4
    assert sealing.sync() == 0 and sealing.whole == 4


def test_a_change_while_the_run_works_leaves_no_seal(
    sealing: Sealing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A person deletes a kit video while a run that had nothing to do packages: the run's
    report says the kit is whole, so it is not sealed, and the next run puts it back."""
    collection(tmp_path, sealing.server, sealing.clip)
    assert sealing.sync() == 0
    real = sync_module.build_kit

    def then_deleted(*args: object, **kwargs: object) -> object:
        report = real(*args, **kwargs)  # type: ignore[arg-type]
        delete_kit_video(tmp_path)
        return report

    monkeypatch.setattr(sync_module, "build_kit", then_deleted)
    assert sealing.sync() == 0
    assert not seals(tmp_path)
    monkeypatch.setattr(sync_module, "build_kit", real)
    assert sealing.sync() == 0
    assert in_kit(tmp_path, "00000001-1111-4222-8333-444444444444").is_file()
    assert sealing.whole == 3


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
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    """Sealed at -v, a -q run is replayed (what it logs is a part of what was captured); sealed
    at -q, a run at the default verbosity is whole: its warnings were never captured."""
    sealing.seal("-v")
    assert sealing.sync() == 0 and sealing.whole == 2
    settled.forget(tmp_path / "archive", _seal_key(tmp_path))
    assert sealing.sync() == 0 and sealing.whole == 3  # sealed at -q
    assert run(*sync_args(tmp_path))[0] == 0 and sealing.whole == 4


def test_how_files_would_be_fetched_is_no_part_of_the_key(tmp_path: Path) -> None:
    """A nightly sync and a daytime one at a lower rate, with bars or not, share a seal: a run
    with nothing to fetch is the same whatever its jobs, rate or sizes first. What a file is
    held as (its height) and the kit's settings are part of it."""
    folder = tmp_path / "fiches"
    fiche(folder, 1, "https://example.org/a.mp4")
    plain = sync_module.SyncSettings()
    fetching = dataclasses.replace(
        plain,
        download=dataclasses.replace(
            plain.download, sizes_first=True, jobs=2, rate_limit=200_000, retries=3
        ),
        max_time=3600.0,
    )
    taller = dataclasses.replace(
        plain, download=dataclasses.replace(plain.download, max_height=360)
    )
    titled = dataclasses.replace(plain, kit=dataclasses.replace(plain.kit, title="Autre"))
    keys = [
        settled.key_of(
            "sync",
            settled.inputs_of(settled.hash_fiches([folder])),
            [folder],
            tmp_path / "archive",
            tmp_path / "kit",
            sync_module._as_sealed(s),
            "r",
        )
        for s in (plain, fetching, taller, titled)
    ]
    assert keys[0] is not None and keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3]}) == 3


@pytest.mark.parametrize("shape", ["link to a seal", "pipe", "cache folder a link"])
def test_a_seal_is_never_read_or_removed_through_a_link_nor_waited_on(
    sealing: Sealing,
    tmp_path: Path,
    shape: str,
) -> None:
    """The seal's place holds what someone else put there: a link to a seal elsewhere (not
    read), a named pipe (not waited on), the cache folder a link out of the archive (nothing
    read, removed or written there)."""
    sealing.seal()
    seal = the_seal(tmp_path)
    name = seal.name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / name).write_bytes(seal.read_bytes())
    if shape == "link to a seal":
        seal.unlink()
        seal.symlink_to(elsewhere / name)
    elif shape == "pipe":
        seal.unlink()
        os.mkfifo(seal)
    else:
        cache = seal.parent
        for file in cache.iterdir():
            file.unlink()
        cache.rmdir()
        cache.symlink_to(elsewhere, target_is_directory=True)
    assert sealing.sync() == 0 and sealing.whole == 3
    assert (elsewhere / name).read_bytes()  # left where it is, as it was
    assert sorted(p.name for p in elsewhere.iterdir()) == [name]


def test_a_replayed_sync_imports_no_http_client_nor_zim(
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    """What a sealed run costs is mostly the interpreter's start-up: it replays without
    httpx, asyncio, libzim or the page templates (checked in a fresh interpreter)."""
    sealing.seal()
    args = [str(a) for a in sync_args(tmp_path, "-q")]
    code = (
        "import json, sys\n"
        "from archiver.cli import main\n"
        f"sys.argv = ['archiver', *{args!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "heavy = ('httpx', 'asyncio', 'libzim', 'jinja2', 'archiver.fetch.run')\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    out = fresh_python(code, timeout=120)
    assert json.loads(out.splitlines()[-1]) == []
    assert settled.read(tmp_path / "archive", _seal_key(tmp_path)) is not None  # still sealed


@pytest.mark.parametrize("subfolder", [None, "Videos"])
def test_a_kit_deleted_after_sealing_is_made_again(
    sealing: Sealing,
    tmp_path: Path,
    subfolder: str | None,
) -> None:
    """A key formatted again, or a kit deleted to be made anew: a whole run, exit 0."""
    extra = ("-q", "--subfolder", subfolder) if subfolder else ("-q",)
    sealing.seal(*extra)
    kit = tmp_path / "kit" / subfolder if subfolder else tmp_path / "kit"
    shutil.rmtree(kit)
    assert sealing.sync(*extra) == 0 and sealing.whole == 3
    assert verify_bag(kit)[2] == []


def test_a_kit_named_by_a_link_is_looked_at_where_it_is(
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    real = tmp_path / "usb"
    real.mkdir()
    (tmp_path / "kit").symlink_to(real, target_is_directory=True)
    sealing.seal()
    change_kit_page(tmp_path)  # through the link: the page in usb/
    assert sealing.sync() == 0 and sealing.whole == 3
    assert verify_bag(real)[2] == []


def test_another_build_of_archiver_is_another_key(
    sealing: Sealing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Templates or rendering libraries upgraded (the kit's recipe), or archiver's own files
    changed under the same version number: the pages may come out otherwise, so the run is
    whole."""
    sealing.seal()
    real = sync_module.recipe
    monkeypatch.setattr(sync_module, "recipe", lambda: real() + "+markdown-it 4.1")
    assert sealing.sync() == 0 and sealing.whole == 3
    template = Path(settled.__file__).parent / "kit" / "templates" / "video.html"
    before = code_key.package()
    found = template.stat()
    os.utime(template, ns=(found.st_atime_ns, found.st_mtime_ns))  # its change time moves
    assert code_key.package() != before


def test_an_audit_between_syncs_does_not_break_the_seal(
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    """cron.md's crontab audits a share of the archive every night: an audit notes when each
    file was last found intact, which no kit shows; the next sync is replayed."""
    sealing.seal()
    assert run("verify", "--archive", tmp_path / "archive", "-q")[0] == 0
    with sqlite3.connect(tmp_path / "archive" / "catalog.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM files WHERE audited_at IS NOT NULL").fetchone()[0]
    assert sealing.sync() == 0 and sealing.whole == 2


def test_a_deleted_working_folder_makes_a_whole_run_not_a_crash(
    sealing: Sealing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sealing.seal()
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert sealing.sync() == 0 and sealing.whole == 3


@pytest.mark.parametrize(
    "field",
    [
        {"logged": (("archiver", "30", "a level that is text"),)},
        {"survey": settled.Survey((1, 2), (b"a path in bytes",), "x")},  # type: ignore[arg-type]
        {"log_level": "10"},
        {"summary": {1: "a key that is a number"}},
    ],
    ids=["log level", "survey path", "verbosity", "summary"],
)
def test_a_seal_head_of_the_wrong_kinds_is_no_seal(
    sealing: Sealing,
    tmp_path: Path,
    field: dict[str, object],
) -> None:
    sealing.seal()
    seal, key = the_seal(tmp_path), _seal_key(tmp_path)
    found = settled.read_head(seal, key)
    assert found is not None
    head, body_size = found
    body = seal.read_bytes()[:body_size]
    seal.write_bytes(seal_of(body, {**head, **field}, key))
    assert settled.read(tmp_path / "archive", key) is None
    assert sealing.sync() == 0 and sealing.whole == 3


def test_a_catalog_whose_count_of_changes_was_removed_is_never_sealed(
    sealing: Sealing,
    tmp_path: Path,
) -> None:
    sealing.seal()
    with sqlite3.connect(tmp_path / "archive" / "catalog.sqlite") as db:
        db.execute("DELETE FROM changes")
    with Archive(tmp_path / "archive") as archive:
        assert archive.catalog.changes() is None
    for expected in (3, 4):  # neither replayed, nor sealed: the count cannot be told
        assert sealing.sync() == 0 and sealing.whole == expected
    with sqlite3.connect(tmp_path / "archive" / "catalog.sqlite") as db:
        db.execute("DROP TRIGGER changes_files_update")
        db.execute("INSERT INTO changes VALUES (0, 1)")
    with Archive(tmp_path / "archive") as archive:
        assert archive.catalog.changes() is None  # a trigger gone: the same


def test_a_seal_leaves_no_temporaries_and_the_last_seals_only(tmp_path: Path) -> None:
    """What a killed run left half written goes (as this build names it, and as earlier ones
    did), and the seals past the most recent ones; a file named otherwise stays."""
    folder = tmp_path / "archive" / CACHE_FOLDER
    folder.mkdir(parents=True)
    (folder / f".{settled.SEAL_PREFIX}{'a' * 32}.pickle.x1_y2z3w.tmp").write_bytes(b"half")
    (folder / f".{settled.SEAL_PREFIX}abcd_123.tmp").write_bytes(b"half")
    (folder / "fiches.json").write_text("{}")
    (folder / f".{settled.SEAL_PREFIX}mine.tmp").write_text("a person's")
    names = [f"{settled.SEAL_PREFIX}{n}.pickle" for n in range(6)]
    for number, name in enumerate(names):
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, ns=(number * 10**9, number * 10**9))
    settled._tidy(folder)
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted(
        ["fiches.json", f".{settled.SEAL_PREFIX}mine.tmp", *names[-(settled.MAX_SEALS - 1) :]]
    )


@pytest.fixture
def whole_packages(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many ``archiver package`` runs built their kit whole (not replayed)."""
    return counted_calls(monkeypatch, kit_module, "build_kit")


def test_a_package_that_finds_nothing_to_do_is_sealed_and_replayed(
    sealing: Sealing, tmp_path: Path, whole_packages: list[int]
) -> None:
    """``archiver package`` of the same manifest file into the same kit: the third run is
    replayed (the same line said), until the manifest's bytes or a kit file change."""
    sealing.seal()
    manifest = tmp_path / "archive" / "manifest.json"  # the sync's last manifest
    args = ["package", manifest, "--archive", tmp_path / "archive", "-o", tmp_path / "usb"]
    outputs = [run(*args) for _ in range(3)]
    assert [code for code, _, _ in outputs] == [0, 0, 0]
    assert whole_packages[0] == 2  # the first made the kit, the second sealed, the third replayed
    assert without_times(outputs[2][2]) == without_times(outputs[1][2])
    page = tmp_path / "usb" / "index.html"
    found = page.stat()
    page.write_bytes(page.read_bytes().replace(b"<", b"{", 1))
    os.utime(page, ns=(found.st_atime_ns, found.st_mtime_ns))
    assert run(*args)[0] == 0 and whole_packages[0] == 3  # mended
    assert verify_bag(tmp_path / "usb")[2] == []
    assert run(*args)[0] == 0 and run(*args)[0] == 0 and whole_packages[0] == 4  # sealed again
    manifest.write_text(manifest.read_text().replace("Vidéo 1", "Vidéo un"))
    assert run(*args)[0] == 0 and whole_packages[0] == 5
    assert (
        "Vidéo un" in (tmp_path / "usb" / "data" / "videos" / "Video-un" / "index.html").read_text()
    )


def test_a_package_reads_its_manifest_once_from_a_pipe_too(
    sealing: Sealing, tmp_path: Path, whole_packages: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is the sha256 of the bytes the run parses (read once: no edit can fall between
    the two), and a manifest given as a pipe is read as before, not opened and let go."""
    sealing.seal()
    manifest = tmp_path / "archive" / "manifest.json"
    reads: list[Path] = []
    real = kit_module.read_manifest_bytes

    def counted(path: Path) -> bytes:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(kit_module, "read_manifest_bytes", counted)
    args = ["package", manifest, "--archive", tmp_path / "archive", "-o", tmp_path / "usb"]
    assert run(*args)[0] == 0 and run(*args)[0] == 0 and run(*args)[0] == 0
    assert reads == [manifest] * 3 and whole_packages[0] == 2
    pipe = tmp_path / "manifest.pipe"
    os.mkfifo(pipe)
    writer = subprocess.Popen(["sh", "-c", f"cat '{manifest}' > '{pipe}'"])
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "archiver",
                "-q",
                "package",
                str(pipe),
                "--archive",
                str(tmp_path / "archive"),
                "-o",
                str(tmp_path / "usb"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        assert writer.wait(timeout=60) == 0  # it wrote all: the reader did not let it go
    assert done.returncode == 0, done.stderr


def test_a_seal_head_larger_than_a_large_archive_makes_is_not_unpickled(
    sealing: Sealing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head is what the survey found (7 MB at 10,000 videos); unpickled, a hostile one takes
    up to 80 bytes of memory for each of its bytes: one over :data:`settled.MAX_HEAD_BYTES`
    is no seal, refused before it is unpickled (a head of 64 MiB once took 5.3 GB)."""
    sealing.seal()
    good = the_seal(tmp_path).read_bytes()
    head_at, key_at = int.from_bytes(good[-16:-8], "big"), int.from_bytes(good[-8:], "big")
    assert key_at - head_at < settled.MAX_HEAD_BYTES // 2
    size = 17 << 20  # over the bound, and under the one before it
    assert size > settled.MAX_HEAD_BYTES
    key = _seal_key(tmp_path)
    unpickled = _with_head(tmp_path, b"\x80\x05" + b"N" * (size - 4) + b"0.", monkeypatch)
    assert settled.read(tmp_path / "archive", key) is None
    assert all(length < settled.MAX_HEAD_BYTES for length in unpickled)


def _with_head(tmp_path: Path, head: bytes, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Put ``head`` in place of the seal's head; the lengths of what is unpickled from now
    on, as it is."""
    path = the_seal(tmp_path)
    good = path.read_bytes()
    head_at, key_at = int.from_bytes(good[-16:-8], "big"), int.from_bytes(good[-8:], "big")
    trailer = head_at.to_bytes(8, "big") + (head_at + len(head)).to_bytes(8, "big")
    path.write_bytes(good[:head_at] + head + good[key_at:-16] + trailer)
    unpickled: list[int] = []
    real = settled._loads

    def counted(data: bytes) -> object:
        unpickled.append(len(data))
        return real(data)

    monkeypatch.setattr(settled, "_loads", counted)
    return unpickled


@pytest.mark.parametrize("maker", [b"]", b"}", b"\x8f", b"(l"])
def test_a_seal_head_that_makes_an_object_a_byte_is_not_unpickled(
    sealing: Sealing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, maker: bytes
) -> None:
    """Within the bound on bytes, a pickle of empty lists, dicts or sets takes 80 to 230 bytes
    of memory for each of its bytes (16 MiB: up to 4 GB): what archiver's own heads and keys
    hold of such opcodes is counted first, and one with more is no seal, never unpickled."""
    sealing.seal()
    good = the_seal(tmp_path).read_bytes()
    head_at, key_at = int.from_bytes(good[-16:-8], "big"), int.from_bytes(good[-8:], "big")
    assert settled._loads_bounded(good[head_at:key_at])  # archiver's own passes
    key = _seal_key(tmp_path)
    head = b"\x80\x05(" + maker * ((1 << 20) // len(maker)) + b"l."
    unpickled = _with_head(tmp_path, head, monkeypatch)
    assert settled.read(tmp_path / "archive", key) is None
    assert len(head) not in unpickled
    assert unpickled  # the key was
    assert sealing.sync() == 0 and sealing.whole == 3  # a whole run, which forgets it
    assert sealing.sync() == 0 and sealing.whole == 4  # and the next seals again
    assert settled.read(tmp_path / "archive", key) is not None
