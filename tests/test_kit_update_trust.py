"""What an update of a kit trusts, and what it checks: a new release's tag files reach a kit
whose videos did not change, ``--copy`` makes a linked kit's files its own, and a payload file
changed by hand at the same size (its time put back) is found by its identity on disk and
mended, while an update that finds nothing to do reads no payload file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import types
from pathlib import Path

import bagit
import pytest

import archiver.kit as kit_module
import archiver.kit.page_cache as page_cache_module
import archiver.kit.survey as kit_survey
import archiver.kit.write as kit_writer
from archiver.errors import KitError
from archiver.fiche_cache import CACHE_FOLDER
from archiver.kit import KitSettings, package
from archiver.kit.bag import BAG_INFO, TAGMANIFEST, verify_bag
from archiver.kit.page_cache import pages_path, read_note
from archiver.manifest import Manifest, write_manifest

from . import test_package
from .server import FileServer
from .test_kit_ownership import held
from .test_package import entries, run

clips = test_package.clips
COPY = KitSettings(copy=True)  # the kit's files its own, not links to the archive's


@pytest.fixture
def three(server: FileServer, clips: list[bytes], tmp_path: Path) -> tuple[Manifest, Path]:
    """Three videos held in ``tmp_path/archive``: the manifest and the archive."""
    return held(tmp_path, entries(server, clips))


def videos(kit: Path) -> list[Path]:
    return sorted((kit / "data" / "videos").glob("*/*.mp4"))


def edit_in_place(path: Path) -> bytes:
    """Change the last byte of ``path`` where it is (same inode, same size), then put its
    times back, as a hand (or a faulty copy) would leave it; its bytes before."""
    before = os.stat(path)
    data = path.read_bytes()
    with path.open("r+b") as stream:
        stream.seek(len(data) - 1)
        stream.write(bytes([data[-1] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    return data


def packaged(three: tuple[Manifest, Path], tmp_path: Path) -> tuple[Manifest, Path, Path, Path]:
    """The three videos packaged with ``--copy``: the manifest, the archive, the kit, and the
    archive's note about the kit."""
    manifest, archive = three
    kit = tmp_path / "kit"
    package(manifest, archive, kit, settings=COPY)
    return manifest, archive, kit, pages_path(archive / CACHE_FOLDER, kit)


# -- tag files ---------------------------------------------------------------------------------


