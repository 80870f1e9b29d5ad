"""The fuzz suite: archiver driven as a user would, over hostile fiches, manifests, config files
and HTTP answers, with the design's invariants checked for every input.

For every input: the exit code is 0, 1 or 2 (never 70, never a traceback); nothing outside the
archive and the kit appears, changes or disappears (a sandbox with victims around them); what
is printed cannot drive a terminal nor show a URL's password; every file kept is what it
claims to be and no kit page carries the input's markup; memory and time stay bounded (a child
process under an address-space limit and a deadline, for the inputs built to exhaust them).
The ground (sandbox, runs, strategies, the faulty server route) is in ``fuzz_support``.

Runs are reproducible (``derandomize``, no example database); most run in this process
through click's runner, which is fast; the few whose point is a bound run in a child.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from archiver.errors import ArchiverError
from archiver.manifest import load_manifest

from .conftest import SEED, SEED_UUID
from .fuzz_support import (
    PDF,
    TARGETS,
    Answer,
    FaultyRoute,
    Fiche,
    Genuine,
    Mutation,
    Outcome,
    Raw,
    Sandbox,
    Slow,
    alias_bomb,
    answers,
    changes,
    config_files,
    content_problems,
    encode,
    fiche_files,
    mutate,
    mutations,
    problems_of,
    report,
    run_bounded,
    run_in_process,
    write_fiches,
)
from .peertube import FakeInstance, PublishedVideo
from .peertube_api import captions_json, to_json, video_details
from .server import FileServer

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
        # The fake instance is made once per test, not per example: that is the point.
        HealthCheck.function_scoped_fixture,
    ],
)
# A failing run in a child can take the whole time limit: shrinking would take minutes, and
# the explicit examples are small already.
BOUNDED = settings(FUZZ, phases=[Phase.explicit, Phase.generate])
QUICK = ("--retries", "0", "--timeout", "2")
# In a child, where a stall is the point: half a second without a byte is one on the loopback
# (and a slow machine failing an item instead is still an answer the suite accepts).
QUICKER = ("--retries", "0", "--timeout", "0.5")
# More examples for a longer hunt: ARCHIVER_FUZZ_SCALE=20 pytest tests/test_fuzz.py
SCALE = float(os.environ.get("ARCHIVER_FUZZ_SCALE", "1"))


def examples(count: int) -> int:
    return max(1, round(count * SCALE))


VTT = "WEBVTT\n\n00:00.000 --> 00:01.000\nBonjour <b>la classe</b>\n"

# The first lines of what each command prints on stderr: anything else is a message spilling
# over a second line (a newline from the input, a multi-line library error).
LINE_PREFIXES = (
    "Error: ", "Warning: ", "Hint: ", "Manifest: ", "Download: ", "Kit: ", "Verify: ",
    "Sync: ", "Prune: ", "Usage: ", "Try '",
)  # fmt: skip


# -- the ground of every test ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@contextlib.contextmanager
def sandbox(parent: Path) -> Iterator[Sandbox]:
    box = Sandbox.create(parent)
    try:
        yield box
    finally:
        shutil.rmtree(box.root, ignore_errors=True)


def line_problems(outcome: Outcome) -> list[str]:
    """Lines of stderr that are not one of the known kinds: a message on several lines."""
    return [
        f"a line of stderr that is no message of its own: {line[:120]!r}"
        for line in outcome.stderr.split("\n")
        if line and not line.startswith(LINE_PREFIXES)
    ]


class BadExit(AssertionError):
    """Exit 70, another unexpected code, a crash or a traceback."""


class Unbounded(AssertionError):
    """Killed at the time limit, or past the memory bound."""


class WroteOutside(AssertionError):
    """Something appeared, changed or disappeared outside the archive and the kit."""


class UnsafeOutput(AssertionError):
    """A terminal control, a password, or a message spilling over several lines."""


class BadContent(AssertionError):
    """A kept file that is not what its name says, or a kit page with the input's markup."""


class BrokenPromise(AssertionError):
    """Another promise of the design: a manifest that does not load back, a kit that does
    not verify, a second run that changes what the first wrote."""


_KINDS: list[tuple[type[AssertionError], tuple[str, ...]]] = [
    (BadExit, ("exit code", "an exception escaped", "a traceback")),
    (Unbounded, ("still running", "peak resident")),
    (WroteOutside, ("appeared: ", "disappeared: ", "changed: ")),
    (UnsafeOutput, ("a terminal control", "a URL's password", "a line of stderr")),
    (BadContent, (" file that begins ", "carries markup", "a scripted link")),
]


