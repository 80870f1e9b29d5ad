"""Reading and validating fiches."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver import kit
from archiver.cli import cli
from archiver.errors import FicheError
from archiver.fiches import KNOWN_FIELDS, MAX_FICHE_BYTES, find_fiches, parse_fiche, suggest_field

from .conftest import SEED, SEED_UUID, WriteFiche


def test_seed_fiche_gives_its_title_urls_transcript_credits_and_licence() -> None:
    entry = parse_fiche(SEED)

    assert entry.id == SEED_UUID
    assert entry.title == "Différencier ses pratiques pédagogiques grâce au numérique"
    assert entry.area == "Domaine 4"
    assert entry.description and entry.description.startswith("Décliner et adapter")
    assert entry.video.url == (
        "https://tube.reseau-canope.fr/download/streaming-playlists/hls/videos/"
        f"{SEED_UUID}-1080-fragmented.mp4"
    )
    assert entry.video.embed_url == f"https://tube.reseau-canope.fr/videos/embed/{SEED_UUID}"
    assert entry.peertube is not None
    assert entry.peertube.instance == "https://tube.reseau-canope.fr"
    assert entry.peertube.uuid == SEED_UUID
    assert "Camille" in entry.transcript
    assert entry.transcript.startswith("Pour Camille, professeur(e) des écoles")
    assert entry.transcript.endswith("et faciliter leur apprentissage.")
    assert "## Crédits" not in entry.transcript
    scenario = next(c for c in entry.credits if c.role == "Scénario")
    assert scenario.names == (
        "Mélinée Chanard",
        "Kimi Do",
        "Cécile Taillandier",
        "Béatrice Pérelade",
        "Virginie Esparel-Rousseau",
    )
    assert [c.role for c in entry.credits] == [
        "Scénario",
        "Direction de publication",
        "Production",
        "Partenariat",
    ]
    assert entry.licence is not None
    assert entry.licence.name == "CC BY-NC-ND 4.0"
    assert entry.licence.url == "https://creativecommons.org/licenses/by-nc-nd/4.0/deed.fr"
    assert entry.credit_notes == (
        "Ressource produite avec le soutien du ministère de l’Éducation nationale et de la Jeunesse",
    )
    assert entry.source.path == SEED.name
    assert len(entry.source.sha256) == 64


def test_companion_pdfs_become_assets(write_fiche: WriteFiche) -> None:
    path = write_fiche(
        extra_yaml=(
            "fichePdfHref: https://example.org/fiche.pdf\n"
            "transcriptPdfHref: https://example.org/script.pdf"
        )
    )
    entry = parse_fiche(path)
    assert [(a.kind, a.url) for a in entry.assets] == [
        ("fiche_pdf", "https://example.org/fiche.pdf"),
        ("transcript_pdf", "https://example.org/script.pdf"),
    ]


def test_unknown_fields_are_kept_and_reported(
    write_fiche: WriteFiche, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_fiche(extra_yaml="duration: 312\npublished: 2024-03-01\nrating: 4.5")
    with caplog.at_level(logging.WARNING, logger="archiver"):
        entry = parse_fiche(path)
    assert entry.extra == {"duration": 312, "published": "2024-03-01", "rating": 4.5}
    assert f"{path}: unknown front-matter field(s) kept as extra: duration, published, rating" in (
        caplog.messages
    )


def test_fiche_without_uuid_gets_an_ascii_slug_of_its_file_name(write_fiche: WriteFiche) -> None:
    path = write_fiche(
        "Élève & numérique.md", embed=None, download="https://example.org/videos/eleve.mp4"
    )
    entry = parse_fiche(path)
    assert entry.id == "eleve-numerique"
    assert entry.peertube is None


LONG = "9c9de5e8-0a1e-484a-b099-e80766180a6d"
SHORT = "kkGMgK9ZtnKfYAgnEtQxbv"  # the same video (PeerTube's short-uuid, flickr base58)


@pytest.mark.parametrize(
    "link",
    [
        f"https://tube.example.org/w/{SHORT}",
        f"https://tube.example.org/w/{SHORT}?start=1m2s",
        f"https://tube.example.org/videos/watch/{SHORT}",
        f"https://tube.example.org/videos/watch/{LONG}",
        f"https://tube.example.org/videos/embed/{SHORT}?autoplay=1",
        f"https://tube.example.org/videos/embed/{LONG.upper()}",
    ],
)
def test_every_peertube_link_form_names_its_video(write_fiche: WriteFiche, link: str) -> None:
    entry = parse_fiche(write_fiche("court.md", embed=link))
    assert entry.peertube is not None
    assert (entry.peertube.instance, entry.peertube.uuid) == ("https://tube.example.org", LONG)
    assert entry.id == LONG


def test_a_playlist_link_names_no_video(write_fiche: WriteFiche) -> None:
    path = write_fiche("liste.md", embed=f"https://tube.example.org/w/p/{SHORT}")
    assert parse_fiche(path).peertube is None


def test_pinned_checksum_and_size_are_read(write_fiche: WriteFiche) -> None:
    digest = "AB" * 32
    path = write_fiche(extra_yaml=f"videoSha256: {digest}\nvideoSize: 1234")
    video = parse_fiche(path).video
    assert video.sha256 == digest.lower()
    assert video.size == 1234


def test_crlf_and_bom_are_accepted(write_fiche: WriteFiche) -> None:
    text = "\ufeff" + SEED.read_text(encoding="utf-8").replace("\n", "\r\n")
    entry = parse_fiche(write_fiche("crlf.md", text=text))
    assert entry.id == SEED_UUID
    assert "\r" not in entry.transcript


def test_credit_typographies_and_licence_without_link(write_fiche: WriteFiche) -> None:
    body = (
        "## Credits\n\n"
        "* **Réalisation :** Ana Diaz et Léo Martin\n"
        "- **Voix** : Zoé ; Paul\n"
        "- **Licence** : Tous droits réservés\n"
    )
    entry = parse_fiche(write_fiche(body=body))
    assert [(c.role, c.names) for c in entry.credits] == [
        ("Réalisation", ("Ana Diaz", "Léo Martin")),
        ("Voix", ("Zoé", "Paul")),
    ]
    assert entry.licence is not None
    assert (entry.licence.name, entry.licence.url) == ("Tous droits réservés", None)
    assert entry.transcript == ""


def test_find_fiches_walks_folders_in_order_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("b/2.md", "a.md", ".hidden.md", ".git/x.md", "notes.txt"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    found = find_fiches([tmp_path])
    assert [f.relpath for f in found] == ["a.md", "b/2.md"]


# -- every kind of bad fiche -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        pytest.param(
            "---\ntitle: [unclosed\nvideoEmbedSrc: https://x.org/v\n---\n",
            "front matter",
            "malformed YAML at line 3: ",
            id="malformed-yaml",
        ),
        pytest.param(
            "---\nvideoEmbedSrc: https://x.org/v\n---\n",
            "title",
            "missing required field",
            id="missing-title",
        ),
        pytest.param(
            "---\ntitle: '  '\nvideoEmbedSrc: https://x.org/v\n---\n",
            "title",
            "missing required field",
            id="blank-title",
        ),
        pytest.param(
            "---\ntitle: T\narea: Domaine\n---\n",
            "videoDLHref",
            "no video URL: the fiche needs videoDLHref or videoEmbedSrc",
            id="no-video-url",
        ),
        pytest.param(
            "---\ntitle: [a, b]\nvideoEmbedSrc: https://x.org/v\n---\n",
            "title",
            "expected text, got a list",
            id="title-list",
        ),
        pytest.param(
            "---\ntitle: T\narea: 4\nvideoEmbedSrc: https://x.org/v\n---\n",
            "area",
            "expected text, got a number",
            id="area-number",
        ),
        pytest.param(
            "---\ntitle: T\nvideoDLHref: file:///etc/passwd\n---\n",
            "videoDLHref",
            "URL scheme must be http or https, got 'file'",
            id="file-scheme",
        ),
        pytest.param(
            "---\ntitle: T\nvideoEmbedSrc: javascript:alert(1)\n---\n",
            "videoEmbedSrc",
            "URL scheme must be http or https, got 'javascript'",
            id="javascript-scheme",
        ),
        pytest.param(
            "---\ntitle: T\nvideoDLHref: https://x.org/v\nfichePdfHref: ftp://x.org/f.pdf\n---\n",
            "fichePdfHref",
            "URL scheme must be http or https, got 'ftp'",
            id="asset-scheme",
        ),
        pytest.param(
            "---\ntitle: T\nvideoDLHref: https:///nohost\n---\n",
            "videoDLHref",
            "URL has no host",
            id="no-host",
        ),
        pytest.param(
            "---\ntitle: !!python/object/apply:os.system ['touch pwned']\n"
            "videoEmbedSrc: https://x.org/v\n---\n",
            "front matter",
            "malformed YAML at line 2: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
            id="python-tag",
        ),
        pytest.param(
            "---\n- just\n- a list\n---\n",
            "front matter",
            "must be a mapping of fields, got a list",
            id="not-a-mapping",
        ),
        pytest.param("# Titre\n\nPas de front matter.\n", "front matter", "missing", id="no-fm"),
        pytest.param("---\ntitle: T\n", "front matter", "not closed", id="unclosed-fm"),
        pytest.param(
            "---\ntitle: T\nvideoDLHref: https://x.org/v\nvideoSize: -3\n---\n",
            "videoSize",
            "expected a size in bytes",
            id="negative-size",
        ),
        pytest.param(
            "---\ntitle: T\nvideoDLHref: https://x.org/v\nvideoSha256: abc\n---\n",
            "videoSha256",
            "expected 64 hexadecimal digits",
            id="short-sha256",
        ),
        pytest.param(
            "---\ntitle: T\nvideoEmbedSrc: https://x.org/videos/embed/"
            "11111111-2222-4333-8444-555555555555\nvideoDLHref: https://x.org/videos/"
            "99999999-2222-4333-8444-555555555555-720.mp4\n---\n",
            "videoDLHref",
            "names video 99999999-2222-4333-8444-555555555555 but videoEmbedSrc names "
            "11111111-2222-4333-8444-555555555555",
            id="mismatched-uuids",
        ),
        pytest.param(
            "---\ntitle: T\nvideoDLHref: https://x.org/v\n---\n## Crédits\n"
            "- **Licence** : [CC](javascript:alert(1))\n",
            "Crédits: Licence",
            "URL scheme must be http or https",
            id="licence-url",
        ),
    ],
)
def test_bad_fiche_is_named_with_field_and_reason(
    write_fiche: WriteFiche, text: str, field: str, reason: str
) -> None:
    path = write_fiche("bad.md", text=text)
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    assert caught.value.path == str(path)
    assert caught.value.field == field
    assert caught.value.reason.startswith(reason)
    assert caught.value.message.startswith(f"{path}: {field}: {reason}")


def test_yaml_tag_never_runs_anything(write_fiche: WriteFiche, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write_fiche(
        "evil.md",
        text=(
            f"---\ntitle: !!python/object/apply:os.system ['touch {marker}']\n"
            "videoEmbedSrc: https://x.org/v\n---\n"
        ),
    )
    with pytest.raises(FicheError):
        parse_fiche(path)
    assert not marker.exists()


def test_not_utf8_is_named_with_offset(write_fiche: WriteFiche) -> None:
    path = write_fiche("latin1.md", text="---\ntitle: Élève\n---\n".encode("latin-1"))
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    assert caught.value.message == f"{path}: not UTF-8 text (invalid byte at offset 11)"


def test_oversized_file_is_refused_without_reading_it_all(write_fiche: WriteFiche) -> None:
    path = write_fiche("big.md", text=b"---\ntitle: T\n---\n" + b"x" * MAX_FICHE_BYTES)
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    assert caught.value.message == f"{path}: larger than 1024 KiB; not a fiche"


def test_malformed_yaml_line_counts_leading_blank_lines(write_fiche: WriteFiche) -> None:
    path = write_fiche("blank.md", text="\n\n---\ntitle: ok\nbad: : :\n---\n")
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    assert "at line 5:" in caught.value.reason


def test_a_colon_in_a_value_says_how_to_quote_it(write_fiche: WriteFiche) -> None:
    """French typography puts a space before a colon; YAML reads a second key there."""
    text = (
        "---\ntitle: Travailler en équipe : outils\narea: Domaine 1\n"
        "videoDLHref: https://tube.example.org/a.mp4\n---\n## Script\n\nx\n"
    )
    path = write_fiche("equipe.md", text=text)
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    assert "malformed YAML at line 2: mapping values are not allowed" in caught.value.reason
    assert caught.value.hint == (
        "line 2 has a colon inside its value: put the whole value in quotes:"
        ' title: "Travailler en équipe : outils"'
    )
    quoted = text.replace(": Travailler en équipe : outils", ': "Travailler en équipe : outils"')
    assert parse_fiche(write_fiche("ok.md", text=quoted)).title == "Travailler en équipe : outils"


# -- fiches as teachers write them: typos, no credits, no licence (issue 15) -----------------

LICENCE = (
    "## Crédits\n\n- **Licence** : [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/)\n"
)
EMBED_URL = "https://tube.example.org/videos/embed/11111111-2222-4333-8444-55555555555{}"
EMBED = f"videoEmbedSrc: {EMBED_URL}"


def run_manifest(*args: str | Path) -> tuple[int, str, str]:
    """``archiver manifest ARGS``, as a teacher types it: exit code, stdout, stderr."""
    result = CliRunner().invoke(cli, ["manifest", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_a_typo_that_leaves_a_required_field_missing_names_the_field_meant(
    write_fiche: WriteFiche, tmp_path: Path
) -> None:
    tilte = write_fiche("a.md", text=f"---\ntilte: Une vidéo\n{EMBED.format(1)}\n---\n{LICENCE}")
    dl = write_fiche("b.md", text="---\ntitle: B\nvideoDlHref: https://x.org/b.mp4\n---\n")
    empty = write_fiche("c.md", text=f"---\ntitle:\nTitle: C\n{EMBED.format(3)}\n---\n{LICENCE}")
    out = tmp_path / "m.json"
    code, stdout, stderr = run_manifest(tmp_path / "fiches", "-o", out)
    assert (code, stdout) == (2, "")
    assert stderr.splitlines() == [
        f"Error: {tilte}: tilte: unknown field — did you mean title? (title is required)",
        f"Error: {dl}: videoDlHref: unknown field — did you mean videoDLHref?"
        " (the fiche needs videoDLHref or videoEmbedSrc)",
        f"Error: {empty}: Title: unknown field — did you mean title? (title is required)",
    ]
    assert not out.exists()
    # Not close to any field: the error it always was.
    far = write_fiche("a.md", text=f"---\nnom: Une vidéo\n{EMBED.format(1)}\n---\n{LICENCE}")
    assert run_manifest(far)[2] == f"Error: {far}: title: missing required field\n"


def test_an_unknown_field_close_to_a_known_one_warns_with_it_and_exit_is_0(
    write_fiche: WriteFiche, tmp_path: Path
) -> None:
    path = write_fiche(
        extra_yaml="descripton: Un résumé\nTitle: doublon\nAREA: D1\nArea: D2\nduree: 3"
    )
    out = tmp_path / "m.json"
    code, _, stderr = run_manifest(path, "-o", out)
    assert code == 0
    assert stderr.splitlines() == [
        # Each known field is offered once; `title` is there, so `Title` is no typo of it.
        f"Warning: {path}: AREA: unknown field — did you mean area? (kept as extra)",
        f"Warning: {path}: descripton: unknown field — did you mean description? (kept as extra)",
        f"Warning: {path}: unknown front-matter field(s) kept as extra: Area, Title, duree",
        f"Manifest: 1 entry written to {out}",
    ]
    (entry,) = json.loads(out.read_text(encoding="utf-8"))["entries"]
    assert entry["extra"]["descripton"] == "Un résumé" and entry["description"] is None
    assert run_manifest(path, "-o", out, "-q") == (0, "", "")


def test_no_credits_or_no_licence_warns_with_what_the_kit_will_say(
    write_fiche: WriteFiche, tmp_path: Path
) -> None:
    bare = write_fiche("a.md", body="## Script\n\nBonjour.\n")
    empty = write_fiche(
        "b.md", body="## Script\n\nBonjour.\n\n## Crédits\n\n", embed=EMBED_URL.format(2)
    )
    unlicensed = write_fiche(
        "c.md",
        body="## Crédits\n\n- **Scénario** : Ana Diaz\nLicence : CC BY\n",
        embed=EMBED_URL.format(3),
    )
    write_fiche("d.md", embed=EMBED_URL.format(4))  # credits and licence: nothing to say
    code, stdout, stderr = run_manifest(tmp_path / "fiches")
    assert code == 0
    assert len(json.loads(stdout)["entries"]) == 4
    no_credits = (
        ": no credits and no licence (## Crédits is missing or empty); the kit will say"
        ' "Aucune licence n’est indiquée"'
    )
    assert stderr.splitlines() == [
        f"Warning: {bare}{no_credits}",
        f"Warning: {empty}{no_credits}",
        f'Warning: {unlicensed}: ## Crédits: no licence line ("- **Licence** : [name](url)");'
        ' the kit will say "Aucune licence n’est indiquée"',
    ]


def test_kit_page_says_what_the_licence_warning_quotes() -> None:
    """The warning quotes the kit's words; they must stay the kit's."""
    template = Path(kit.__file__).parent / "templates" / "video.html"
    assert "Aucune licence n’est indiquée" in template.read_text(encoding="utf-8")


def test_typo_suggestions_are_bounded(write_fiche: WriteFiche) -> None:
    """A hostile fiche: names too long to compare, and many of them, cost no more than a few."""
    assert suggest_field("t" * 10_000 + "itle", KNOWN_FIELDS) is None
    assert suggest_field("tilte", KNOWN_FIELDS - {"title"}) is None
    many = "".join(f"Title{i:05d}: x\n" for i in range(20_000))  # none close enough
    path = write_fiche("many.md", text=f"---\n{many}tilte: T\n{EMBED.format(1)}\n---\n")
    with pytest.raises(FicheError) as caught:
        parse_fiche(path)
    # Past the first 100 unknown names, none is compared: the plain error.
    assert caught.value.message == f"{path}: title: missing required field"


# Values that look like text but that YAML reads otherwise, or not at all, beside plain ones.
_TRICKY_VALUES = [
    "Domaine 4", "Vidéo — Différencier, adapter", "https://tube.example/w/abc?x=1#t",
    "yes", "No", "on", "OFF", "true", "~", "null", "Null", "12", "-3", "+4", "0x1F", "0o17",
    "1_000", "1.5", ".5", ".nan", ".inf", "1e3", "2024-02-01", "2024-02-30", "12:30:00",
    "190:20:30", "<<", "=", "a: b", "a:b", "fin :", "a # b", "a#b", "#b", "&anchor x",
    "*alias", "!!str x", "!tag x", "|", ">", "'quoted'", '"quoted"', "it's", 'say "hi"',
    "%x", "@x", "`x", "? x", "- x", "-x", ",x", "[a, b]", "{a: b}", "a [b]", "a{b}",
    "tab\there", "nbsp\xa0here", "line\u2028break", "next\x85line", "bom\ufeffhere", "é",
    "back\\slash", "trailing ", " leading", "a  b", "x" * 2000, "Y", "n", "N", "+", ".",
]  # fmt: skip


def test_simple_front_matter_reads_as_libyaml_does() -> None:
    """The fast reading of ``name: text`` lines gives exactly what libyaml gives, and leaves
    to libyaml whatever it would read as something else than that text (or refuse)."""
    import random

    import yaml

    from archiver import front_matter

    def libyaml(fm: str) -> object:
        try:
            return yaml.load(fm, Loader=front_matter._FICHE_LOADER)  # noqa: S506 - safe
        except yaml.YAMLError:
            return "refused"

    names = ["title", "area", "yes", "null", "on", "x2", "video_DL", "Title"]
    taken = 0
    for value in _TRICKY_VALUES:
        for name in names:
            fm = f"\n{name}: {value}\n"
            fast = front_matter._simple_fields(fm)
            if fast is not None:
                taken += 1
                assert fast == libyaml(fm) == {name: value}, fm
    rng = random.Random(14)
    # Mostly letters, so that many values are plain text, and every character YAML minds.
    alphabet = "abcdefghijklmnop é—" * 3 + " :#,-'\"[]{}&*!|>%@`?\t\\.0123\xa0"
    for _ in range(5000):
        lines = [
            f"{rng.choice(names)}: {''.join(rng.choices(alphabet, k=rng.randint(1, 12)))}"
            for _ in range(rng.randint(1, 4))
        ]
        fm = "\n" + "\n\n".join(lines) + "\n"
        fast = front_matter._simple_fields(fm)
        if fast is not None:
            taken += 1
            assert fast == libyaml(fm), fm
    assert taken > 400  # the fast reading is taken, for the values it is meant for
    for refused in ["12", "yes", "a: b", "fin :", "a # b", "tab\there", "[a, b]", "trailing "]:
        assert front_matter._simple_fields(f"\ntitle: {refused}\n") is None
    assert front_matter._simple_fields("\ntitle: a\ntitle: b\n") is None  # YAML keeps b


def test_fiches_parse_the_same_with_the_fast_front_matter_as_with_libyaml(
    write_fiche: WriteFiche, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver import front_matter

    paths = [
        SEED,
        write_fiche("a.md", title="Outils, méthodes — et « guillemets »", extra_yaml="area: D 2"),
        write_fiche("b.md", title="'Cité'", extra_yaml='description: "Deux-points: ici"\nn: 3'),
    ]
    fast = [parse_fiche(path) for path in paths]
    assert front_matter._simple_fields(paths[0].read_text().split("---")[1]) is not None
    # Another loader class, the same in all but name: the fast reading is not taken.
    monkeypatch.setattr(
        front_matter._SafeYAMLHandler, "loader", type("L", (front_matter._FICHE_LOADER,), {})
    )
    assert [parse_fiche(path) for path in paths] == fast


def test_each_of_several_fiches_with_a_colon_gets_its_own_quoted_fix(
    write_fiche: WriteFiche, tmp_path: Path
) -> None:
    # Issue 15's collection: 15 of 17 fiches wrote "Titre : sous-titre". Each line says how
    # to quote its own value, not only when one fiche alone is wrong.
    for name, title in (("a.md", "Travailler en équipe : outils"), ("b.md", "Évaluer : QCM")):
        write_fiche(
            name,
            text=f"---\ntitle: {title}\narea: Domaine 1\n"
            f"videoDLHref: https://tube.example.org/{name}.mp4\n---\n{LICENCE}",
        )
    code, stdout, stderr = run_manifest(tmp_path / "fiches")
    assert (code, stdout) == (2, "")
    lines = stderr.splitlines()
    for title in ("Travailler en équipe : outils", "Évaluer : QCM"):
        [line] = [line for line in lines if f'title: "{title}"' in line]
        assert line.startswith("Error: ") and "mapping values are not allowed" in line


def test_the_parse_keeps_no_long_text_in_its_caches(write_fiche: WriteFiche) -> None:
    """URLs and headings checked once a process are kept only when short: a hostile
    collection's megabyte-long ones would otherwise stay in memory, 1,024 of each."""
    from archiver import fiches

    long_url = "https://example.org/" + "a" * 100_000
    body = f"## Crédits\n\n- **{'R' * 50_000}** : A\n- **Licence** : [CC]({long_url})\n"
    fiches._url_problem_cached.cache_clear()
    fiches._fold_cached.cache_clear()
    entry = parse_fiche(write_fiche("long.md", body=body))
    assert entry.licence is not None and entry.licence.url == long_url
    assert entry.credits[0].role == "R" * 50_000
    assert fiches._url_problem_cached.cache_info().currsize == 1  # the embed URL alone
    assert fiches._fold_cached.cache_info().currsize == 2  # "Crédits" and "Licence"


