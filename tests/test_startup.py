"""Start-up and the idle time between files (issue 14's poor line): what a download imports,
the kit's path pattern that compiles at every start, and the slot a file gives back before
its checks and commit. The timings themselves are in ``bench/bench_poorline.py``; these
tests guard what makes them, so that the gain cannot silently regress."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import archiver
from archiver import media
from archiver.archive import Archive, FetchedFile, FileRecord
from archiver.fetch import DownloadSettings, Status, download_all
from archiver.fetch.http import make_client
from archiver.fetch.plan import Job
from archiver.fetch.tls import Certificates
from archiver.kit import ownership

from .conftest import content_of, fresh_python, make_entry
from .server import FileServer
from .test_segments import Counting

# What a download never uses: YAML and the fiches (a manifest is read as JSON), the kit's
# templates and Markdown, PyAV. Each costs tens of ms at every start.
NOT_FOR_A_DOWNLOAD = ("yaml", "frontmatter", "archiver.fiches", "jinja2", "markdown_it", "av")


def _loaded_after(statement: str, modules: tuple[str, ...] = NOT_FOR_A_DOWNLOAD) -> list[str]:
    """Which of ``modules`` a fresh interpreter holds after ``statement``."""
    code = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    )
    out = fresh_python(code)
    loaded: list[str] = json.loads(out)
    return loaded


@pytest.mark.parametrize("statement", ["import archiver", "import archiver.fetch"])
def test_a_download_imports_no_yaml_fiches_templates_or_pyav(statement: str) -> None:
    assert _loaded_after(statement) == []


def test_the_lazy_names_are_the_modules_own() -> None:
    # The names building a manifest needs come when first asked for, and are the real ones.
    from archiver import fiches, manifest

    assert archiver.build_manifest is manifest.build_manifest
    assert archiver.write_manifest is manifest.write_manifest
    assert archiver.dumps is manifest.dumps
    assert archiver.find_fiches is fiches.find_fiches
    assert archiver.parse_fiche is fiches.parse_fiche
    assert archiver.Manifest is manifest.Manifest
    assert set(archiver.__all__) <= set(dir(archiver))
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(archiver, "no_such_name")  # noqa: B009 - the name is the point


def test_the_kit_path_class_allows_exactly_what_it_always_did() -> None:
    # The class as it was written (all of Unicode but the forbidden characters), against the
    # ASCII class that compiles in 0.5 ms, over every code point.
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    before = re.compile(r"[^\x00-\x1f\x80-\U0010ffff<>:\"/\\|?*]")
    now = re.compile(ownership._ALLOWED)
    allowed = "".join(now.findall(every))
    assert allowed == "".join(before.findall(every))
    assert len(allowed) == 95 - 9 + 1  # printable ASCII, less the nine forbidden, and DEL
    assert ownership.kit_name("data/videos/a/video-720p.mp4")
    assert not ownership.kit_name("data/vidéos/a.mp4")
    assert not ownership.kit_name("data/a:b.mp4")


class _CommitWaits(Archive):
    """An archive whose first commit waits (in its worker thread) until the server has seen
    ``requests`` requests, or ``patience`` seconds: it records whether it saw them."""

    def __init__(self, root: Path, server: FileServer, requests: int, patience: float) -> None:
        super().__init__(root)
        self.server, self.requests, self.patience = server, requests, patience
        self.saw: list[bool] = []

    def commit(
        self, item_id: str, role: str, name: str, partial: Path, fetched: FetchedFile
    ) -> FileRecord:
        if not self.saw:
            until = time.monotonic() + self.patience
            while len(self.server.requests()) < self.requests and time.monotonic() < until:
                time.sleep(0.005)
            self.saw.append(len(self.server.requests()) >= self.requests)
        return super().commit(item_id, role, name, partial, fetched)


def _jobs(server: FileServer, count: int, delay: float = 0.0) -> list[Job]:
    jobs = []
    for i in range(count):
        server.add(f"/v/{i}.mp4", content_of(40_000, i), delay=delay)
        entry = make_entry(f"item-{i:02d}", server.url(f"/v/{i}.mp4"))
        jobs.append(Job(entry, "video", entry.video.url or "", "video.mp4"))
    return jobs


def _run(archive: Archive, jobs: list[Job], settings: DownloadSettings, counting: Counting) -> None:
    async def run() -> None:
        async with make_client(settings, transport=counting) as client:
            with archive:
                for job in jobs:
                    archive.record_item(job.entry)
                outcomes = await download_all(jobs, archive, settings=settings, client=client)
        assert [o.status for o in outcomes] == [Status.FETCHED] * len(jobs)

    asyncio.run(run())


def test_the_next_file_is_asked_for_while_one_is_committed(
    server: FileServer, tmp_path: Path
) -> None:
    # --jobs 1: the second file's request goes out while the first is checked and committed
    # (its slot was given back with its last byte), not after.
    jobs = _jobs(server, 2)
    archive = _CommitWaits(tmp_path, server, requests=2, patience=5.0)
    counting = Counting()
    _run(archive, jobs, DownloadSettings(jobs=1, per_host=8), counting)
    assert archive.saw == [True]
    assert counting.peak == 1  # and never two transfers at once


@pytest.mark.parametrize(("jobs", "per_host"), [(2, 8), (8, 3)])
def test_never_more_transfers_than_jobs_and_per_host(
    server: FileServer, tmp_path: Path, jobs: int, per_host: int
) -> None:
    # Many small files, each answer a little slow: the slots are given back early and taken
    # again for every file, and the count stays honest.
    settings = DownloadSettings(jobs=jobs, per_host=per_host)
    counting = Counting()
    _run(Archive(tmp_path), _jobs(server, 12, delay=0.05), settings, counting)
    assert counting.peak == min(jobs, per_host)


def test_the_command_line_and_the_kit_import_no_audit_and_no_manifest_builder() -> None:
    # verify's audit comes with verify; the kit reads a manifest as the download does (JSON).
    code = (
        "import json, sys\nimport archiver.kit\nkit = 'archiver.manifest' in sys.modules\n"
        "import archiver.cli\nprint(json.dumps([kit, 'archiver.audit' in sys.modules]))"
    )
    out = fresh_python(code)
    assert json.loads(out) == [False, False]


def test_a_download_never_imports_the_kit_yaml_or_premis() -> None:
    # 45-60 ms of the kit (its templates, the fiches' YAML) and 15-20 ms of PREMIS's XML
    # writer: imported by the commands that use them.
    unused = ("archiver.kit", "yaml", "archiver.fiches", "archiver.premis")
    assert _loaded_after("import archiver.cli\nimport archiver.fetch.run", unused) == []


def test_the_command_line_imports_no_archive_catalog_or_http_client() -> None:
    # Each is imported by the commands that use it: `archiver --help`, `manifest` and the
    # rest start without them, and a download imports them as it runs.
    later = (
        "archiver.archive",
        "archiver.catalog",
        "archiver.files",
        "archiver.history",
        "archiver.sniff",
        "archiver.choose",
        "tomllib",
        "asyncio",
        "httpx",
        # FFmpeg's module (--transcode's names are the command line's own) and SQLite
        # (errors.py reads its codes only when a catalog failed): a download's connections
        # opened ahead (fetch/ahead.py) start once the command line is imported.
        "archiver.media",
        "subprocess",
        "sqlite3",
    )
    assert _loaded_after("import archiver.cli", later) == []


def test_the_kit_options_default_title_is_the_kits() -> None:
    # Said again in cli/options.py, so that the command line need not import the kit.
    from archiver import kit
    from archiver.cli import options

    assert options.DEFAULT_TITLE == kit.DEFAULT_TITLE
    assert kit.KitSettings().title == options.DEFAULT_TITLE


def test_the_command_line_offers_every_transcode_preset() -> None:
    """--transcode's choices are written in the command line (FFmpeg's module is imported
    by the commands that use it): the same as :data:`archiver.media.PRESETS`, in order."""
    from archiver import media
    from archiver.cli import options

    assert tuple(sorted(media.PRESETS)) == options.PRESET_NAMES


def _certificates(client: httpx.AsyncClient) -> Certificates:
    hook = client.event_hooks["request"][0]
    owner = getattr(hook, "__self__", None)
    assert isinstance(owner, Certificates)
    return owner


def test_plain_http_loads_no_ca_certificates(server: FileServer) -> None:
    # 23 to 30 ms of every start, for nothing on a manifest of http:// URLs.
    server.add("/v.mp4", b"x" * 1000)

    async def run() -> tuple[int, bool]:
        async with make_client(DownloadSettings()) as client:
            response = await client.get(server.url("/v.mp4"))
            return response.status_code, _certificates(client).loaded

    assert asyncio.run(run()) == (200, False)


def test_https_waits_for_the_ca_certificates_and_names_a_bad_bundle(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first https request loads them first (here a bundle that is no bundle): it never
    # reaches a handshake with a context that trusts nothing.
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n", encoding="utf-8")
    monkeypatch.setenv("SSL_CERT_FILE", str(bad))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    url = server.url("/v.mp4").replace("http://", "https://")

    async def run() -> tuple[str, bool]:
        async with make_client(DownloadSettings()) as client:
            with pytest.raises(httpx.ConnectError) as failed:
                await client.get(url)
            return str(failed.value), _certificates(client).loaded

    message, loaded = asyncio.run(run())
    assert message.startswith("cannot load the CA certificates: ")
    assert not loaded
    assert server.requests() == []  # nothing was sent


def test_the_probe_worker_is_let_go_at_the_exit_without_a_wait() -> None:
    # The exit does not wait for the worker's teardown (about 30 ms): it ends on its own.
    prober = media.Prober()
    prober.start()
    process = prober._process
    assert process is not None
    assert process.poll() is None
    prober.let_go()
    assert process.returncode is None  # not waited for
    assert prober._process is None
    assert process.wait(timeout=30) == 0  # its input closed: it ended by itself, cleanly
    if process.stdout is not None:
        process.stdout.close()


def _main_with_markers(
    tmp_path: Path, *args: str, hook: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m archiver ARGS`` with a ``sitecustomize`` that registers an exit handler
    (then runs ``hook``)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import atexit, pathlib\n"
        f"OUT = pathlib.Path({str(tmp_path)!r})\n"
        "atexit.register(lambda: (OUT / 'atexit').write_text('ran'))\n" + hook,
        encoding="utf-8",
    )
    source = Path(archiver.__file__).parent.parent
    env = {"PYTHONPATH": f"{hooks}:{source}", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_python_m_archiver_runs_the_exit_handlers_before_it_ends(tmp_path: Path) -> None:
    """It ends with os._exit, past the interpreter's teardown, but not past the exit handlers
    (logging's flush, the FFmpeg reader let go, coverage's data)."""
    done = _main_with_markers(tmp_path, "--version")
    assert (done.returncode, done.stdout.strip()) == (
        0,
        f"archiver, version {archiver.__version__}",
    )
    assert (tmp_path / "atexit").read_text() == "ran"


# A thread started before the command, and a mark of the interpreter's own shutdown, which
# the quick exit skips (threading's exit handlers run there, before it joins the threads).
_THREAD_AND_TEARDOWN = (
    "import threading, time\n"
    "threading.Thread(target=time.sleep, args=(1,), daemon={daemon}).start()\n"
    "threading._register_atexit(lambda: (OUT / 'teardown').write_text('ran'))\n"
)


@pytest.mark.parametrize("daemon", [True, False])
def test_python_m_archiver_exits_at_once_past_daemon_threads_only(
    tmp_path: Path, daemon: bool
) -> None:
    """A daemon thread (a name still resolving for a connection opened ahead) is cut at any
    exit: it does not keep the quick exit from happening. Any other thread does."""
    hook = _THREAD_AND_TEARDOWN.format(daemon=daemon)
    done = _main_with_markers(tmp_path, "--version", hook=hook)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "teardown").exists() is not daemon


def test_python_m_archiver_keeps_its_exit_status_and_its_last_words(tmp_path: Path) -> None:
    done = _main_with_markers(tmp_path, "download", str(tmp_path / "none.json"), "--archive",
                              str(tmp_path / "archive"))  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: {tmp_path / 'none.json'}: cannot read")
    assert (tmp_path / "atexit").read_text() == "ran"


def test_the_fetch_packages_names_are_what_they_say_whatever_was_imported_first() -> None:
    """A lazy name (PEP 562) that is also a submodule's would become the module once that
    submodule is imported: none of fetch's names is one, and ``dir`` lists them all."""
    code = (
        "import json, types\n"
        "from archiver.fetch.preview import Action\n"
        "from archiver.fetch.run import download\n"
        "import archiver.fetch as fetch\n"
        "print(json.dumps([[n, isinstance(getattr(fetch, n), types.ModuleType)]"
        " for n in fetch.__all__] + [sorted(set(fetch.__all__) - set(dir(fetch)))]))"
    )
    out = fresh_python(code)
    *names, missing = json.loads(out)
    assert [name for name, module in names if module] == []
    assert missing == []
