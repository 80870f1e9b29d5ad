"""A kit update that makes nothing it need not: pages known by what they were made from, files
checked by one look each, the same answers as the slower checks they replaced."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.catalog import FileRecord
from archiver.entry import Credit, Licence, Video
from archiver.entry import Source as Fiche
from archiver.kit.bag import BAGIT_DECLARATION, MANIFEST, bag_info, verify_bag
from archiver.kit.derive import Source
from archiver.kit.ownership import MARK_AGENT, claim, kit_name
from archiver.kit.provenance import KitFile, KitProvenance, provenance_json
from archiver.kit.site import Deferred, KitAsset, KitCaptions, KitItem, site_sources
from archiver.kit.write import Written, read_pages, write_kit, write_pages
from archiver.names import MAX_NAME_LENGTH
from archiver.progress import NullProgress

from .conftest import make_entry

TAGS = {
    "bagit.txt": BAGIT_DECLARATION,
    "bag-info.txt": bag_info([("Bag-Software-Agent", f"{MARK_AGENT}test")]),
}


def update(kit: Path, payload: dict[str, Source]) -> Written:
    return write_kit(
        kit,
        payload,
        TAGS,
        claim=claim(kit),
        archive_root=kit.parent / "archive",
        copy=True,
        progress=NullProgress(),
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_page_known_to_the_kit_is_neither_made_nor_written(tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    update(kit, {"data/a.html": Source.of_bytes(b"<p>A</p>")})

    def never() -> bytes:
        raise AssertionError("made, though the kit holds it")

    written = update(kit, {"data/a.html": Deferred(sha256=sha(b"<p>A</p>"), size=8, make=never)})
    assert (written.written, written.made) == (0, ())


def test_a_page_removed_from_the_kit_since_is_made_and_listed_as_made(tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    update(kit, {"data/a.html": Source.of_bytes(b"<p>A</p>")})
    (kit / "data" / "a.html").unlink()
    deferred = Deferred(sha256=sha(b"<p>A</p>"), size=8, make=lambda: b"<p>A</p>")
    written = update(kit, {"data/a.html": deferred})
    assert written.made == (("data/a.html", sha(b"<p>A</p>"), 8),)
    assert (kit / "data" / "a.html").read_bytes() == b"<p>A</p>"
    assert verify_bag(kit)[2] == []


def test_a_page_made_other_than_noted_is_listed_as_it_was_made(tmp_path: Path) -> None:
    """A note that lied (or a recipe that changed unseen): the manifest lists the bytes
    written, so the kit still verifies."""
    kit = tmp_path / "kit"
    update(kit, {"data/a.html": Source.of_bytes(b"<p>A</p>")})
    (kit / "data" / "a.html").unlink()
    written = update(
        kit, {"data/a.html": Deferred(sha256=sha(b"<p>A</p>"), size=8, make=lambda: b"<p>B!</p>")}
    )
    assert written.made == (("data/a.html", sha(b"<p>B!</p>"), 9),)
    assert f"{sha(b'<p>B!</p>')}  data/a.html" in (kit / MANIFEST).read_text()
    assert verify_bag(kit)[2] == []


def test_page_notes_read_back_as_written_and_refused_when_doubtful(tmp_path: Path) -> None:
    path = tmp_path / "kit-0.json"
    files = {"index.html": ("a" * 64, "b" * 64, 12), "videos/x/index.html": ("c" * 64, "d" * 64, 0)}
    write_pages(path, files, recipe="r1")
    assert read_pages(path, recipe="r1", files=2) == files
    assert read_pages(path, recipe="r2", files=2) == {}  # another recipe: made again
    many = {f"videos/v{n}/index.html": ("a" * 64, "b" * 64, n) for n in range(1000)}
    write_pages(path, many, recipe="r1")
    assert read_pages(path, recipe="r1", files=1000) == many
    assert read_pages(path, recipe="r1", files=2) == {}  # larger than two files make: unread
    for damaged in (
        b"{",
        b"[]",
        b'{"format": "archiver-pages/1", "recipe": "r1", "files": {"a": ["x", "y", 1]}}',
        b'{"format": "archiver-pages/1", "recipe": "r1", "files": {"a": [1, 2, 3]}}',
        b'{"format": "archiver-pages/1", "recipe": "r1", "files": []}',
    ):
        path.write_bytes(damaged)
        assert read_pages(path, recipe="r1", files=2) == {}
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    write_pages(tmp_path / "elsewhere.json", files, recipe="r1")
    assert read_pages(path, recipe="r1", files=2) == {}  # a link is not followed
    write_pages(path, files, recipe="r1")
    assert path.is_symlink()  # nor written through


def _reference_kit_name(path: str) -> bool:
    """kit_name as it was written part by part, before it became one pattern."""
    forbidden = set('<>:"/\\|?*') | {chr(c) for c in range(32)}
    return all(
        part
        and len(part) <= MAX_NAME_LENGTH
        and part.isascii()
        and not part.startswith(".")
        and not part.endswith((" ", "."))
        and not forbidden.intersection(part)
        for part in path.split("/")
    )


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.lists(st.text(alphabet="ab. -/\x7f\x1f<é", max_size=6), min_size=1, max_size=4).map(
            "/".join
        ),
        st.integers(min_value=95, max_value=105).map(lambda n: "data/" + "x" * n),
    )
)
def test_kit_name_as_one_pattern_says_what_it_said_part_by_part(path: str) -> None:
    assert kit_name(path) == _reference_kit_name(path)


# -- a page's key changes whenever its bytes would -------------------------------------------


def _record(item: str, **fields: object) -> FileRecord:
    values: dict[str, object] = {
        "item_id": item,
        "role": "video",
        "version": 1,
        "path": f"store/ab/{'a' * 64}",
        "url": f"https://tube.example.org/{item}.mp4",
        "final_url": f"https://tube.example.org/{item}.mp4",
        "sha256": "a" * 64,
        "size": 1000,
        "etag": None,
        "last_modified": None,
        "fetched_at": "2026-11-26T03:00:00.000000Z",
        "current": True,
        "resolution": 480,
    }
    values.update(fields)
    return FileRecord(**values)  # type: ignore[arg-type]


def _item(number: int, **fields: object) -> KitItem:
    entry = make_entry(f"video-{number}", f"https://tube.example.org/{number}.mp4")
    entry = dataclasses.replace(
        entry,
        title=f"Vidéo {number}",
        area="Domaine 1",
        description="Une description.",
        transcript="Une phrase.\n\nUne autre, *en italique*.",
        credits=(Credit("Production", ("Réseau Canopé",)),),
        licence=Licence("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    )
    record = _record(entry.id)
    path = f"data/videos/{entry.id}/video-480p.mp4"
    values: dict[str, object] = {
        "entry": entry,
        "video_name": "video-480p.mp4",
        "video_size": 1000,
        "poster_name": "poster.jpg",
        "duration": 12.5,
        "resolution": "480p",
        "assets": (KitAsset("La fiche (PDF)", "fiche.pdf"),),
        "captions": (KitCaptions("fr", "Français", "captions-fr.vtt", ((1.0, 2.0, "Bonjour"),)),),
        "provenance": KitProvenance.of(
            entry, record, KitFile(path=path, sha256=record.sha256, size=record.size)
        ),
    }
    values.update(fields)
    return KitItem(**values)  # type: ignore[arg-type]


def _entry_change(**fields: object) -> Callable[[KitItem], KitItem]:
    return lambda item: dataclasses.replace(item, entry=dataclasses.replace(item.entry, **fields))


def _item_change(**fields: object) -> Callable[[KitItem], KitItem]:
    return lambda item: dataclasses.replace(item, **fields)


CHANGES: dict[str, Callable[[KitItem], KitItem]] = {
    "title": _entry_change(title="Autre titre"),
    "area": _entry_change(area="Domaine 9"),
    "no area": _entry_change(area=None),
    "description": _entry_change(description="Une autre description."),
    "transcript": _entry_change(transcript="Autre chose."),
    "credits": _entry_change(credits=(Credit("Réalisation", ("Ann",)),)),
    "credit notes": _entry_change(credit_notes=("Merci.",)),
    "licence": _entry_change(licence=Licence("CC0", None)),
    "extra": _entry_change(extra={"duree": "4 min"}),
    "video url": _entry_change(video=Video(url="https://b.example/v.mp4", embed_url=None)),
    "fiche": _entry_change(source=Fiche(path="autre.md", sha256="b" * 64)),
    "video name": _item_change(video_name="video-720p.mp4"),
    "folder name": _item_change(folder_name="Autre-dossier"),
    "video size": _item_change(video_size=2_000_000),
    "no poster": _item_change(poster_name=None),
    "poster name": _item_change(poster_name="poster.webp"),
    "duration": _item_change(duration=75.0),
    "resolution": _item_change(resolution="720p"),
    "assets": _item_change(assets=()),
    "captions": _item_change(captions=(KitCaptions("en", "Anglais", "captions-en.vtt", ()),)),
    "cues": _item_change(
        captions=(KitCaptions("fr", "Français", "captions-fr.vtt", ((1.0, 3.0, "Salut"),)),)
    ),
    "provenance": lambda item: dataclasses.replace(
        item,
        provenance=dataclasses.replace(
            item.provenance,  # type: ignore[arg-type]
            video=dataclasses.replace(
                item.provenance.video,  # type: ignore[union-attr]
                fetched_at="2027-01-01T00:00:00.000000Z",
            ),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_file_keeps_its_key_only_when_its_bytes_stay_the_same(name: str, position: int) -> None:
    """Whatever field of one video changes, every generated file whose key is unchanged has
    the same bytes: no page is left as it was when it would be made otherwise."""
    before = [_item(number) for number in range(3)]
    after = list(before)
    after[position] = CHANGES[name](before[position])

    def made(items: list[KitItem]) -> tuple[dict[str, Source], dict[str, str]]:
        return site_sources(
            items,
            collection_title="Titre",
            known=lambda _name, _key: None,
            extra={"provenance.json": lambda: provenance_json([i.provenance for i in items])},  # type: ignore[misc]
        )

    (old, old_keys), (new, new_keys) = made(before), made(after)
    assert old_keys.keys() <= old.keys()
    for file, key in old_keys.items():
        if new_keys.get(file) == key:
            assert new[file].sha256 == old[file].sha256, file


def test_a_source_keeps_its_path_as_text_until_asked_and_compares_by_value(
    tmp_path: Path,
) -> None:
    """A kit of 10,000 videos plans 30,000 files of the archive; an update that writes none
    of them never parses their paths (issue 14)."""
    text = f"{tmp_path}/store/ab/abcd"
    source = Source(sha(b"x"), 1, text)
    assert source.where == text
    assert source.path == tmp_path / "store" / "ab" / "abcd"
    same = Source(sha(b"x"), 1, tmp_path / "store" / "ab" / "abcd")
    assert (source == same, hash(source) == hash(same)) == (True, True)
    assert source != Source(sha(b"x"), 1, f"{tmp_path}/store/ab/other")
    assert Source.of_bytes(b"x") == Source(sha(b"x"), 1, data=b"x")
    assert Source.of_bytes(b"x").path is None
    assert Deferred(sha(b"x"), 1) != Source(sha(b"x"), 1)  # another kind of source
    with pytest.raises(AttributeError):
        source.size = 2  # type: ignore[misc]
    assert source.size == 1