def test_the_front_matter_splits_as_python_frontmatter_does() -> None:
    """load_front_matter splits a fiche once where python-frontmatter's parse strips and
    splits it again: on texts made of boundaries, blanks and fields, both read the same
    fields and the same Markdown (or both refuse)."""
    import random

    import frontmatter

    from archiver import front_matter

    pieces = ["---", "----", "--- ", "-- -", "\n", "\n", "\n\n", " ", "\t", "\x0b", "\x0c"]
    pieces += ["title: a", "n: 3", "## Script", "texte", "---x", "  ---"]
    rng = random.Random(14)
    compared = 0
    for _ in range(5000):
        # Line ends are already "\n" (load_front_matter's contract; python-frontmatter's
        # parse makes "\r\n" so itself).
        text = "".join(rng.choices(pieces, k=rng.randint(1, 14)))
        if rng.random() < 0.7:
            middle = len(text) // 2
            text = f"{text[:middle]}\n---\n{text[middle:]}"
        if rng.random() < 0.8:
            text = rng.choice(["", " ", "\n \n"]) + "---\n" + text
        try:
            ours = front_matter.load_front_matter(text, Path("a.md"))
        except FicheError as exc:
            if "front matter" in str(exc) and ("missing" in str(exc) or "closed" in str(exc)):
                continue  # refused before any split: what python-frontmatter is never given
            ours = None
        try:
            theirs = frontmatter.parse(text, handler=front_matter._HANDLER)
        except Exception:  # refused, as ours must then be: compared below
            theirs = None
        compared += 1
        assert ours == theirs, repr(text)
    assert compared > 2000, compared