def expect(outcome: Outcome, *extra: str, codes: Sequence[int] = (0, 1, 2)) -> None:
    """Fail when the run or its ``extra`` checks found anything, with one exception class per
    kind of problem, so that Hypothesis reports each kind as a bug of its own."""
    found = [*problems_of(outcome, codes=codes), *line_problems(outcome), *extra]
    if not found:
        return
    message = report(outcome, found)
    kinds = {
        next((kind for kind, marks in _KINDS if any(m in line for m in marks)), BrokenPromise)
        for line in found
    }
    # One raise statement per kind: Hypothesis tells bugs apart by where they are raised.
    if BadExit in kinds:
        raise BadExit(message)
    if Unbounded in kinds:
        raise Unbounded(message)
    if WroteOutside in kinds:
        raise WroteOutside(message)
    if BadContent in kinds:
        raise BadContent(message)
    if UnsafeOutput in kinds:
        raise UnsafeOutput(message)
    raise BrokenPromise(message)


@dataclass
class Instance:
    """The loopback PeerTube instance with the seed's video, the seed's fiche and manifest
    pointing at it, a faulty route in front of it, and an archive and a kit already made."""

    server: FileServer
    tube: FakeInstance
    video: PublishedVideo
    route: FaultyRoute
    fiches: Path  # a folder holding the seed's fiche, with its URLs on the loopback
    manifest: Any  # the manifest archiver made of it, parsed
    archive: Path  # that manifest downloaded
    kit: Path  # and packaged

    def __repr__(self) -> str:
        return f"Instance({self.tube.url})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints a failing example's arguments, fixtures too: not the video's bytes.
        printer.text(repr(self))


@pytest.fixture
def instance(_file_server: FileServer, tmp_path: Path) -> Iterator[Instance]:
    server = _file_server
    server.reset()
    genuine = Genuine({})
    route = FaultyRoute(server, genuine, tmp_path)
    server.route("/", route)  # before the instance's own route: asked first
    tube = FakeInstance(server, api_max=1_000_000)
    video = tube.publish(SEED_UUID, heights=(360,), captions={"fr": VTT})
    server.add("/fiche.pdf", PDF, content_type="application/pdf")
    server.add(
        "/transcription.pdf", PDF.replace(b"1 0 obj", b"2 0 obj"), content_type="application/pdf"
    )
    genuine.answers.update(
        {
            "api": (to_json(video_details(video, tube.url)), "application/json; charset=utf-8"),
            "captions-api": (captions_json(video, tube.url), "application/json; charset=utf-8"),
            "segments": (to_json(video.segments), "application/json"),
            "video": (video.files[360].data, "video/mp4"),
            "preview": (video.preview, "image/jpeg"),
            "caption": (VTT.encode(), "text/vtt; charset=UTF-8"),
            "fiche-pdf": (PDF, "application/pdf"),
            "transcript-pdf": (PDF, "application/pdf"),
        }
    )
    fiches = tmp_path / "fiches"
    fiches.mkdir()
    text = SEED.read_text(encoding="utf-8").replace("https://tube.reseau-canope.fr", tube.url)
    text = text.replace("-1080-fragmented", "-360-fragmented").replace(
        "\n---\n",
        f"\nfichePdfHref: {server.url('/fiche.pdf')}\ntranscriptPdfHref: {server.url('/transcription.pdf')}\n---\n",
        1,
    )
    (fiches / SEED.name).write_text(text, encoding="utf-8")
    made = tmp_path / "made"
    made.mkdir()
    steps = [
        ["manifest", fiches, "-o", made / "manifest.json"],
        ["download", made / "manifest.json", "--archive", made / "archive", *QUICK],
        ["package", made / "manifest.json", "--archive", made / "archive", "-o", made / "kit"],
    ]
    for step in steps:
        outcome = run_in_process(step, cwd=made)
        assert outcome.code == 0, report(outcome, ["the seed does not go through"])
    yield Instance(
        server=server,
        tube=tube,
        video=video,
        route=route,
        fiches=fiches,
        manifest=json.loads((made / "manifest.json").read_bytes()),
        archive=made / "archive",
        kit=made / "kit",
    )
    errors = list(server.errors)
    server.reset()
    assert errors == [], "the test server's handlers raised"


