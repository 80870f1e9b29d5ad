"""The kit's pages: escaping, Markdown safety, licence sentences (no browser needed here)."""

from __future__ import annotations

import dataclasses

import pytest
from markupsafe import escape

from archiver.entry import Licence, Source
from archiver.kit.provenance import FileProvenance, KitFile, KitProvenance
from archiver.kit.site import (
    CSP,
    KitAsset,
    KitCaptions,
    KitItem,
    licence_summary,
    render_markdown,
    render_site,
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
    # The same names in every folder: a download is named for its video too.
    assert '<a href="1.mp4" download="item-1-1.mp4">' in page
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
        entry=make_entry("accueil", "https://x.org/v.mp4"),
        video_name="video-720p.mp4",
        assets=(KitAsset("La fiche (PDF)", "fiche.pdf"),),
        captions=(KitCaptions("fr", "Français", "captions-fr.vtt", ((0.0, 1.0, "Bonjour"),)),),
    )
    page = render_site([item], collection_title="Titre")["videos/accueil/index.html"].decode()
    assert '<a href="video-720p.mp4" download="accueil-video-720p.mp4">' in page
    assert '<a href="fiche.pdf" download="accueil-fiche.pdf">' in page
    assert '<a href="captions-fr.vtt" download="accueil-captions-fr.vtt">' in page


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