def test_a_new_release_s_tag_files_reach_a_kit_whose_payload_did_not_change(
    three: tuple[Manifest, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, archive, kit, _ = packaged(three, tmp_path)
    old = {name: (kit / name).read_bytes() for name in ("index.html", "LISEZMOI.txt")}
    old_script = (kit / "verifier-cle.ps1").read_bytes()
    old_info = (kit / BAG_INFO).read_bytes()

    # A release that fixed the root page, LISEZMOI.txt and the PowerShell script, nothing else
    # (its templates are another recipe: the archive's note of what they made is not its own).
    recipe = kit_module.recipe()
    monkeypatch.setattr(kit_module, "recipe", lambda: "another " + recipe)
    for name in ("render_root", "render_readme"):
        made = getattr(kit_module, name)
        monkeypatch.setattr(
            kit_module, name, lambda made=made, **kw: made(**kw) + b"\n<!-- fixed -->\n"
        )
    monkeypatch.setattr(kit_module, "render_check_script", lambda: old_script + b"# fixed\r\n")
    report = package(manifest, archive, kit, settings=COPY)

    assert report.written == 0 and report.removed == 0, report  # no payload file moved
    for name, data in old.items():
        assert (kit / name).read_bytes() == data + b"\n<!-- fixed -->\n", name
    assert (kit / "verifier-cle.ps1").read_bytes() == old_script + b"# fixed\r\n"
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()
    assert (kit / BAG_INFO).read_bytes() == old_info  # written the same day: the same bytes


def test_a_kit_left_alone_keeps_its_bag_info_on_another_day(
    three: tuple[Manifest, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, archive, kit, _ = packaged(three, tmp_path)
    info, tags = (kit / BAG_INFO).read_bytes(), (kit / TAGMANIFEST).read_bytes()

    class Tomorrow(dt.date):
        @classmethod
        def today(cls) -> Tomorrow:
            return cls(2100, 1, 1)

    monkeypatch.setattr(kit_module, "dt", types.SimpleNamespace(date=Tomorrow))
    package(manifest, archive, kit, settings=COPY)
    # bag-info.txt dates the bag's last change: an update that changes nothing keeps it.
    assert (kit / BAG_INFO).read_bytes() == info
    assert (kit / TAGMANIFEST).read_bytes() == tags


# -- --copy ------------------------------------------------------------------------------------


def test_copy_on_a_linked_kit_makes_every_file_its_own_and_no_copy_does_not_link_again(
    three: tuple[Manifest, Path], tmp_path: Path
) -> None:
    manifest, archive = three
    kit = tmp_path / "kit"
    package(manifest, archive, kit)  # hard links to the archive's files
    assert all(os.stat(path).st_nlink > 1 for path in videos(kit))
    linked = [
        path for path in (kit / "data").rglob("*") if path.is_file() and path.stat().st_nlink > 1
    ]
    assert len(linked) == 6  # three videos, three posters

    report = package(manifest, archive, kit, settings=COPY)
    assert report.written == len(linked) and report.linked == 0, report
    assert all(os.stat(path).st_nlink == 1 for path in linked)
    assert verify_bag(kit)[2] == []

    # Without --copy, a copied file stays a copy (nothing is written for the link alone).
    report = package(manifest, archive, kit)
    assert report.written == 0, report
    assert all(os.stat(path).st_nlink == 1 for path in linked)


def test_copy_through_the_cli_on_a_linked_kit(three: tuple[Manifest, Path], tmp_path: Path) -> None:
    manifest, archive = three
    manifest_path = tmp_path / "m.json"
    write_manifest(manifest, manifest_path)
    kit = tmp_path / "kit"
    for extra in ((), ("--copy",), ("--copy",)):  # the last one replays its seal
        code, _, err = run("package", manifest_path, "--archive", archive, "-o", kit, "-q", *extra)
        assert code == 0, err
    assert [os.stat(path).st_nlink for path in videos(kit)] == [1, 1, 1]


# -- payload files changed by hand -------------------------------------------------------------


@pytest.mark.parametrize("which", ["video", "page"])
def test_a_payload_file_changed_in_place_at_its_size_is_mended_by_the_next_package(
    three: tuple[Manifest, Path], tmp_path: Path, which: str
) -> None:
    manifest, archive = three
    manifest_path = tmp_path / "m.json"
    write_manifest(manifest, manifest_path)
    kit = tmp_path / "kit"
    args = ("package", manifest_path, "--archive", archive, "-o", kit, "-q", "--copy")
    for _ in range(3):  # built, sealed, replayed
        code, _, err = run(*args)
        assert code == 0, err
    target = videos(kit)[0] if which == "video" else videos(kit)[0].parent / "index.html"
    original = edit_in_place(target)
    assert verify_bag(kit)[2] != []

    code, _, err = run(*args)
    assert code == 0, err
    assert target.read_bytes() == original
    assert verify_bag(kit)[2] == []
    code, _, err = run(*args)  # sealed again, as it is now
    assert code == 0, err
    assert target.read_bytes() == original


def test_an_update_that_finds_nothing_to_do_reads_no_payload_file(
    three: tuple[Manifest, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, archive, kit, note = packaged(three, tmp_path)
    assert note.is_file()
    written = note.stat().st_mtime_ns
    hashed: list[Path] = []

    def counting(path: Path, **kwargs: object) -> str:
        if path.relative_to(kit).parts[0] == "data":
            hashed.append(path)
        return real(path, **kwargs)  # type: ignore[arg-type]

    real = kit_writer.file_sha256
    monkeypatch.setattr(kit_writer, "file_sha256", counting)
    monkeypatch.setattr(kit_survey, "file_sha256", counting)
    report = package(manifest, archive, kit, settings=COPY)
    assert report.written == 0 and hashed == [], hashed
    assert note.stat().st_mtime_ns == written  # nothing moved: the note is not written again

    # A file whose identity moved is read, and only that one; the same bytes stay.
    touched = videos(kit)[1]
    os.utime(touched, ns=(0, 0))
    report = package(manifest, archive, kit, settings=COPY)
    assert report.written == 0 and hashed == [touched], hashed


def disk(note: Path, kit: Path) -> dict[str, object]:
    """What the archive's ``note`` records of each payload file of ``kit`` on disk."""
    listed = [
        line.split("  ", 1)[1]
        for line in (kit / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines()
    ]
    return dict(
        read_note(note, recipe=kit_module.recipe(), files=8, paths=listed).files.identities()
    )


def test_a_damaged_or_missing_record_is_trusted_as_before_and_written_anew(
    three: tuple[Manifest, Path], tmp_path: Path
) -> None:
    manifest, archive, kit, note = packaged(three, tmp_path)
    listed = len((kit / "manifest-sha256.txt").read_bytes().splitlines())
    assert len(disk(note, kit)) == listed
    whole = json.loads(note.read_bytes())
    for damage in (
        b"{",
        json.dumps({**whole, "disk": {**whole["disk"], "stat": whole["disk"]["stat"][:-4]}}),
        json.dumps({**whole, "disk": {**whole["disk"], "stat": "!" * len(whole["disk"]["stat"])}}),
        json.dumps({**whole, "disk": {**whole["disk"], "stat": [1, 2, 3, 4]}}),
        json.dumps({**whole, "disk": {**whole["disk"], "paths": "0" * 64}}),
        None,
    ):
        if damage is None:
            note.unlink()
        else:
            note.write_bytes(damage if isinstance(damage, bytes) else damage.encode())
        assert disk(note, kit) == {}
        report = package(manifest, archive, kit, settings=COPY)
        assert report.written == 0, report  # trusted, as without a note: nothing read
        assert len(disk(note, kit)) == listed


def test_a_note_larger_than_its_kit_needs_is_not_read(
    three: tuple[Manifest, Path], tmp_path: Path
) -> None:
    _, _, kit, note = packaged(three, tmp_path)
    assert disk(note, kit) != {}
    note.write_bytes(note.read_bytes() + b" " * (1 << 20))
    assert disk(note, kit) == {}


def test_a_note_of_empty_lists_within_its_bound_is_refused_before_it_is_parsed(
    three: tuple[Manifest, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[],[],…`` within the note's bound on bytes took 458 MB to parse at 10,000 videos:
    its lists and objects are counted first, and the note is no note, never parsed."""
    manifest, archive, kit, note = packaged(three, tmp_path)
    size = len(note.read_bytes())
    note.write_bytes(b"[" + b"[]," * (size // 3 - 1) + b"[]]")
    parsed: list[int] = []
    real = json.loads

    def counted(text: str | bytes) -> object:
        parsed.append(len(text))
        return real(text)

    monkeypatch.setattr(page_cache_module.json, "loads", counted)
    assert disk(note, kit) == {}
    assert parsed == []
    report = package(manifest, archive, kit, settings=COPY)  # the note made anew
    assert report.written == 0
    monkeypatch.undo()
    assert disk(note, kit) != {}


def test_the_record_outlives_a_new_recipe(
    three: tuple[Manifest, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the kit held on disk is not how its pages were made: a new release (another
    recipe) makes its pages again, and still finds a video changed by hand."""
    manifest, archive, kit, _ = packaged(three, tmp_path)
    target = videos(kit)[2]
    original = edit_in_place(target)
    recipe = kit_module.recipe()
    monkeypatch.setattr(kit_module, "recipe", lambda: "another " + recipe)
    report = package(manifest, archive, kit, settings=COPY)
    assert report.written == 1, report
    assert target.read_bytes() == original


def test_a_tag_file_an_older_release_wrote_is_replaced_though_its_tag_manifest_agrees(
    three: tuple[Manifest, Path], tmp_path: Path
) -> None:
    """The kit as an older release left it (a key restored from a copy): its tag manifest
    vouches for its LISEZMOI.txt, but this release makes another; the archive's note says
    which, and the update writes it."""
    manifest, archive, kit, _ = packaged(three, tmp_path)
    readme = (kit / "LISEZMOI.txt").read_bytes()
    older = b"Ancien mode d'emploi.\n"
    (kit / "LISEZMOI.txt").write_bytes(older)
    tags = (kit / TAGMANIFEST).read_text(encoding="utf-8")
    (kit / TAGMANIFEST).write_text(
        tags.replace(hashlib.sha256(readme).hexdigest(), hashlib.sha256(older).hexdigest()),
        encoding="utf-8",
    )
    assert verify_bag(kit)[2] == []  # a whole bag, of the older release

    package(manifest, archive, kit, settings=COPY)
    assert (kit / "LISEZMOI.txt").read_bytes() == readme
    assert verify_bag(kit)[2] == []


# -- what a second review found ----------------------------------------------------------------


def test_a_file_edited_by_hand_is_not_moved_when_its_title_changes(
    three: tuple[Manifest, Path], tmp_path: Path
) -> None:
    """A title change moves a video's files to their new names without copying them: not one
    edited by hand since the last update (its identity moved, its bytes differ), whose new
    path is written anew."""
    manifest, archive, kit, _ = packaged(three, tmp_path)
    package(manifest, archive, kit, settings=COPY)  # noted as this update leaves them
    for video in videos(kit):
        edit_in_place(video)
    renamed = Manifest(
        entries=tuple(
            dataclasses.replace(entry, title=f"Renommé {entry.title}") for entry in manifest.entries
        )
    )
    package(renamed, archive, kit, settings=COPY)
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()


def test_the_recipe_of_tag_files_follows_the_bagit_declaration() -> None:
    """``bagit.txt`` is made by :mod:`archiver.kit.bag`: a release that changes it changes the
    recipe, so that an existing kit's note no longer vouches for the old declaration."""
    from archiver.kit import site

    made = site.recipe.__wrapped__  # not the process's cached one
    before = made()
    real = Path.read_bytes

    def changed(path: Path) -> bytes:
        data = real(path)
        return data + b"\n# another release\n" if path.name == "bag.py" else data

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "read_bytes", changed)
        assert made() != before


def test_a_linked_kit_file_edited_by_hand_is_the_archives_damage_said_not_linked_again(
    three: tuple[Manifest, Path], tmp_path: Path
) -> None:
    """Without --copy a kit's video is the archive's own file: edited in place, the archive's
    copy is damaged too. The update says so, naming it, and writes nothing (it would link the
    same bad bytes back and call the kit mended)."""
    manifest, archive = three
    kit = tmp_path / "kit"
    package(manifest, archive, kit, settings=KitSettings())
    package(manifest, archive, kit, settings=KitSettings())  # noted
    target = videos(kit)[0]
    assert os.stat(target).st_nlink > 1
    edit_in_place(target)
    manifests = (kit / "manifest-sha256.txt").read_bytes()
    with pytest.raises(KitError) as raised:
        package(manifest, archive, kit, settings=KitSettings())
    assert str(target) in raised.value.message
    assert "the archive's copy is damaged" in raised.value.message
    assert (kit / "manifest-sha256.txt").read_bytes() == manifests