# -- fiches ----------------------------------------------------------------------------------


@settings(FUZZ, max_examples=examples(50))
@given(fiches=st.lists(fiche_files(), min_size=1, max_size=2, unique_by=lambda f: f.name))
def test_any_fiche_gives_a_manifest_or_a_line_per_error(
    fiches: list[Fiche], sandboxes: Path
) -> None:
    """Fiches of every shape: YAML tags, aliases, dates, numbers, encodings, names."""
    with sandbox(sandboxes) as box:
        folder = box.work / "fiches"
        write_fiches(folder, fiches, box)
        out = box.work / "manifest.json"
        before = box.snapshot([out])
        outcome = run_in_process(["manifest", folder, "-o", out], cwd=box.work)
        found = changes(before, box.snapshot([out]))
        if outcome.code == 0:
            found += _manifest_problems(out, folder, box)
        elif out.exists():
            found.append(f"exit {outcome.code}, yet the manifest was written")
        expect(outcome, *found)


def _manifest_problems(out: Path, folder: Path, box: Sandbox) -> list[str]:
    """What is wrong with a manifest archiver wrote: it must load back, and a second run on
    the same fiches must leave it as it is."""
    found = []
    try:
        load_manifest(out)
    except ArchiverError as exc:
        found.append(f"the manifest written does not load back: {exc}")
    written = out.read_bytes()
    again = run_in_process(["manifest", folder, "-o", out], cwd=box.work)
    if again.code != 0 or out.read_bytes() != written:
        found.append(f"a second run on the same fiches exits {again.code} or changes the manifest")
    return found


def _billion_laughs(depth: int, fanout: int, *, mapping: bool = False) -> bytes:
    lines = [
        "title: Rires",
        "videoDLHref: https://tube.example.org/a.mp4",
        *alias_bomb(depth, fanout, mapping=mapping),
    ]
    return ("---\n" + "\n".join(lines) + "\n---\n").encode()


SPECIAL_FILES = ("fifo", "loop", "dangling", "folder", "zero", "victim-link", "device")


def _make_special(folder: Path, kind: str, box: Sandbox) -> None:
    path = folder / f"{kind}.md"
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        path.symlink_to(path.name)
    elif kind == "dangling":
        path.symlink_to(box.root / "nowhere")
    elif kind == "folder":
        path.mkdir()
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "device":
        path.symlink_to("/dev/urandom")
    else:
        path.symlink_to(box.root / "victim" / "settings.json")


@settings(BOUNDED, max_examples=examples(1))
@given(
    fiches=st.lists(
        fiche_files(max_expansion=10**12), min_size=1, max_size=2, unique_by=lambda f: f.name
    ),
    specials=st.lists(st.sampled_from(SPECIAL_FILES), max_size=2, unique=True),
)
@example(
    fiches=[
        Fiche("rires.md", _billion_laughs(9, 9)),
        Fiche("cartes.md", _billion_laughs(25, 2, mapping=True)),
        Fiche(
            "boucle.md", b"---\ntitle: x\nvideoDLHref: https://a.example/b.mp4\nr: &r [*r]\n---\n"
        ),
    ],
    specials=[],
)
@example(fiches=[], specials=["fifo"])
@example(fiches=[], specials=["zero", "device", "loop", "dangling", "folder", "victim-link"])
def test_no_fiche_folder_exhausts_memory_or_time(
    fiches: list[Fiche], specials: list[str], sandboxes: Path
) -> None:
    """Alias bombs, self-referencing aliases, and what a folder may hold besides files: a pipe
    nobody writes to, links to devices, loops, in a child process under a memory limit."""
    with sandbox(sandboxes) as box:
        folder = box.work / "fiches"
        write_fiches(folder, fiches, box)
        for kind in specials:
            _make_special(folder, kind, box)
        out = box.work / "manifest.json"
        before = box.snapshot([out])
        outcome = run_bounded(["manifest", folder, "-o", out], cwd=box.work)
        expect(outcome, *changes(before, box.snapshot([out])))


# -- manifests -------------------------------------------------------------------------------

