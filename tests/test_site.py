"""The kit's pages: escaping, Markdown safety, licence sentences (no browser needed here)."""

from __future__ import annotations

import pytest
from markupsafe import escape

from archiver.entry import Licence
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
