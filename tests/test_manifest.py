"""Building, writing and loading manifests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.collection import default_collection
from archiver.entry import Asset, Credit, Entry, Licence, PeerTubeRef, Source, Video
from archiver.errors import FicheError, InvalidInputs, ManifestError
from archiver.fiches import parse_fiche
from archiver.manifest import (
    SCHEMA_VERSION,
    Manifest,
    build_manifest,
    dumps,
    load_manifest,
    loads,
    manifest_bytes,
    write_manifest,
    write_manifest_bytes,
)

from .conftest import SEED, SEED_UUID, WriteFiche, make_entry

REPO = Path(__file__).resolve().parent.parent
BUNDLED_MANIFEST = REPO / "manifests" / "default.json"


def test_bundled_manifest_is_up_to_date_with_the_bundled_fiches() -> None:
    rebuilt = dumps(build_manifest([default_collection()]))
    assert BUNDLED_MANIFEST.read_text(encoding="utf-8") == rebuilt, (
        "manifests/default.json is stale: run "
        "'archiver manifest -o manifests/default.json' and commit it"
    )


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    write_manifest(build_manifest([default_collection()]), first)
    write_manifest(build_manifest([default_collection()]), second)
    assert first.read_bytes() == second.read_bytes()
    data = first.read_bytes()
    assert data.endswith(b"}\n")
    assert "Différencier".encode() in data  # UTF-8, not \u escapes


def test_seed_entry_in_manifest_json() -> None:
    document = json.loads(dumps(build_manifest([SEED])))
    assert document["schema_version"] == SCHEMA_VERSION
    (entry,) = document["entries"]
    assert entry["id"] == SEED_UUID
    assert entry["video"]["url"].endswith(f"{SEED_UUID}-1080-fragmented.mp4")
    assert "Camille" in entry["transcript"]
    assert entry["licence"] == {
        "name": "CC BY-NC-ND 4.0",
        "url": "https://creativecommons.org/licenses/by-nc-nd/4.0/deed.fr",
    }
    assert len(entry["credits"][0]["names"]) == 5
    assert list(entry) == sorted(entry)


def test_manifest_does_not_depend_on_where_the_collection_lives(tmp_path: Path) -> None:
    elsewhere = tmp_path / "copy" / "deep"
    elsewhere.mkdir(parents=True)
    (elsewhere / SEED.name).write_bytes(SEED.read_bytes())
    assert dumps(build_manifest([elsewhere])) == dumps(build_manifest([default_collection()]))


def test_entries_are_ordered_by_source_path(write_fiche: WriteFiche, tmp_path: Path) -> None:
    write_fiche("b.md", embed=None, download="https://x.org/b.mp4")
    write_fiche("a.md", embed=None, download="https://x.org/a.mp4")
    write_fiche("sub/c.md", embed=None, download="https://x.org/c.mp4")
    manifest = build_manifest([tmp_path / "fiches"])
    assert [e.source.path for e in manifest.entries] == ["a.md", "b.md", "sub/c.md"]


def test_every_invalid_fiche_is_reported(write_fiche: WriteFiche, tmp_path: Path) -> None:
    good = write_fiche("good.md")
    bad_title = write_fiche("no-title.md", title=None)
    bad_url = write_fiche("no-url.md", embed=None)
    with pytest.raises(InvalidInputs) as caught:
        build_manifest([tmp_path / "fiches"])
    assert [e.message for e in caught.value.errors] == [
        f"{bad_title}: title: missing required field",
        f"{bad_url}: videoDLHref: no video URL: the fiche needs videoDLHref or videoEmbedSrc",
    ]
    assert str(good) not in "\n".join(caught.value.lines())


def test_duplicate_ids_name_both_files(write_fiche: WriteFiche, tmp_path: Path) -> None:
    first = write_fiche("one.md")
    second = write_fiche("two.md")
    with pytest.raises(InvalidInputs) as caught:
        build_manifest([tmp_path / "fiches"])
    (error,) = caught.value.errors
    assert error.message == (
        f"{second}: id: duplicate id '11111111-2222-4333-8444-555555555555', also given by {first}"
    )


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FicheError, match="no fiche"):
        build_manifest([tmp_path])


def test_write_manifest_reports_whether_it_changed(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    manifest = build_manifest([SEED])
    assert write_manifest(manifest, target) is True
    mtime = target.stat().st_mtime_ns
    assert write_manifest(manifest, target) is False
    assert target.stat().st_mtime_ns == mtime


def test_load_round_trips_the_bundled_manifest() -> None:
    manifest = load_manifest(BUNDLED_MANIFEST)
    assert manifest == build_manifest([default_collection()])
    assert dumps(manifest) == BUNDLED_MANIFEST.read_text(encoding="utf-8")


# -- loading validates -------------------------------------------------------------------------


def _seed_document() -> dict[str, object]:
    document: dict[str, object] = json.loads(dumps(build_manifest([SEED])))
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema_version=99), "schema_version: unsupported version 99"),
        (lambda d: d.update(entries={}), "entries: expected a list, got an object"),
        (lambda d: d["entries"][0].update(id="../../etc"), "entries[0].id: '../../etc' is not a"),
        (lambda d: d["entries"][0].update(id="CON"), "entries[0].id: 'CON' is not a safe id"),
        (lambda d: d["entries"][0].update(id="con"), "entries[0].id: 'con' is not a safe id"),
        (lambda d: d["entries"][0].update(title=3), "entries[0].title: expected a string"),
        (
            lambda d: d["entries"][0]["video"].update(url="file:///etc/passwd"),
            "entries[0].video.url: URL scheme must be http or https, got 'file'",
        ),
        (
            lambda d: d["entries"][0]["video"].update(url=None, embed_url=None),
            "entries[0].video: needs url or embed_url",
        ),
        (
            lambda d: d["entries"][0]["video"].update(sha256="XYZ"),
            "entries[0].video.sha256: expected 64 lowercase hexadecimal digits",
        ),
        (
            lambda d: d["entries"][0]["video"].update(size=True),
            "entries[0].video.size: expected a size in bytes, got a boolean",
        ),
        (
            lambda d: d["entries"].append(d["entries"][0]),
            "entries[1].id: duplicate id '9520b54d-0a3c-43dc-8821-d559fa418cc6'",
        ),
        (
            lambda d: d["entries"][0].update(assets=[{"kind": "exe", "url": "https://x.org"}]),
            "entries[0].assets[0].kind: unknown kind 'exe'",
        ),
    ],
)
def test_invalid_manifest_names_the_field(tmp_path: Path, change: object, message: str) -> None:
    document = _seed_document()
    change(document)  # type: ignore[operator]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.message.startswith(f"{path}: {message}")


def test_invalid_json_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{\n  "schema_version": 1,\n  oops\n}', encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.message == (
        f"{path}: invalid JSON at line 3 column 3: Expecting property name enclosed in double quotes"
    )


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    with pytest.raises(ManifestError, match="nested too deeply"):
        loads("[" * 100_000)


# -- properties --------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8"))
optional_texts = st.none() | texts
urls = st.sampled_from(["https://tube.example.org/v.mp4", "http://x.org/a?b=c&d=é"])
# What find_fiches records: '/'-separated segments, none empty, '.' or '..'.
segments = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1).filter(
    lambda segment: segment not in (".", "..")
)
source_paths = st.lists(segments, min_size=1, max_size=3).map("/".join)

entries = st.builds(
    Entry,
    id=st.just("an-id"),
    title=texts.filter(str.strip),
    area=optional_texts,
    description=optional_texts,
    source=st.builds(Source, path=source_paths, sha256=st.just("0" * 64)),
    video=st.builds(Video, url=urls, embed_url=st.none() | urls, sha256=st.none(), size=st.none()),
    peertube=st.none()
    | st.builds(
        PeerTubeRef,
        instance=st.sampled_from(["https://tube.example.org", "http://127.0.0.1:8080"]),
        uuid=st.uuids().map(str),
    ),
    assets=st.lists(
        st.builds(Asset, kind=st.sampled_from(["fiche_pdf", "transcript_pdf"]), url=urls),
        unique_by=lambda asset: asset.kind,
    ).map(tuple),
    transcript=texts,
    credits=st.lists(st.builds(Credit, role=texts, names=st.lists(texts).map(tuple))).map(tuple),
    credit_notes=st.lists(texts).map(tuple),
    licence=st.none() | st.builds(Licence, name=texts, url=st.none() | urls),
    extra=st.dictionaries(
        texts, st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | texts
    ),
)


@given(entries)
def test_any_text_in_any_field_survives_the_manifest_round_trip(entry: Entry) -> None:
    manifest = Manifest(entries=(entry,))
    assert loads(dumps(manifest)) == manifest
    assert loads(dumps(manifest).encode("utf-8")) == manifest


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
@given(title=texts.filter(str.strip), area=texts, description=texts)
def test_any_front_matter_text_survives_fiche_to_manifest(
    write_fiche: WriteFiche, title: str, area: str, description: str
) -> None:
    front = yaml.safe_dump(
        {
            "title": title,
            "area": area,
            "description": description,
            "videoDLHref": "https://x.org/v.mp4",
        },
        allow_unicode=True,
        default_style='"',
    )
    path = write_fiche("p.md", text=f"---\n{front}---\n\n## Script\n\nTexte\n")
    entry = parse_fiche(path)
    assert entry.title == title.strip()
    assert entry.area == area.strip()
    assert entry.description == description.strip()
    assert loads(dumps(Manifest(entries=(entry,)))).entries == (entry,)


def test_parallel_parse_gives_the_same_manifest_and_errors(
    write_fiche: WriteFiche, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import archiver.manifest as manifest_module

    for i in range(6):
        write_fiche(f"{i}.md", embed=None, download=f"https://x.org/{i}.mp4")
    write_fiche("bad.md", title=None)

    def build() -> list[str]:
        with pytest.raises(InvalidInputs) as caught:
            build_manifest([tmp_path / "fiches"])
        return caught.value.lines()

    serial = build()
    monkeypatch.setattr(manifest_module, "PARALLEL_THRESHOLD", 2)
    monkeypatch.setattr(manifest_module, "PARALLEL_CHUNK", 1)
    assert build() == serial == [f"{tmp_path / 'fiches' / 'bad.md'}: title: missing required field"]
    (tmp_path / "fiches" / "bad.md").unlink()
    parallel = build_manifest([tmp_path / "fiches"])
    monkeypatch.setattr(manifest_module, "PARALLEL_THRESHOLD", 10**9)
    assert parallel == build_manifest([tmp_path / "fiches"])
    assert len(parallel.entries) == 6


def test_input_errors_survive_pickling() -> None:
    import pickle

    error = FicheError("a.md", "title", "missing required field", hint="add a title")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.field, copy.reason, copy.hint, copy.message) == (
        "a.md",
        "title",
        "missing required field",
        "add a title",
        "a.md: title: missing required field",
    )


def test_a_peertube_uuid_that_is_not_a_uuid_is_refused() -> None:
    """It names files in the archive (the API's cached answer): a path must not pass."""
    text = dumps(Manifest(entries=(make_entry("a", "https://x.org/a.mp4"),)))
    document = json.loads(text)
    document["entries"][0]["peertube"] = {"instance": "https://x.org", "uuid": "../../victim"}
    with pytest.raises(ManifestError, match=r"entries\[0\]\.peertube\.uuid: expected a UUID"):
        loads(json.dumps(document))


def test_a_manifest_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Notepad saves UTF-8 with a BOM; json.loads refuses it with a message about Python."""
    manifest = build_manifest([SEED])
    path = tmp_path / "m.json"
    path.write_bytes(b"\xef\xbb\xbf" + dumps(manifest).encode("utf-8"))
    assert load_manifest(path) == manifest


def _reference_text(manifest: Manifest) -> str:
    """The manifest's layout said with ``json.dumps`` alone: an object per entry, one line per
    field, each value as json.dumps writes it with sorted keys, UTF-8 as is."""

    def value(item: object) -> str:
        return json.dumps(item, ensure_ascii=False, sort_keys=True)

    blocks = [
        "    {\n"
        + ",\n".join(f"      {value(k)}: {value(v)}" for k, v in sorted(e.to_json().items()))
        + "\n    }"
        for e in manifest.entries
    ]
    version = f'  "schema_version": {manifest.schema_version}\n}}\n'
    if not blocks:
        return f'{{\n  "entries": [],\n{version}'
    return '{\n  "entries": [\n' + ",\n".join(blocks) + f"\n  ],\n{version}"


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
pinned_entries = st.builds(
    lambda entry, sha256, size, extra: dataclasses.replace(
        entry, video=dataclasses.replace(entry.video, sha256=sha256, size=size), extra=extra
    ),
    entries,
    st.none() | st.just("ab" * 32),
    st.none() | st.integers(0, 2**63 - 1),
    st.dictionaries(
        texts,
        st.recursive(
            json_leaves,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
            max_leaves=8,
        ),
        max_size=4,
    ),
)


@settings(max_examples=300)
@given(st.lists(pinned_entries, max_size=3))
def test_dumps_writes_each_field_as_json_dumps_does(found: list[Entry]) -> None:
    """The manifest's writer, field by field from the entry, says what json.dumps of each field
    of to_json says: every field, any text, nested extras, pinned sizes."""
    manifest = Manifest(entries=tuple(found))
    assert dumps(manifest) == _reference_text(manifest)


def _varied_fiches(write_fiche: WriteFiche) -> None:
    """Fiches with every kind of field: assets, pins, extras of every YAML type, no licence,
    YAML that libyaml reads, text that JSON escapes."""
    write_fiche(
        "a/1.md",
        embed=None,
        download="https://x.org/1.mp4",
        extra_yaml="fichePdfHref: https://x.org/1.pdf\nvideoSize: 1234\n"
        f"videoSha256: {'AB' * 32}\nniveau: [cycle 2, 3, 4.5, true, null]\n"
        'date: 2024-02-01\nnote: {a: 1, b: "x \\" y\\ttab"}',
    )
    write_fiche(
        "a/2.md",
        embed=None,
        download="https://x.org/2.mp4",
        title="'\"Citer\" : un titre\\ avec €'",
        body='## Script\n\nLigne "un"\\\n\u2028deux\n\n## Crédits\n\n- **Réalisation** : A et B\n',
    )
    for i in range(3, 9):
        write_fiche(f"b/{i}.md", embed=None, download=f"https://x.org/{i}.mp4")


def test_manifest_bytes_are_the_bytes_of_dumps(
    write_fiche: WriteFiche, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``archiver manifest`` writes by its lean route (each entry's text made where it is
    parsed) is byte for byte what dumps(build_manifest()) makes, in worker processes or not."""
    import archiver.manifest as manifest_module

    _varied_fiches(write_fiche)
    folder = tmp_path / "fiches"
    expected = dumps(build_manifest([folder])).encode("utf-8")
    assert json.loads(expected)["entries"][0]["extra"]["note"] == {"a": 1, "b": 'x " y\ttab'}
    assert manifest_bytes([folder]) == (expected, 8)
    monkeypatch.setattr(manifest_module, "PARALLEL_THRESHOLD", 2)
    monkeypatch.setattr(manifest_module, "PARALLEL_CHUNK", 3)
    assert manifest_bytes([folder]) == (expected, 8)
    # Two folders given in either order, their fiches recorded by their paths inside them.
    both = [folder / "b", folder / "a"]
    assert manifest_bytes(both) == (dumps(build_manifest(both)).encode("utf-8"), 8)


@pytest.mark.parametrize("threshold", [2, 10**9])
def test_manifest_bytes_report_what_build_manifest_reports(
    write_fiche: WriteFiche,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    threshold: int,
) -> None:
    import archiver.manifest as manifest_module

    monkeypatch.setattr(manifest_module, "PARALLEL_THRESHOLD", threshold)
    monkeypatch.setattr(manifest_module, "PARALLEL_CHUNK", 1)
    _varied_fiches(write_fiche)
    write_fiche("c/no-title.md", title=None)
    write_fiche("c/one.md")
    write_fiche("c/two.md")  # the same id as one.md
    folder = tmp_path / "fiches"
    with pytest.raises(InvalidInputs) as built:
        build_manifest([folder])
    with pytest.raises(InvalidInputs) as lean:
        manifest_bytes([folder])
    assert lean.value.lines() == built.value.lines()
    assert [error.message.split(": ", 2)[1:] for error in lean.value.errors] == [
        ["title", "missing required field"],
        [
            "id",
            f"duplicate id '11111111-2222-4333-8444-555555555555', also given by {folder / 'c' / 'one.md'}",
        ],
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FicheError, match="no fiche"):
        manifest_bytes([tmp_path / "empty"])


def test_write_manifest_bytes_reports_whether_it_changed(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    data, count = manifest_bytes([SEED])
    assert count == 1
    assert write_manifest_bytes(data, target) is True
    assert target.read_bytes() == dumps(build_manifest([SEED])).encode("utf-8")
    mtime = target.stat().st_mtime_ns
    assert write_manifest_bytes(data, target) is False
    assert target.stat().st_mtime_ns == mtime
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(ManifestError, match="will not write the manifest there"):
        write_manifest_bytes(data, link)