MANIFEST_HOT = [
    ("entries",), ("entries", 0), ("entries", 0, "id"), ("entries", 0, "peertube"),
    ("entries", 0, "peertube", "uuid"), ("entries", 0, "peertube", "instance"),
    ("entries", 0, "video", "url"), ("entries", 0, "video", "embed_url"),
    ("entries", 0, "video", "size"), ("entries", 0, "video", "sha256"), ("entries", 0, "assets"),
    ("entries", 0, "assets", 0, "kind"), ("entries", 0, "assets", 0, "url"),
    ("entries", 0, "assets", 1, "kind"), ("entries", 0, "source", "path"),
    ("entries", 0, "title"), ("entries", 0, "description"), ("entries", 0, "transcript"),
    ("entries", 0, "credits", 0, "role"), ("entries", 0, "credits", 0, "names"),
    ("entries", 0, "licence", "url"), ("entries", 0, "licence", "name"), ("entries", 0, "extra"),
    ("schema_version",),
]  # fmt: skip
WHOLE_FILE = [None] * 14 + ["cut", "bom", "latin-1", "empty", "nul", "folder"]


def _write_document(path: Path, text: str, damage: str | None, *, cut: float = 0.5) -> None:
    data = text.encode("utf-8", "surrogatepass")
    if damage == "folder":
        path.mkdir()
        return
    if damage == "cut":
        data = data[: int(len(data) * cut)]
    elif damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "latin-1":
        data = data.replace("é".encode(), b"\xe9")
    elif damage == "empty":
        data = b""
    elif damage == "nul":
        data = data.replace(b'"entries"', b'"entr\x00ies"')
    path.write_bytes(data)


def _run_pipeline(
    box: Sandbox, manifest: Path, *, fetches: int = 1, planted: Sequence[Path] = ()
) -> list[Outcome]:
    """download (``fetches`` times), package, and verify the kit made; every run's invariants
    and the files' are checked as it goes. ``planted`` files are the user's, in the archive's
    or the kit's folder: they must stay as they are."""
    allowed = box.allowed(box.archive, box.kit, but=planted)
    before = box.snapshot(allowed)
    runs = []
    for _ in range(fetches):
        runs.append(
            run_in_process(["download", manifest, "--archive", box.archive, *QUICK], cwd=box.work)
        )
        expect(runs[-1], *changes(before, box.snapshot(allowed)))
    runs.append(
        run_in_process(["package", manifest, "--archive", box.archive, "-o", box.kit], cwd=box.work)
    )
    expect(
        runs[-1],
        *changes(before, box.snapshot(allowed)),
        *content_problems(box.archive / "media", box.kit),
    )
    if runs[-1].code in (0, 1):
        runs.append(run_in_process(["verify", box.kit], cwd=box.work))
        expect(runs[-1], codes=(0,))
    return runs


def _reference_manifest() -> Any:
    """The shape changes to a manifest are drawn against: the bundled collection's manifest,
    with the two companion files the test's seed has (the manifest the test runs is made by
    archiver from that seed; a change to a path it lacks is skipped)."""
    document = json.loads((Path(__file__).parents[1] / "manifests" / "default.json").read_bytes())
    document["entries"][0]["assets"] = [
        {"kind": "fiche_pdf", "url": "https://tube.example.org/fiche.pdf"},
        {"kind": "transcript_pdf", "url": "https://tube.example.org/transcription.pdf"},
    ]
    return document


REFERENCE_MANIFEST = _reference_manifest()
ENTRY = ("entries", 0)
# The known ways a manifest went wrong, each tried on every run; Hypothesis adds more.
KNOWN_CHANGES: list[list[Mutation]] = [
    [Mutation("set", (*ENTRY, "peertube", "uuid"), "../../victim/settings")],
    [
        Mutation("set", (*ENTRY, "id"), ".."),
        Mutation("set", (*ENTRY, "assets", 0, "kind"), "../../victim/index"),
    ],
    [Mutation("set", (*ENTRY, "video", "url"), "@BASE@/index.html")],
    [
        Mutation(
            "set", (*ENTRY, "assets", 0, "url"), "@BASE@/download.php?f=../../victim/settings.json"
        ),
        Mutation(
            "set", (*ENTRY, "assets", 1, "url"), "@BASE@/download.php?f=../../victim/settings.json"
        ),
    ],
    [
        Mutation("set", (*ENTRY, "title"), "</title><x-fuzz onload=alert(1)>\x1b]0;pwned\x07"),
        Mutation("set", (*ENTRY, "transcript"), "<x-fuzz>[lien](javascript:alert(1))</x-fuzz>"),
        Mutation("clone", ENTRY, "peertube"),
    ],
]
plausible_changes = st.lists(
    mutations(REFERENCE_MANIFEST, MANIFEST_HOT, plausible=True), min_size=1, max_size=3
)
wild_changes = st.lists(mutations(REFERENCE_MANIFEST, MANIFEST_HOT), min_size=1, max_size=3)


