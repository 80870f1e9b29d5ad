"""The kit's pages: escaping, Markdown safety, licence sentences, the catalogue's French order,
counts, sizes and names from titles (no browser needed here: tests/test_catalogue.py opens them)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from archiver.entry import Licence, Source
from archiver.kit.ownership import kit_name
from archiver.kit.pages import STEM_LENGTH, collation_key, file_stem, fold, folder_names
from archiver.kit.provenance import FileProvenance, KitFile, KitProvenance
from archiver.kit.site import (
    CHECK_SCRIPT,
    CSP,
    KitAsset,
    KitCaptions,
    KitItem,
    describe_kit,
    licence_summary,
    pluriel,
    render_check_script,
    render_markdown,
    render_readme,
    render_root,
    render_site,
    taille,
)

from .conftest import make_entry


@pytest.mark.parametrize(
    ("markdown", "absent", "present"),
    [
        ("<script>alert(1)</script>", "<script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('<img src=x onerror="alert(1)">', "<img", "&lt;img src=x onerror="),
        ("[clic](javascript:alert(1))", 'href="javascript', "[clic](javascript:alert(1))"),
        ("[clic](data:text/html,x)", 'href="data', "[clic](data:text/html,x)"),
        ("[clic](file:///etc/passwd)", 'href="file', "[clic](file:///etc/passwd)"),
        (
            "![image](https://tracker.example/pixel.png)",
            "<img",
            '<a href="https://tracker.example/pixel.png">image</a>',
        ),
    ],
)
def test_markdown_keeps_no_markup_and_no_unsafe_link(
    markdown: str, absent: str, present: str
) -> None:
    html = str(render_markdown(markdown))
    assert absent not in html
    assert present in html


def test_markdown_keeps_safe_links_and_line_breaks() -> None:
    html = str(
        render_markdown("Voir [le site](https://example.org) ou [écrire](mailto:a@b.fr)\nsuite")
    )
    assert '<a href="https://example.org">le site</a>' in html
    assert '<a href="mailto:a@b.fr">écrire</a>' in html
    assert "<br" in html


@pytest.mark.parametrize(
    ("name", "url", "starts"),
    [
        ("CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/deed.fr",
         "Vous pouvez la partager telle quelle, sans usage commercial"),
        ("CC BY-SA 4.0", None, "Vous pouvez la partager et l’adapter, même à des fins commerciales, en citant ses auteurs et en diffusant"),
        ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/", "Vous pouvez la partager et l’adapter, même à des fins commerciales, en citant ses auteurs."),
        ("CC0", "https://creativecommons.org/publicdomain/zero/1.0/", "Elle est dans le domaine public"),
        ("Tous droits réservés", None, "Consultez la licence"),
        ("Licence Ouverte", "https://www.etalab.gouv.fr/licence-ouverte", "Consultez la licence"),
    ],
)  # fmt: skip
def test_licence_summary_says_what_it_allows(name: str, url: str | None, starts: str) -> None:
    assert licence_summary(Licence(name=name, url=url)).startswith(starts)


def test_pages_carry_a_csp_and_relative_links_only() -> None:
    items = [
        KitItem(entry=make_entry(f"item-{i}", f"https://x.org/{i}.mp4"), video_name=f"{i}.mp4")
        for i in range(3)
    ]
    files = render_site(items, collection_title="Titre")
    page = files["videos/item-1/index.html"].decode()
    assert f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">' in page
    assert 'href="../../assets/style.css"' in page
    assert 'href="../item-0/index.html"' in page
    assert 'href="../item-2/index.html"' in page
    assert '<source src="1.mp4" type="video/mp4">' in page
    # The same names in every folder: a download is named for its video too, from its title.
    assert '<a href="1.mp4" download="Video-item-1-1.mp4">' in page
    for name, data in files.items():
        text = data.decode()
        assert "http://" not in text.replace("http://www.w3.org", ""), name
        assert "fetch(" not in text, name
        assert "XMLHttpRequest" not in text, name
    index = files["index.html"].decode()
    assert '<script src="search-index.js"></script>' in index
    assert files["search-index.js"].startswith(b"window.ARCHIVER_INDEX = [")


def test_download_links_are_named_for_their_video() -> None:
    item = KitItem(
        entry=make_entry("accueil", "https://x.org/v.mp4", title="Différencier ses pratiques"),
        video_name="Differencier-ses-pratiques-720p.mp4",
        assets=(KitAsset("La fiche (PDF)", "fiche.pdf"),),
        captions=(KitCaptions("fr", "Français", "captions-fr.vtt", ((0.0, 1.0, "Bonjour"),)),),
        folder_name="Differencier-ses-pratiques",
    )
    files = render_site([item], collection_title="Titre")
    page = files["videos/Differencier-ses-pratiques/index.html"].decode()
    # The video's own name says which it is already; its companions get the same start.
    video = "Differencier-ses-pratiques-720p.mp4"
    assert f'<a href="{video}" download="{video}">' in page
    assert '<a href="fiche.pdf" download="Differencier-ses-pratiques-fiche.pdf">' in page
    assert (
        '<a href="captions-fr.vtt" download="Differencier-ses-pratiques-captions-fr.vtt">' in page
    )
    assert '<a href="videos/Differencier-ses-pratiques/index.html">' in files["index.html"].decode()


def provenance_of(item_id: str, **fields: object) -> KitProvenance:
    """The provenance of a video held at ``https://tube.example/v.mp4``, fetched on
    1 March 2026, carried as archived; ``fields`` replace the video's own."""
    video = FileProvenance(
        role="video",
        path=f"data/videos/{item_id}/video-720p.mp4",
        url="https://tube.example/v.mp4",
        final_url="https://tube.example/v.mp4",
        fetched_at="2026-03-01T08:30:00.000000Z",
        sha256="c" * 64,
        size=1000,
        version=1,
        resolution=720,
    )
    video = dataclasses.replace(video, **fields)  # type: ignore[arg-type]
    return KitProvenance(
        id=item_id,
        title="Titre",
        fiche=Source("fiches/video.md", "d" * 64),
        video=video,
        kit_video=KitFile(f"data/videos/{item_id}/video-720p.mp4", "c" * 64, 1000),
        licence=Licence("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    )


def test_a_page_shows_its_provenance_only_when_known() -> None:
    entry = make_entry("accueil", "https://x.org/v.mp4")
    known = KitItem(entry=entry, video_name="video-720p.mp4", provenance=provenance_of("accueil"))
    page = render_site([known], collection_title="T")["videos/accueil/index.html"].decode()
    assert '<h2 id="provenance">Provenance</h2>' in page
    assert '<time datetime="2026-03-01">1er mars 2026</time>' in page
    assert f'<code class="hash">{"c" * 64}</code>' in page
    assert "<dd>720p</dd>" in page
    assert '<span class="url">fiches/video.md</span>, SHA-256' in page
    assert "redirigée vers" not in page  # the same URL: said once
    unknown = KitItem(entry=entry, video_name="video.mp4")
    page = render_site([unknown], collection_title="T")["videos/accueil/index.html"].decode()
    assert "Provenance" not in page


def test_the_provenance_section_escapes_what_it_shows_and_links_only_the_web() -> None:
    hostile = 'https://x.org/"><script>alert(1)</script>'
    provenance = dataclasses.replace(
        provenance_of("accueil", final_url=hostile),
        licence=Licence("<b>Libre</b>", "javascript:alert(1)"),
    )
    item = KitItem(
        entry=make_entry("accueil", "https://x.org/v.mp4"),
        video_name="video-720p.mp4",
        provenance=provenance,
    )
    page = render_site([item], collection_title="T")["videos/accueil/index.html"].decode()
    section = page[page.index('<section aria-labelledby="provenance"') :]
    assert "<script>" not in section
    assert f'redirigée vers <span class="url">{escape(hostile)}</span>' in section
    assert "javascript:" not in section
    assert "<dd>&lt;b&gt;Libre&lt;/b&gt;</dd>" in section


# -- the catalogue's French: order, counts, sizes, names ---------------------------------------


def test_titles_sort_in_french_order_not_by_code_point() -> None:
    titles = [
        "Évaluer avec le numérique",
        "Zoé découvre l’ENT",
        "Différencier ses pratiques",
        "Créer un quiz",
        "œuvres du patrimoine",
        "Oeil et vision",
        "Épisode 10",
        "Épisode 2",
        "collaborer en classe",
        "Côte à côte",
        "Cote",
        "coté",
    ]
    assert sorted(titles, key=collation_key) == [
        "collaborer en classe",
        "Cote",
        "coté",
        "Côte à côte",
        "Créer un quiz",
        "Différencier ses pratiques",
        "Épisode 2",  # numbers by their value
        "Épisode 10",
        "Évaluer avec le numérique",
        "Oeil et vision",  # "oe" spelt out: œuvres among the "oe…"
        "œuvres du patrimoine",
        "Zoé découvre l’ENT",
    ]
    # Case alone: lowercase first, whatever order they come in.
    assert sorted(["Créer", "créer"], key=collation_key) == ["créer", "Créer"]
    assert sorted(["créer", "Créer"], key=collation_key) == ["créer", "Créer"]


def test_the_catalogue_groups_by_area_with_counts_and_sorts_titles_in_each() -> None:
    def item(item_id: str, title: str, area: str | None) -> KitItem:
        entry = make_entry(item_id, "https://x.org/v.mp4", title=title, area=area)
        return KitItem(entry=entry, video_name="v.mp4")

    items = [
        item("e", "Évaluer", "Domaine 2"),
        item("c", "Créer", "Domaine 2"),
        item("z", "Zoé", None),
        item("d", "Différencier", "Domaine 2"),
        item("a", "Accueillir", "Domaine 10"),
        item("b", "Bâtir", "domaine 1"),
    ]
    index = render_site(items, collection_title="T")["index.html"].decode()
    headings = re.findall(r'<h2 id="domaine-\d+">(.*?) <span class="count">\((.*?)\)</span>', index)
    assert headings == [
        ("domaine 1", "1 vidéo"),
        ("Domaine 2", "3 vidéos"),
        ("Domaine 10", "1 vidéo"),
        ("Autres vidéos", "1 vidéo"),  # no area: last
    ]
    titles = re.findall(r'<span class="title">(.*?)</span>', index)
    assert titles == ["Bâtir", "Créer", "Différencier", "Évaluer", "Accueillir", "Zoé"]
    assert '<p id="etat" class="status" aria-live="polite" data-total="6">6 vidéos</p>' in index
    # The pager follows the catalogue: Différencier sits between Créer and Évaluer.
    page = render_site(items, collection_title="T")["videos/d/index.html"].decode()
    assert '<a rel="prev" href="../c/index.html">← Créer</a>' in page
    assert '<a rel="next" href="../e/index.html">Évaluer →</a>' in page


@pytest.mark.parametrize(
    ("count", "said"), [(0, "0 vidéo"), (1, "1 vidéo"), (2, "2 vidéos"), (17, "17 vidéos")]
)
def test_counts_take_the_french_plural(count: int, said: str) -> None:
    assert pluriel(count, "vidéo") == said
    readme = render_readme(collection_title="T", count=count).decode()
    root = render_root(collection_title="T", count=count).decode()
    for text in (readme, root, describe_kit("T", count)):
        assert "(s)" not in text
        assert "0 vidéos" not in text
    if count:
        assert said in readme and said in root and said in describe_kit("T", count)


def test_an_empty_kit_says_why_it_is_empty_not_that_a_search_found_nothing() -> None:
    index = render_site([], collection_title="T")["index.html"].decode()
    assert "Ce kit ne contient encore aucune vidéo" in index
    assert "téléchargée" in index
    assert "ne correspond à cette recherche" not in index
    assert 'id="filtres"' not in index  # nothing to search
    root = render_root(collection_title="T", count=0).decode()
    assert "Ce kit ne contient encore aucune vidéo" in root
    full = render_site(
        [KitItem(entry=make_entry("a", "https://x.org/v.mp4"), video_name="v.mp4")],
        collection_title="T",
    )["index.html"].decode()
    assert "Ce kit ne contient encore aucune vidéo" not in full
    assert '<p id="aucun" class="status empty" hidden>Aucune vidéo ne correspond' in full


@pytest.mark.parametrize(
    ("size", "said"),
    [
        (0, "0 octet"),
        (1, "1 octet"),
        (512, "512 octets"),
        (1536, "1,5 Ko"),
        (1024**2, "1 Mo"),
        (round(14.2 * 1024**2), "14,2 Mo"),
        (round(3.75 * 1024**3), "3,8 Go"),
    ],
)
def test_sizes_are_written_in_french_units_with_a_decimal_comma(size: int, said: str) -> None:
    assert taille(size) == said
    item = KitItem(
        entry=make_entry("a", "https://x.org/v.mp4"), video_name="v.mp4", video_size=size or None
    )
    page = render_site([item], collection_title="T")["videos/a/index.html"].decode()
    if size:
        assert f"(MP4, {said})" in page
    assert "iB" not in page


def test_captions_are_found_where_chromium_shows_them_not_under_a_cc_button() -> None:
    item = KitItem(
        entry=make_entry("a", "https://x.org/v.mp4"),
        video_name="v.mp4",
        captions=(KitCaptions("fr", "Français", "captions-fr.vtt", ((0.0, 1.0, "Bonjour"),)),),
    )
    page = render_site([item], collection_title="T")["videos/a/index.html"].decode()
    assert "« CC »" not in page
    assert "menu <span" in page and "⋮</span> du lecteur, puis « Sous-titres »" in page


def test_a_file_stem_is_ascii_fat32_safe_and_readable() -> None:
    assert file_stem("Différencier ses pratiques") == "Differencier-ses-pratiques"
    assert file_stem("L’œuvre : « Élève » ?") == "L-oeuvre-Eleve"
    assert file_stem("***") == "video"
    assert file_stem("CON") == "CON-video"  # a name Windows reserves
    long = file_stem("Un titre " * 20)
    assert len(long) <= STEM_LENGTH and not long.endswith("-")
    assert long.startswith("Un-titre-Un-titre")


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_title_makes_a_name_every_key_and_the_kit_accept(title: str) -> None:
    stem = file_stem(title)
    assert re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", stem)
    assert len(stem) <= STEM_LENGTH
    for path in (f"data/videos/{stem}/{stem}-1080p.mp4", f"data/videos/{stem}/index.html"):
        assert kit_name(path), path


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d1", "d2"]), st.text(max_size=8))))
@settings(max_examples=200, deadline=None)
def test_folder_names_are_unique_on_a_key_that_ignores_case_and_do_not_depend_on_order(
    specs: list[tuple[str, str]],
) -> None:
    titles = dict(specs)  # one title an id
    entries = [make_entry(i, None, title=t) for i, t in titles.items()]
    names = folder_names(entries)
    assert set(names) == set(titles)
    assert len({name.lower() for name in names.values()}) == len(names)
    assert folder_names(reversed(entries)) == names
    for name in names.values():
        assert kit_name(f"data/videos/{name}/{name}-720p.mp4")


def test_two_titles_that_fold_alike_get_two_folders_the_same_each_run() -> None:
    entries = [
        make_entry("9c9de5e8-0a1e", None, title="Évaluer"),
        make_entry("1f0e", None, title="evaluer"),
        make_entry("x", None, title="Différencier ses pratiques"),
    ]
    names = folder_names(entries)
    assert names == {
        "1f0e": "evaluer--1f0e",
        "9c9de5e8-0a1e": "Evaluer--9c9de5e8",
        "x": "Differencier-ses-pratiques",
    }
    assert folder_names(entries[::-1]) == names


def test_the_search_folds_apostrophes_ligatures_and_accents() -> None:
    assert fold("L’ENT, l‘élève et l'œuvre") == "l'ent, l'eleve et l'oeuvre"
    item = KitItem(
        entry=make_entry("a", "https://x.org/v.mp4", title="Découvrir l’ENT"), video_name="v.mp4"
    )
    index = render_site([item], collection_title="T")["search-index.js"].decode()
    assert "decouvrir l'ent" in index


def test_the_root_page_is_a_page_with_a_button_not_a_redirect() -> None:
    root = render_root(collection_title="Vidéos & <formation>", count=17).decode()
    assert 'http-equiv="refresh"' not in root
    assert "<h1>Vidéos &amp; &lt;formation&gt;</h1>" in root
    assert "17 vidéos" in root
    assert '<a class="button" href="data/index.html">Ouvrir le catalogue</a>' in root


def test_the_windows_check_script_is_bommed_crlf_and_read_by_its_own_pattern() -> None:
    script = render_check_script()
    assert script.startswith(b"\xef\xbb\xbf")  # Windows PowerShell 5.1 reads it as UTF-8
    text = script[3:].decode("utf-8")
    assert "\n" not in text.replace("\r\n", "")
    assert "Get-FileHash -LiteralPath $fichier -Algorithm SHA256" in text
    readme = render_readme(collection_title="T", count=1).decode()
    for said in (
        f"powershell -ExecutionPolicy Bypass -File E:\\{CHECK_SCRIPT}",
        "Get-FileHash -Algorithm SHA256",
        "sha256sum -c manifest-sha256.txt",
        "shasum -a 256 -c manifest-sha256.txt",
    ):
        assert said in readme


def test_adding_a_fiche_never_hands_a_kit_folder_to_another_video() -> None:
    # A teacher's bookmark of videos/evaluer--g must open "evaluer" or nothing, whatever is
    # added: before, "evaluer g" (id x1) took "evaluer-g" from the older "evaluer" (id g).
    before = [
        make_entry("g", None, title="evaluer"),
        make_entry("f", None, title="Évaluer."),
        make_entry("d", None, title="🎬"),
    ]
    after = [
        *before,
        make_entry("x1", None, title="evaluer g"),
        make_entry("a", None, title="Évaluer"),
    ]
    old, new = folder_names(before), folder_names(after)
    owner = {name.lower(): item for item, name in new.items()}
    for item, name in old.items():
        assert owner.get(name.lower(), item) == item, (item, name, new)
    assert len({name.lower() for name in new.values()}) == len(new)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "a-b", "a_b", "ab", "abcdefgh1", "abcdefgh2"]),
            st.sampled_from(["Évaluer", "evaluer", "evaluer b", "Evaluer--b", "x", "X"]),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda pair: pair[0],
    ),
    st.data(),
)
def test_folder_names_are_unique_and_never_pass_to_another_video(
    pairs: list[tuple[str, str]], data: st.DataObject
) -> None:
    entries = [make_entry(item, None, title=title) for item, title in pairs]
    kept = data.draw(st.lists(st.sampled_from(entries), unique_by=lambda e: e.id))
    old, new = folder_names(kept), folder_names(entries)
    assert len({name.lower() for name in new.values()}) == len(new)
    owner = {name.lower(): item for item, name in new.items()}
    for item, name in old.items():
        assert owner.get(name.lower(), item) == item
        assert kit_name(f"data/videos/{name}/{name}-720p.mp4")