@settings(FUZZ, max_examples=examples(12))
@given(
    changed=st.one_of(plausible_changes, wild_changes),
    damage=st.sampled_from(WHOLE_FILE),
    held=st.booleans(),
    foreign=st.sampled_from(["neither", "neither", "kit", "archive", "both"]),
)
@example(changed=KNOWN_CHANGES[0], damage=None, held=False, foreign="neither")
@example(changed=KNOWN_CHANGES[1], damage=None, held=True, foreign="neither")
@example(changed=KNOWN_CHANGES[2], damage=None, held=False, foreign="neither")
@example(changed=KNOWN_CHANGES[3], damage=None, held=False, foreign="archive")
@example(changed=KNOWN_CHANGES[4], damage=None, held=True, foreign="neither")
@example(changed=[], damage=None, held=True, foreign="kit")
def test_any_manifest_is_fetched_and_packaged_within_the_archive_and_kit(
    changed: list[Mutation],
    damage: str | None,
    held: bool,
    foreign: str,
    instance: Instance,
    sandboxes: Path,
) -> None:
    """Manifests archiver made, then changed: ids, UUIDs and kinds that are paths, URLs of
    every scheme, sizes, types, nesting, duplicate keys and entries; archive and kit folders
    that hold a user's files (the ``foreign`` one)."""
    with sandbox(sandboxes) as box:
        manifest = box.work / "manifest.json"
        text = box.fill(encode(mutate(instance.manifest, changed)), instance.server.url(""))
        _write_document(manifest, text, damage)
        if held:
            shutil.copytree(instance.archive, box.archive, symlinks=True)
        planted = []
        if foreign in ("kit", "both"):
            planted += box.plant(box.kit)
        if foreign in ("archive", "both"):
            planted += box.plant(box.archive)
        _run_pipeline(box, manifest, planted=planted)


# -- config files ----------------------------------------------------------------------------


def _config_commands(box: Sandbox) -> dict[str, list[str | Path]]:
    inputs = box.work / "in"
    return {
        "manifest": ["manifest", inputs / "fiches", "-o", "out.json"],
        "download": ["download", inputs / "manifest.json", "--archive", "archive"],
        "package": ["package", inputs / "manifest.json", "--archive", "archive", "-o", "kit"],
        "sync": ["sync", inputs / "fiches", "--archive", "archive", "--kit", "kit"],
        "verify": ["verify", "kit"],
        "audit": ["verify", "--archive", "archive"],
        "status": ["status", "--archive", "archive"],
        "prune": ["prune", "--archive", "archive", "--retired-before", "2000-01-01", "--dry-run"],
    }


@settings(FUZZ, max_examples=examples(30))
@given(
    config=config_files(),
    command=st.sampled_from(
        ["manifest", "download", "package", "sync", "verify", "audit", "status", "prune"]
    ),
    first=st.booleans(),
)
@example(config=b"timeout = nan\n", command="download", first=False)
@example(config=b"jobs = -1\n", command="download", first=True)
@example(config=b'rate_limit = "fast"\n', command="sync", first=False)
@example(config=b'title = "caf\xe9"\n', command="package", first=False)
@example(config=b"[download]\nretries = [1, 2]\n", command="download", first=False)
@example(config=b"refresh_after = 1979-05-27\n", command="sync", first=True)
@example(config=b'config = "a\\nb"\n', command="status", first=True)
def test_any_config_file_is_used_or_refused_in_one_line(
    config: bytes, command: str, first: bool, instance: Instance, sandboxes: Path
) -> None:
    """``--config`` files with wrong types, unknown keys, values the command line refuses,
    bytes that are not UTF-8, before the command's name or after it."""
    with sandbox(sandboxes) as box:
        inputs = box.work / "in"
        shutil.copytree(instance.fiches, inputs / "fiches")
        (inputs / "manifest.json").write_text(encode(instance.manifest), encoding="utf-8")
        (inputs / "config.toml").write_bytes(
            box.fill(config.decode("latin-1"), instance.server.url("")).encode("latin-1", "replace")
        )
        shutil.copytree(instance.archive, box.archive, symlinks=True)
        shutil.copytree(instance.kit, box.kit, symlinks=True)
        args = _config_commands(box)[command]
        option = ["--config", inputs / "config.toml"]
        args = [*option, *args] if first else [args[0], *option, *args[1:]]
        # The config may name other outputs: anything in the work folder is the user's to ask
        # for, but the inputs and the victims there.
        mine = {
            str(inputs),
            *(str(box.work / name) for name in ("victim", "victim.json", "link-out")),
        }
        work = str(box.work) + os.sep

        def allowed(path: str) -> bool:
            return path.startswith(work) and not any(
                path == m or path.startswith(m + os.sep) for m in mine
            )

        before = box.snapshot(allowed)
        outcome = run_in_process(args, cwd=box.work)
        expect(outcome, *changes(before, box.snapshot(allowed)))


# -- HTTP answers ----------------------------------------------------------------------------

# The known ways a server's answer went wrong, each tried on every run; Hypothesis adds more.
FILE_URL = ("streamingPlaylists", 0, "files", 0, "fileDownloadUrl")
KNOWN_ANSWERS: list[dict[str, tuple[Answer, ...]]] = [
    {"api": (Answer(302, location="javascript:alert(1)"),)},
    {"fiche-pdf": (Answer(body="portal"),) * 2, "transcript-pdf": (Answer(body="other"),) * 2},
    {"api": (Answer(body="json", raw_json=Raw("[" * 100_000 + "]" * 100_000)),)},
    {"api": (Answer(body="json", changes=(Mutation("set", FILE_URL, "@BASE@/fiche.pdf"),)),)},
    {
        "captions-api": (
            Answer(body="json", changes=(Mutation("set", ("data", 0, "language", "id"), "../fr"),)),
        )
    },
    {
        "video": (
            Answer(body="cut", length="more"),
            Answer(206, headers=(("Content-Range", "bytes 5-2/1"),)),
        )
    },
    {
        "preview": (Answer(body="portal"),),
        "caption": (Answer(body="other"),),
        "segments": (Answer(body="garbage", garbage=b"\xff"),),
    },
]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, tuple[Answer, ...]]:
    """Spoilt answers for one to three targets: each meets one to three of them in a row."""
    targets = draw(st.lists(st.sampled_from(sorted(TARGETS)), min_size=1, max_size=3, unique=True))
    return {t: tuple(draw(st.lists(answers(t), min_size=1, max_size=3))) for t in targets}


@settings(FUZZ, max_examples=examples(12))
@given(spoilt=scenarios(), refresh=st.booleans())
@example(spoilt=KNOWN_ANSWERS[0], refresh=False)
@example(spoilt=KNOWN_ANSWERS[1], refresh=True)
@example(spoilt=KNOWN_ANSWERS[2], refresh=True)
@example(spoilt=KNOWN_ANSWERS[3], refresh=False)
@example(spoilt=KNOWN_ANSWERS[4], refresh=False)
@example(spoilt=KNOWN_ANSWERS[5], refresh=False)
@example(spoilt=KNOWN_ANSWERS[6], refresh=True)
def test_any_server_answer_fails_only_its_item(
    spoilt: dict[str, tuple[Answer, ...]], refresh: bool, instance: Instance, sandboxes: Path
) -> None:
    """The instance's API, the video, the companions, the preview, the captions answering
    wrong: statuses, bodies, lying lengths and ranges, bad validators, redirects anywhere.
    A first run meets the faults; a second resumes; then the kit is made and verified, or,
    on an archive that holds the seed already, a sync refreshes it all: a bad answer at a
    refresh never replaces the good file held."""
    with sandbox(sandboxes) as box:
        instance.route.play(spoilt, root=box.root)
        if not refresh:
            manifest = box.work / "manifest.json"
            manifest.write_text(encode(instance.manifest), encoding="utf-8")
            _run_pipeline(box, manifest, fetches=2)
            return
        shutil.copytree(instance.archive, box.archive, symlinks=True)
        shutil.copytree(instance.kit, box.kit, symlinks=True)
        fiches = box.work / "fiches"
        shutil.copytree(instance.fiches, fiches)
        allowed = box.allowed(box.archive, box.kit)
        before = box.snapshot(allowed)
        refreshed = ["sync", fiches, "--archive", box.archive, "--kit", box.kit]
        outcome = run_in_process([*refreshed, "--refresh-after", "0", *QUICK], cwd=box.work)
        found = changes(before, box.snapshot(allowed))
        expect(outcome, *found, *content_problems(box.archive / "media", box.kit))
        expect(run_in_process(["verify", box.kit], cwd=box.work), codes=(0,))


SLOW_TARGETS = [
    "api",
    "captions-api",
    "segments",
    "video",
    "preview",
    "caption",
    "fiche-pdf",
    "transcript-pdf",
]


@settings(BOUNDED, max_examples=examples(1))
@given(
    slow=st.dictionaries(
        st.sampled_from(SLOW_TARGETS),
        st.sampled_from(["trickle", "stall", "endless", "headers", "think"]).map(Slow),
        min_size=1,
        max_size=3,
    )
)
@example(
    slow={
        "api": Slow("trickle"),
        "video": Slow("stall"),
        "fiche-pdf": Slow("endless"),
        "transcript-pdf": Slow("trickle"),
    }
)
@example(slow={"api": Slow("endless"), "video": Slow("think"), "fiche-pdf": Slow("trickle")})
@example(
    slow={
        "captions-api": Slow("endless"),
        "segments": Slow("endless"),
        "preview": Slow("stall"),
        "caption": Slow("trickle"),
        "video": Slow("endless"),
        "transcript-pdf": Slow("headers"),
    }
)
def test_no_server_exhausts_memory_or_time(
    slow: dict[str, Slow], instance: Instance, sandboxes: Path
) -> None:
    """Answers that never end, trickle a byte at a time, stall, or bury the client in
    headers: the download ends in its time, within its memory, and names what failed."""
    # Every request of a target meets its fault (the fiche's own link is asked for too when
    # the API cannot answer).
    scenario = {target: (kind,) * 3 for target, kind in slow.items()}
    with sandbox(sandboxes) as box:
        instance.route.play(scenario, root=box.root)
        manifest = box.work / "manifest.json"
        manifest.write_text(encode(instance.manifest), encoding="utf-8")
        allowed = box.allowed(box.archive, box.kit)
        before = box.snapshot(allowed)
        outcome = run_bounded(
            ["download", manifest, "--archive", box.archive, *QUICKER], cwd=box.work
        )
        expect(
            outcome,
            *changes(before, box.snapshot(allowed)),
            *content_problems(box.archive / "media"),
        )


def test_the_fuzz_ground_sees_what_it_must(sandboxes: Path) -> None:
    """The checks themselves: a write to a victim, or to a user's file in the kit's folder,
    shows; a kit page with the input's markup, or a PDF that is a web page, shows; an exit 70,
    a traceback, a terminal control, a child's time and peak memory show."""
    with sandbox(sandboxes) as box:
        planted = box.plant(box.kit)
        allowed = box.allowed(box.archive, box.kit, but=planted)
        before = box.snapshot(allowed)
        (box.work / "victim" / "settings.json").write_text("{}")
        (box.root / "l1" / "new").write_text("x")
        (box.kit / "data" / "notes" / "a.txt").unlink()
        (box.kit / "data" / "archiver-made.txt").write_text("mine")
        (box.archive / "media").mkdir(parents=True)
        found = changes(before, box.snapshot(allowed))
        assert [line.split(":")[0] for line in found] == ["appeared", "disappeared", "changed"]
        (box.kit / "fiche.pdf").write_bytes(b"<html>")
        (box.kit / "page.html").write_text('<a href="javascript:x">t</a><x-fuzz>')
        assert len(content_problems(box.kit)) == 3
    bad = Outcome(
        ("x",), 70, "", "Error: internal error: \x1b[2J\nTraceback (most recent call last)", 0.1
    )
    assert len(problems_of(bad)) == 3
    assert encode({"a": [Raw("NaN"), float("inf")]}) == '{"a": [NaN, Infinity]}'
    twice = mutate({"a": {"b": 1}}, [Mutation("duplicate", ("a",), 2, "b")])
    assert encode(twice) == '{"a": {"b": 1, "b": 2}}'
    with sandbox(sandboxes) as box:
        version = run_bounded(["--version"], cwd=box.work)
        assert version.code == 0 and version.max_rss is not None and version.max_rss > 10 * 2**20
        cramped = run_bounded(["--version"], cwd=box.work, address_space=12 * 2**20)
        assert cramped.code != 0
        asleep = run_bounded(["manifest", box.work], cwd=box.work, timeout=0.05)
        assert asleep.code is None and problems_of(asleep)[0].startswith("still running")
