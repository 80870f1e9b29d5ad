"""The fuzz suite's ground: a sandbox with victims, bounded runs of the CLI, hostile values.

``tests/test_fuzz.py`` drives ``archiver`` as a user would, over inputs built here, and checks
the invariants of the design for every one of them:

- the exit code is 0, 1 or 2: never 70 (a bug), never a traceback, never a hang;
- nothing appears, changes or disappears outside the archive and the kit: a :class:`Sandbox`
  puts victims around them (a sibling folder, files a ``../`` would reach at every level up
  to the sandbox's root, a link out) and compares a snapshot of the whole tree;
- memory and time stay bounded: :func:`run_bounded` runs the CLI in a child process under an
  address-space limit and a deadline, and measures its peak resident size;
- what reaches the terminal cannot drive it, no password in a URL is printed, no kit page
  carries markup from the input, and every file kept is what it claims to be.

Inputs name three places by token, replaced when they are written: ``@ROOT@`` (the sandbox's
absolute path), ``@BASE@`` (the loopback server) and ``@DEAD@`` (a port nothing listens on).
Every other host goes through a proxy that refuses connections (:data:`NO_NETWORK`), so no
input reaches the internet.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import strategies as st

from archiver.cli import cli

from .server import Call, FileServer, Reply, Served

# -- running archiver ------------------------------------------------------------------------

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens there, a connection is refused
# httpx reads these (trust_env): any host but the loopback goes through a proxy that refuses.
NO_NETWORK = {
    **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"), DEAD),
    **{name.lower(): DEAD for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
EXIT_CODES = (0, 1, 2)
# A child's address space: far above what a run needs (about 45 MiB resident, measured), far
# below what an unbounded input takes (a YAML bomb grew to 2 GB).
ADDRESS_SPACE = 1024 * 1024 * 1024
PEAK_RSS = 256 * 1024 * 1024
# A run that meets every stall and trickle the suite sends ends in a few seconds (with
# ``--timeout 0.5``, or the API's own 10 s); one still running after this never would.
TIME_LIMIT = 30.0

# The child sets its own address-space limit (no preexec_fn in a parent whose server threads
# are running), and writes its peak resident size when it exits: wait4's ru_maxrss will not
# do, as Linux carries it across exec from the fork, which had the size of this process.
_BOOT = """
import atexit, resource, sys
limit, report = int(sys.argv.pop(1)), sys.argv.pop(1)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

def peak():
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])

atexit.register(peak)
sys.argv[0] = "archiver"
from archiver.cli import main
main()
"""


@dataclass(frozen=True)
class Outcome:
    """One run of the CLI as a user sees it; ``code`` is ``None`` when it was killed at the
    time limit, ``max_rss`` (bytes) is known for a child process only."""

    args: tuple[str, ...]
    code: int | None
    stdout: str
    stderr: str
    seconds: float
    max_rss: int | None = None
    crash: str | None = None  # an exception that escaped the CLI, with its traceback

    @property
    def command(self) -> str:
        return "archiver " + " ".join(_shown(a) for a in self.args)


def _shown(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else repr(arg)


def run_in_process(args: Sequence[str | Path], *, cwd: Path) -> Outcome:
    """The CLI in this process through click's runner: fast, for what needs no bound."""
    argv = tuple(os.fspath(a) for a in args)
    start = time.monotonic()
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(cli, list(argv), env=NO_NETWORK, catch_exceptions=True)
    crash = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        crash = "".join(traceback.format_exception(*result.exc_info))
    return Outcome(
        argv,
        result.exit_code,
        result.stdout,
        result.stderr,
        time.monotonic() - start,
        crash=crash,
    )


def run_bounded(
    args: Sequence[str | Path],
    *,
    cwd: Path,
    timeout: float = TIME_LIMIT,
    address_space: int = ADDRESS_SPACE,
) -> Outcome:
    """The CLI in a child process under an address-space limit, killed (its whole process
    group) at ``timeout``. Its peak resident size (``VmHWM``) is what it reports at exit, or
    what was last seen while it ran when it had to be killed."""
    argv = tuple(os.fspath(a) for a in args)
    with contextlib.ExitStack() as stack:
        out, err = (stack.enter_context(tempfile.TemporaryFile()) for _ in range(2))
        report = stack.enter_context(tempfile.NamedTemporaryFile("r", suffix=".peak"))
        command = [sys.executable, "-c", _BOOT, str(address_space), report.name, *argv]
        start = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env={**os.environ, **NO_NETWORK},
            start_new_session=True,
        )
        status, seen = _wait(process, start + timeout)
        seconds = time.monotonic() - start
        reported = report.read().strip()
        peak = max(seen, int(reported) if reported.isdigit() else 0) * 1024
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    code = None if status is None else os.waitstatus_to_exitcode(status)
    return Outcome(argv, code, stdout, stderr, seconds, max_rss=peak or None)


def _wait(process: subprocess.Popen[bytes], deadline: float) -> tuple[int | None, int]:
    """Reap ``process``, watching its peak resident size (KiB); kill its group at
    ``deadline`` (then the status is ``None``)."""
    seen = 0
    while True:
        seen = max(seen, _peak_of(process.pid))
        pid, status = os.waitpid(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return status, seen
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            os.waitpid(process.pid, 0)
            process.returncode = -signal.SIGKILL
            return None, seen
        time.sleep(0.01)


def _peak_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


# -- the sandbox -----------------------------------------------------------------------------

VICTIMS = {
    "settings.json": b'{"keep": "this file is not archiver\'s"}\n',
    "notes.txt": b"A teacher's notes.\n",
    "index.html": b"<p>Somebody else's page.</p>\n",
}
# The work folder sits this deep in the sandbox, so that a path with up to this many more
# ``../`` than its own depth still lands in the snapshot.
LEVELS = ("l1", "l2", "l3", "l4")


@dataclass(frozen=True)
class Sandbox:
    """A private tree: ``work/`` holds the inputs, the archive and the kit; victims are
    everywhere else (``victim/`` folders and ``victim.json`` files at every level up to the
    root, a link out of ``work/``), so that a write anywhere but the allowed places shows."""

    root: Path

    @classmethod
    def create(cls, parent: Path) -> Sandbox:
        root = Path(tempfile.mkdtemp(prefix="sandbox-", dir=parent))
        work = root.joinpath(*LEVELS, "work")
        work.mkdir(parents=True)
        for level in range(len(LEVELS) + 2):
            folder = root.joinpath(*LEVELS[:level]) if level <= len(LEVELS) else work
            victim = folder / "victim"
            victim.mkdir()
            for name, data in VICTIMS.items():
                (victim / name).write_bytes(data)
            (folder / "victim.json").write_bytes(VICTIMS["settings.json"])
        (work / "link-out").symlink_to(root / "victim", target_is_directory=True)
        return cls(root)

    @property
    def work(self) -> Path:
        return self.root.joinpath(*LEVELS, "work")

    @property
    def archive(self) -> Path:
        return self.work / "archive"

    @property
    def kit(self) -> Path:
        return self.work / "kit"

    def fill(self, text: str, base: str = DEAD) -> str:
        """``text`` with its tokens replaced (see the module's docstring)."""
        return (
            text.replace("@ROOT@", str(self.root)).replace("@BASE@", base).replace("@DEAD@", DEAD)
        )

    def snapshot(
        self, allowed: Iterable[Path] | Callable[[str], bool] = ()
    ) -> dict[str, tuple[object, ...]]:
        return snapshot(self.root, allowed)

    def plant(self, folder: Path) -> list[Path]:
        """Put a user's files in ``folder`` (notes on a USB key, a page of their own), as
        archiver finds them when it is pointed at a folder it did not make."""
        planted = [folder / "notes.txt", folder / "index.html", folder / "data" / "notes" / "a.txt"]
        for path in planted:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(VICTIMS["index.html" if path.suffix == ".html" else "notes.txt"])
        return planted

    def allowed(self, *folders: Path, but: Iterable[Path] = ()) -> Callable[[str], bool]:
        """A test of a path for :meth:`snapshot`: ``folders`` and what is in them are
        archiver's to change, but for the files ``but`` names and the folders holding them."""
        roots = [str(f) for f in folders]
        kept = {str(p) for p in but}
        kept |= {str(parent) for p in but for parent in p.parents}

        def test(path: str) -> bool:
            return path not in kept and any(
                path == root or path.startswith(root + os.sep) for root in roots
            )

        return test


def snapshot(
    root: Path, allowed: Iterable[Path] | Callable[[str], bool] = ()
) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` but the ``allowed`` ones: its type, mode, size, mtime and
    content digest (a link's target; a folder's mode only, as its mtime changes when an
    allowed child appears). ``allowed`` is paths (and what is below them), or a test."""
    if callable(allowed):
        skipped = allowed
    else:
        paths = [os.path.abspath(p) for p in allowed]

        def skipped(path: str) -> bool:
            return any(path == p or path.startswith(p + os.sep) for p in paths)

    seen: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            key = os.path.relpath(path, root)
            if skipped(path):
                continue
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                seen[key] = (
                    "file",
                    oct(info.st_mode),
                    info.st_size,
                    info.st_mtime_ns,
                    _digest(path),
                )
            elif stat.S_ISDIR(info.st_mode):
                seen[key] = ("folder", oct(info.st_mode))
            elif stat.S_ISLNK(info.st_mode):
                seen[key] = ("link", os.readlink(path))
            else:
                seen[key] = ("special", oct(info.st_mode), info.st_rdev)
    return seen


def _digest(path: str) -> str:
    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read(4 * 1024 * 1024)).hexdigest()[:16]


def changes(before: Mapping[str, object], after: Mapping[str, object]) -> list[str]:
    """What differs between two snapshots, one line each."""
    lines = [f"appeared: {k} {after[k]}" for k in sorted(after.keys() - before.keys())]
    lines += [f"disappeared: {k} {before[k]}" for k in sorted(before.keys() - after.keys())]
    lines += [
        f"changed: {k} {before[k]} -> {after[k]}"
        for k in sorted(before.keys() & after.keys())
        if before[k] != after[k]
    ]
    return lines


# -- checks ----------------------------------------------------------------------------------

SECRET = "fuzz-s3cret"  # the password in URLs the inputs give: it must never be printed
MARKER = "x-fuzz"  # the element name of markup the inputs carry: it must never reach a page
# What a terminal obeys: C0 controls but tab and newline, DEL, the C1 controls (0x9b is CSI).
_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def problems_of(outcome: Outcome, *, codes: Sequence[int] = EXIT_CODES) -> list[str]:
    """What is wrong with a run whatever its input: its exit code, a crash, a traceback, a
    terminal control or a password in what it printed, its memory."""
    found = []
    if outcome.code is None:
        found.append(f"still running after {outcome.seconds:.0f} s: killed")
    elif outcome.code not in codes:
        found.append(f"exit code {outcome.code}, expected one of {tuple(codes)}")
    if outcome.crash:
        found.append("an exception escaped the CLI:\n" + _tail(outcome.crash, 12))
    if "Traceback (most recent call last)" in outcome.stderr:
        found.append("a traceback on stderr")
    for name, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
        control = _TERMINAL_CONTROLS.search(text)
        if control:
            found.append(f"a terminal control character {control[0]!r} on {name}")
        if SECRET in text:
            found.append(f"a URL's password printed on {name}")
    if outcome.max_rss is not None and outcome.max_rss > PEAK_RSS:
        found.append(
            f"peak resident size {outcome.max_rss / 2**20:.0f} MiB, over {PEAK_RSS / 2**20:.0f} MiB"
        )
    return found


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def report(outcome: Outcome, found: Sequence[str]) -> str:
    """A failure's message: the command, what is wrong, and the end of what it printed."""
    return "\n".join(
        [
            f"$ {outcome.command}",
            f"exit {outcome.code} in {outcome.seconds:.1f} s",
            *(f"- {line}" for line in found),
            "stderr (last lines):",
            _tail(outcome.stderr, 8) or "(empty)",
        ]
    )


# What each kind of file archiver keeps must begin with, whatever a server sent.
_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    ".pdf": lambda head: head.startswith(b"%PDF-"),
    ".vtt": lambda head: head.removeprefix(b"\xef\xbb\xbf").startswith(b"WEBVTT"),
    ".jpg": lambda head: head.startswith(b"\xff\xd8\xff"),
    ".mp4": lambda head: head[4:8] in (b"ftyp", b"styp", b"moov", b"free"),
}
_SCRIPTED_LINK = re.compile(
    r"""(?:href|src|action)\s*=\s*["']?\s*(?:javascript|data|vbscript):""", re.I
)


def content_problems(*folders: Path) -> list[str]:
    """Files under ``folders`` (an archive's ``media/``, a kit) that are not what their name
    says, and kit pages that carry the inputs' markup or a scripted link."""
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            suffix = path.suffix.lower()
            check = _SIGNATURES.get(suffix)
            if check is not None:
                with path.open("rb") as stream:
                    head = stream.read(16)
                if not check(head):
                    found.append(f"{path}: a {suffix} file that begins {head!r}")
            if suffix == ".html":
                page = path.read_text("utf-8", "replace")
                if f"<{MARKER}" in page.lower():
                    found.append(f"{path}: carries markup from the input (<{MARKER}>)")
                if _SCRIPTED_LINK.search(page):
                    found.append(f"{path}: a scripted link: {_SCRIPTED_LINK.search(page)[0]!r}")
    return found


# -- JSON that json.dumps does not write -----------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """Text written into a JSON document as is: ``NaN``, ``1e999``, a nesting 10⁵ deep."""

    text: str

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 40 else f"{self.text[:20]}…({len(self.text)} chars)"
        return f"Raw({shown!r})"


@dataclass(frozen=True)
class Pairs:
    """An object written with its keys as given, duplicates included."""

    items: tuple[tuple[str, Any], ...]


def encode(value: Any) -> str:
    """JSON text for ``value``, with :class:`Raw` and :class:`Pairs` written as they say."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(k)}: {encode(v)}" for k, v in value.items) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(encode(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, "NaN")
    return json.dumps(value, ensure_ascii=False)


Path_ = tuple[str | int, ...]


def json_paths(document: Any, at: Path_ = ()) -> Iterator[Path_]:
    """Every path into ``document``, the root first, in a stable order."""
    yield at
    if isinstance(document, dict):
        for key in sorted(document):
            yield from json_paths(document[key], (*at, key))
    elif isinstance(document, list):
        for index, item in enumerate(document):
            yield from json_paths(item, (*at, index))


@dataclass(frozen=True)
class Mutation:
    """One change to a JSON document: ``set`` a value, ``delete`` a member, ``add`` a member
    (or an item), ``duplicate`` a key with another value (both written), ``wrap`` a value in a
    list, ``clone`` an entry under another id."""

    op: str
    path: Path_
    value: Any = None
    key: str = ""


def mutate(document: Any, mutations: Iterable[Mutation]) -> Any:
    """A copy of ``document`` with ``mutations`` applied; a path that no longer exists (an
    earlier mutation removed it) is skipped."""
    root: Any = copy.deepcopy(document)
    for change in mutations:
        root = _apply(root, change)
    return root


def _apply(root: Any, change: Mutation) -> Any:
    if not change.path:
        return change.value if change.op == "set" else root
    parent = root
    for step in change.path[:-1]:
        if (isinstance(parent, dict) and step in parent) or (
            isinstance(parent, list) and isinstance(step, int) and step < len(parent)
        ):
            parent = parent[step]
        else:
            return root
    last = change.path[-1]
    if isinstance(parent, dict) and isinstance(last, str):
        present = last in parent
    elif isinstance(parent, list) and isinstance(last, int):
        present = last < len(parent)
    else:
        return root
    if not present:
        return root
    if change.op == "set":
        parent[last] = change.value
    elif change.op == "delete":
        del parent[last]
    elif change.op == "wrap":
        parent[last] = [parent[last]]
    elif change.op == "add":
        target = parent[last]
        if isinstance(target, dict):
            target[change.key] = change.value
        elif isinstance(target, list):
            target.append(change.value)
    elif change.op == "duplicate" and isinstance(parent[last], dict) and parent[last]:
        members = list(parent[last].items())
        key = change.key if change.key in parent[last] else members[0][0]
        parent[last] = Pairs((*members, (key, change.value)))
    elif change.op == "clone" and isinstance(parent[last], dict):
        twin = copy.deepcopy(parent[last])
        twin["id"] = change.value
        if isinstance(parent, list):
            parent.append(twin)
    return root


# -- hostile values --------------------------------------------------------------------------

TERMINAL_TRICKS = [
    "\x1b[2J\x1b[H",  # clear the screen
    "\x1b]0;pwned\x07",  # set the window's title
    "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",  # a hyperlink
    "\x9b31m",  # CSI in one byte
    "ok\r\x1b[Kfine",  # rewrite the line
    "\x07\x08\x08\x7f",
    "\u202eevil\u202c",  # right-to-left override
]
MARKUP = [
    f"<{MARKER} onload=alert(1)>",
    f"</title></script><{MARKER}>",
    f'"><{MARKER} a="',
    "{{ 7*7 }}{% raw %}",
    "<!--",
    "]]>&amp;&#0;",
]
ODD_TEXT = [
    "",
    " ",
    "\x00",
    "\ufeff",
    "é",
    "e\u0301",
    "\u0130İı",
    "𝕏",
    "%s%n%x",
    "${HOME}$(id)`id`",
    "a\nb",
    "\r\n",
    "\\",
    "CON",
    "nul",
    "---",
    "## Script",
]
TRAVERSALS = [
    "..",
    ".",
    "../victim",
    "../../victim/settings",
    "../../../victim/settings",
    "../../../../victim/notes",
    "../../../../../victim/index",
    "../../../../../../victim/settings",
    "../../../../../../../../victim/settings",
    "a/../../victim/settings",
    "..\\..\\victim\\settings",
    "%2e%2e%2fvictim",
    "@ROOT@/victim/settings",
    "@ROOT@/victim.json",
    "link-out/settings",
    "/dev/null",
    "9520b54d-0a3c-43dc-8821-d559fa418cc6/../../victim",
    "9520B54D-0A3C-43DC-8821-D559FA418CC6",
    "9520b54d-0a3c-43dc-8821-d559fa418cc6\n",
    "９５２０b54d-0a3c-43dc-8821-d559fa418cc6",
    "archiver.lock",
    "catalog.sqlite",
    "index.html",
    "x" * 300,
]
URLS = [
    "@BASE@/fiche.pdf",
    "@BASE@/download/streaming-playlists/hls/videos/9520b54d-0a3c-43dc-8821-d559fa418cc6-360-fragmented.mp4",
    "@BASE@/../../victim/settings.json",
    "@BASE@/%2e%2e/%2e%2e/victim/settings.json",
    "@BASE@/index.html",
    "@BASE@/download.php?f=../../victim/settings.json",
    "@BASE@/a b/é?x=<x-fuzz>#frag",
    f"http://user:{SECRET}@127.0.0.1:9/x.mp4",
    "@DEAD@/video.mp4",
    "https://tube.example.org/videos/embed/9520b54d-0a3c-43dc-8821-d559fa418cc6",
    "file://@ROOT@/victim/settings.json",
    "file:///etc/passwd",
    "javascript:alert(1)",
    f"data:text/html,<{MARKER}>",
    "ftp://127.0.0.1/x.mp4",
    "http://[::1",
    "http://",
    "//127.0.0.1/x",
    "http://127.0.0.1:99999/x",
    "http://exa mple.org/",
    "http://\x00/",
    "https://" + "a" * 70 + ".example/" + "b" * 3000,
]

hostile_text: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(TERMINAL_TRICKS + MARKUP + ODD_TEXT),
    st.text(max_size=24),
    st.lists(st.sampled_from(TERMINAL_TRICKS + MARKUP + ODD_TEXT + ["word "]), max_size=4).map(
        "".join
    ),
)
path_text = st.one_of(st.sampled_from(TRAVERSALS), hostile_text)
url_text = st.one_of(st.sampled_from(URLS), hostile_text.map(lambda t: "@BASE@/" + t))

# JSON values: each type, the numbers no parser agrees on, and nesting past any recursion limit.
json_scalars = st.one_of(
    hostile_text,
    path_text,
    url_text,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-1, 0, 2**31, 2**63, 2**64, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [Raw("NaN"), Raw("-Infinity"), Raw("1e999"), Raw("-0"), Raw("9" * 5000), Raw("1E-400")]
    ),
    st.booleans(),
    st.none(),
)
json_deep = st.sampled_from([100, 1_000, 100_000]).flatmap(
    lambda depth: st.sampled_from(
        [Raw("[" * depth + "]" * depth), Raw('{"a":' * depth + "1" + "}" * depth)]
    )
)


def _json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3))


json_values = st.one_of(
    st.recursive(json_scalars, _json_containers, max_leaves=5),
    json_deep,
)


SAFE_IDS = [
    "fuzz-twin", "con", "index", "media", "peertube", "partial", "quarantine", "data", "assets",
    "0", "a" * 100, "9520b54d-0a3c-43dc-8821-d559fa418cc6", "00000000-0000-4000-8000-000000000000",
]  # fmt: skip
# Values a field accepts, or nearly: they get past the loaders to the code behind them.
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(SAFE_IDS),
    "uuid": st.sampled_from(
        ["00000000-0000-4000-8000-000000000000", "9520b54d-0a3c-43dc-8821-d559fa418cc6"]
    ),
    "kind": st.sampled_from(["fiche_pdf", "transcript_pdf", "video", "poster", "captions"]),
    "size": st.sampled_from([0, 1, 102, 79_999, 80_000, 80_001, 2**40, 10**15, -1, 1.5]),
    "sha256": st.sampled_from(["0" * 64, "F" * 64, "e" * 63, hashlib.sha256(b"").hexdigest()]),
    "id@resolution": st.sampled_from([0, 1, 144, 360, 720, 8640, 99_999, -360]),
    "height": st.sampled_from([0, 1, 144, 360, 8640, 99_999, -360, None]),
    "duration": st.sampled_from([0, -1, 1, 10**9, 1e308, 0.5]),
    "id@language": st.sampled_from(["fr", "zh-Hans", "ca-valencia", "x" * 40, "../fr", "fr/../x"]),
    "id@state": st.sampled_from([1, 2, 4, 5, 99, -1, "1"]),
}
TEXT_FIELDS = frozenset({"title", "description", "transcript", "name", "role", "area", "label"})
TEXT_LISTS = frozenset({"names", "credit_notes", "tags"})


def _at(document: Any, path: Path_) -> Any:
    for step in path:
        document = document[step]
    return document


# URLs a loader accepts: on the loopback server or the dead port, with odd paths.
PLAUSIBLE_URLS = [u for u in URLS if u.startswith(("@BASE@", "@DEAD@", "http://user"))]


@st.composite
def mutations(
    draw: st.DrawFn, document: Any, hot: Sequence[Path_] = (), *, plausible: bool = False
) -> Mutation:
    """One mutation of ``document``, at one of its ``hot`` paths (fields that become file
    names, URLs, sizes) three times in four, else anywhere. The value is often one the field
    accepts, or nearly (:data:`FIELD_VALUES`); a ``plausible`` mutation only sets a hot field
    to such a value, or clones an entry, so that it reaches the code behind the loader."""
    paths = list(json_paths(document))
    hot = [p for p in hot if p in paths]
    if plausible:  # a field, not an object or a list
        hot = [p for p in hot if not isinstance(_at(document, p), dict | list)]
    anywhere = not hot or (not plausible and draw(st.integers(0, 3)) == 3)
    path = draw(st.sampled_from(paths)) if anywhere else draw(st.sampled_from(hot))
    ops = ["set"] * 6 + ["clone", "clone"]
    op = draw(st.sampled_from(ops if plausible else [*ops, "delete", "add", "duplicate", "wrap"]))
    if op == "clone":
        path = ("entries", 0)
    field_name = str(path[-1]) if path else ""
    parent = str(path[-2]) if len(path) > 1 else ""
    pool = FIELD_VALUES.get(f"{field_name}@{parent}", FIELD_VALUES.get(field_name))
    if field_name in TEXT_FIELDS or (parent in TEXT_LISTS and isinstance(path[-1], int)):
        fitting: st.SearchStrategy[Any] = hostile_text
    elif field_name.endswith(("url", "Url", "Path")) or field_name == "instance":
        fitting = st.sampled_from(PLAUSIBLE_URLS) if plausible else url_text
    elif field_name in {"id", "uuid", "path", "kind"}:
        fitting = st.nothing() if plausible else path_text
    else:
        fitting = st.nothing() if plausible else json_values
    if pool is not None:
        fitting = st.one_of(pool, fitting)
    if fitting.is_empty:
        fitting = hostile_text
    wild = not plausible and draw(st.integers(0, 3)) == 3
    value = draw(st.one_of(fitting, json_values) if wild else fitting)
    key = draw(st.one_of(st.sampled_from(["id", "url", "kind", "__proto__", "size"]), hostile_text))
    if op == "clone":
        value = draw(
            st.sampled_from(SAFE_IDS)
            if plausible
            else st.one_of(st.sampled_from(SAFE_IDS), path_text)
        )
    return Mutation(op, path, value, key)


# -- fiches ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fiche:
    """A file to put in a fiche folder: its name (maybe in a subfolder) and its bytes."""

    name: str
    data: bytes

    def __repr__(self) -> str:
        data = self.data if len(self.data) <= 300 else self.data[:300] + b"..."
        return f"Fiche(name={self.name!r}, size={len(self.data)}, data={data!r})"


YAML_SPECIALS = [
    "~", "null", "", "yes", "No", "on", "true", "0x1F", "0o17", "1_000", "+.inf", "-.inf", ".nan",
    "1e999", "-0", "12:30:45", "2023-02-30", "2023-13-01", "0000-00-00", "9999-12-31",
    "2023-02-29T25:61:61Z", "2001-12-14t21:59:43.10-05:00", "1-1-1",
    "!!python/object/apply:os.system ['touch @ROOT@/pwned']", "!!python/name:os.system",
    "!!python/object:__main__.X {}", "!!binary aGVsbG8=", "!!binary '!!!'", "!!set {a, b}",
    "!!omap [a: 1, b: 2]", "!!timestamp nope", "!!int 'x'", "!!float 'x'", "!!str", "!custom x",
    "!<tag:yaml.org,2002:str> x", "!!map [1, 2]", "[1, [2, [3]]]", "{a: 1, a: 2}",
    "{[1, 2]: x}", "{? a}", "[", "]", "{", "'unterminated", '"\\x1b[2J"', '"\\u0000"',
    '"\\ud800"', "|\n  line one\n  line two", ">-\n  folded\n  text", "&a", "*nowhere",
    "? complex\n: key", "- a\n- b", "@reserved", "`reserved", "%TAG ! tag:x", "--- second",
    "... end", "\t", "#comment",
]  # fmt: skip
FICHE_NAMES = [
    "fiche.md", "é.md", "e\u0301.md", "-rf.md", " .md", "a b.md", "a-b.md", "A B.md",
    "x" * 250 + ".md", "CON.md", "nul.md", ".hidden.md", "x.md.md", "sub/dir/x.md",
    "sub/../escape.md", "\u202edm.exe.md", "\x1b[2J.md", "new\nline.md", "tab\t.md",
    os.fsdecode(b"caf\xe9.md"), os.fsdecode(b"\xff\xfe.md"), "UPPER.MD", "no-suffix",
]  # fmt: skip

_yaml_scalars = st.one_of(
    st.sampled_from(YAML_SPECIALS),
    hostile_text.map(lambda t: json.dumps(t, ensure_ascii=False)),  # a double-quoted scalar
    hostile_text.map(lambda t: t.replace("\n", " ")),  # a plain one, if it parses at all
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats().map(repr),
    url_text,
)


def _yaml_collections(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Flow sequences and mappings of ``inner`` values, as YAML text."""
    return st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(inner, inner), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
    )


yaml_values = st.one_of(
    st.recursive(_yaml_scalars, _yaml_collections, max_leaves=6),
    st.integers(2, 3000).map(lambda d: "[" * d + "]" * d),
    st.integers(2, 3000).map(lambda d: "{a: " * d + "1" + "}" * d),
    st.sampled_from(["&r [*r]", "&r {a: *r}", "&r [1, [2, *r]]", "&m {<<: *m}"]),
)


def alias_bomb(depth: int, fanout: int, *, mapping: bool = False) -> list[str]:
    """Lines of a front matter that expand to ``fanout ** depth`` strings ("billion laughs")."""
    lines = ["lol0: &lol0 " + ("{a: lol}" if mapping else '"lol"')]
    for level in range(1, depth + 1):
        refs = ", ".join(f"*lol{level - 1}" for _ in range(fanout))
        value = "{" + ", ".join(f"k{i}: *lol{level - 1}" for i in range(fanout)) + "}"
        lines.append(f"lol{level}: &lol{level} " + (value if mapping else f"[{refs}]"))
    return lines


VALID_FIELDS = [
    ("title", "Une vidéo pour la classe"),
    ("area", "Domaine 1"),
    ("description", "Décrire la vidéo."),
    ("videoEmbedSrc", "https://tube.example.org/videos/embed/9520b54d-0a3c-43dc-8821-d559fa418cc6"),
    (
        "videoDLHref",
        "https://tube.example.org/download/streaming-playlists/hls/videos/"
        "9520b54d-0a3c-43dc-8821-d559fa418cc6-360-fragmented.mp4",
    ),
    ("fichePdfHref", "https://tube.example.org/fiche.pdf"),
]
FIELD_NAMES = [
    "title", "area", "description", "videoEmbedSrc", "videoDLHref", "fichePdfHref",
    "transcriptPdfHref", "videoSha256", "videoSize", "<<", "? [a]", "1", "true", "null",
    "\x1b[31mred", "", "'quoted key'", "a:b", "tags",
]  # fmt: skip


@st.composite
def front_matters(draw: st.DrawFn, *, max_expansion: int) -> str:
    """A front matter: a valid one, then some of its fields replaced, dropped, duplicated or
    joined by unknown ones, and perhaps an alias bomb expanding to at most ``max_expansion``."""
    fields = list(VALID_FIELDS)
    for _ in range(draw(st.integers(0, 4))):
        # Most changes keep the fiche valid, so that its values reach the code behind the
        # checks: an unknown field (kept as ``extra``), a text field with hostile text.
        action = draw(
            st.sampled_from(["add", "add", "text", "text", "replace", "drop", "duplicate"])
        )
        if action == "text":
            index = draw(st.integers(0, 2))  # title, area, description
            fields[index] = (fields[index][0], json.dumps(draw(hostile_text), ensure_ascii=False))
        elif action == "replace" and fields:
            index = draw(st.integers(0, len(fields) - 1))
            fields[index] = (fields[index][0], draw(yaml_values))
        elif action == "drop" and fields:
            del fields[draw(st.integers(0, len(fields) - 1))]
        elif action == "duplicate" and fields:
            fields.append((fields[draw(st.integers(0, len(fields) - 1))][0], draw(yaml_values)))
        else:
            name = draw(
                st.one_of(st.sampled_from(["tags", "date", "extra"]), st.sampled_from(FIELD_NAMES))
            )
            fields.append((name, draw(yaml_values)))
    lines = [f"{k}: {v}" for k, v in fields]
    if draw(st.integers(0, 4)) == 4:
        fanout = draw(st.integers(2, 10))
        depth = draw(st.integers(1, 30))
        while depth > 1 and fanout**depth > max_expansion:
            depth -= 1
        bomb = alias_bomb(depth, fanout, mapping=draw(st.booleans()))
        lines[draw(st.integers(0, len(lines))) : 0] = bomb
    return "---\n" + "\n".join(lines) + "\n---\n"


@st.composite
def bodies(draw: st.DrawFn) -> str:
    """A Markdown body: a script and credits with hostile lines, perhaps a huge line."""
    parts = []
    if draw(st.booleans()):
        parts.append("## Script\n\n" + "\n".join(draw(st.lists(hostile_text, max_size=3))) + "\n")
    if draw(st.booleans()):
        credits = [
            f"- **{role}** : {names}"
            for role, names in draw(st.lists(st.tuples(hostile_text, hostile_text), max_size=3))
        ]
        name = draw(hostile_text)
        url = draw(st.one_of(st.just("https://creativecommons.org/licenses/by/4.0/"), url_text))
        credits.append(f"- **Licence** : [{name}]({url})")
        parts.append("## Crédits\n\n" + "\n".join(credits) + "\n")
    huge = draw(st.sampled_from([0] * 8 + [100_000, 700_000]))
    if huge:
        parts.append(draw(st.sampled_from(["x", "é", "[", "*", "<"])) * huge + "\n")
    if draw(st.integers(0, 5)) == 5:
        parts.append("---\ntitle: a second front matter\n---\n")
    return "\n".join(parts)


@st.composite
def fiche_files(draw: st.DrawFn, *, max_expansion: int = 200_000) -> Fiche:
    """A fiche as bytes on disk: its text in some encoding, line ending, with some damage."""
    text = draw(front_matters(max_expansion=max_expansion)) + "\n" + draw(bodies())
    if draw(st.integers(0, 19)) == 19:
        text = text.replace("---\n", "", 1 + draw(st.integers(0, 1)))  # no front matter
    newline = draw(st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"]))
    text = text.replace("\n", newline)
    encodings = ["utf-8"] * 16 + ["utf-8-sig", "utf-16", "latin-1", "cp1252"]
    data = text.encode(draw(st.sampled_from(encodings)), "replace")
    damage = draw(st.sampled_from(["none"] * 17 + ["bytes", "cut", "nul"]))
    if data and damage != "none":
        at = draw(st.integers(0, len(data)))
        if damage == "bytes":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif damage == "cut":
            data = data[:at]
        else:
            data = data[:at] + b"\x00" + data[at:]
    name = draw(
        st.one_of(
            st.sampled_from(FICHE_NAMES), st.text(min_size=1, max_size=12).map(lambda t: t + ".md")
        )
    )
    name = name.replace("\x00", "").replace("/", "_") if not name.startswith("sub/") else name
    return Fiche(name, data)


def write_fiches(folder: Path, fiches: Iterable[Fiche], sandbox: Sandbox) -> None:
    """Write ``fiches`` under ``folder`` (tokens filled in, in UTF-8 text only where they
    are), skipping a name the filesystem refuses (too long in bytes, say)."""
    folder.mkdir(parents=True, exist_ok=True)
    for fiche in fiches:
        path = folder / fiche.name
        data = fiche.data.replace(b"@ROOT@", os.fsencode(sandbox.root))
        data = data.replace(b"@BASE@", DEAD.encode()).replace(b"@DEAD@", DEAD.encode())
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError:
            continue


# -- config files ----------------------------------------------------------------------------

OPTION_NAMES = [
    "jobs", "per_host", "per-host", "rate_limit", "rate-limit", "retries", "timeout",
    "max_height", "max-height", "mirrors", "mirror", "video_password", "title", "copy",
    "transcode", "fit", "refresh_after", "offline", "log_file", "dry_run", "archive", "kit",
    "output", "quiet", "config", "sample", "json", "retired_before", "paths", "manifest_path",
    "min_rate", "max_time", "allow_http_redirects", "help", "version", "unknown", "",
]  # fmt: skip
COMMANDS = ["manifest", "download", "package", "sync", "verify", "status", "prune"]


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but for control characters JSON leaves."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_string(name)


_toml_atoms = st.one_of(
    st.sampled_from(
        [
            "nan",
            "-nan",
            "inf",
            "-inf",
            "0",
            "-1",
            "1",
            "65",
            "4320",
            "1e308",
            "-0.0",
            "0.05",
            str(2**63),
            str(2**64),
            "9" * 30,
            "true",
            "false",
            '""',
            '"fast"',
            '"500k"',
            '"2M"',
            '"1.5G"',
            '"-1k"',
            '"0"',
            '"nan"',
            '"24h"',
            '"7d"',
            '"0s"',
            '"-5m"',
            '"1e999"',
            '"tiny"',
            '"low"',
            '"720p"',
            '"\\u0000"',
            '"\\u001b[2J"',
            '"@DEAD@=@BASE@"',
            '"@BASE@=@BASE@"',
            '"ftp://a=http://b"',
            '"archive"',
            '"kit"',
            '"out/m.json"',
            "1979-05-27T07:32:00Z",
            "1979-05-27",
            "07:32:00",
            "[]",
            "[1, 2]",
            '["500k"]',
            "{}",
            "{a = 1}",
            "[[1], [2]]",
            '"2026-01-01"',
            '"x-fuzz.toml"',
        ]
    ),
    hostile_text.map(toml_string),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
)


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    """A ``--config`` file: option names (known, unknown, misspelt) with values of every
    type, at the top level and in command tables, sometimes not UTF-8 or not TOML at all."""
    options = st.tuples(st.sampled_from(OPTION_NAMES), _toml_atoms).filter(
        lambda kv: not slow_config_value(*kv)
    )
    top = draw(st.lists(options, max_size=4, unique_by=lambda kv: kv[0]))
    lines = [f"{_toml_key(k)} = {v}" for k, v in top]
    for table in draw(
        st.lists(
            st.sampled_from([*COMMANDS, "nope", "download.sub", "'a.b'"]), max_size=2, unique=True
        )
    ):
        lines.append(f"[{table}]")
        pairs = draw(st.lists(options, max_size=3, unique_by=lambda kv: kv[0]))
        lines += [f"{_toml_key(k)} = {v}" for k, v in pairs]
    data = "\n".join(lines).encode("utf-8")
    damage = draw(st.sampled_from(["none", "none", "none", "none", "latin-1", "bom", "nul", "cut"]))
    if damage == "latin-1":
        data = data + b'\ntitle = "caf\xe9"\n'
    elif damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "nul":
        data = data + b"\x00"
    elif damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def slow_config_value(name: str, value: str) -> bool:
    """Whether a config value would make a run long on a server that answers well: a thousand
    retries, an hour's time-out or a cap of a few bytes per second are a user's to choose, not
    inputs of a fuzz run. Values of a wrong type are never slow: refusing them is the test."""
    name = name.replace("-", "_")
    text = value.strip('"').strip()
    scale = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1:].lower(), 1)
    try:
        number = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        return False
    if not math.isfinite(number):
        return False
    if name == "retries":
        return number > 2
    if name == "timeout":
        return number > 5
    if name in ("rate_limit", "rate-limit"):
        return 0 < number < 4 * 1024 * 1024
    return False


# -- HTTP answers ----------------------------------------------------------------------------

TARGETS = {
    "api": re.compile(r"^/api/v1/videos/[^/]+/?$"),
    "captions-api": re.compile(r"^/api/v1/videos/[^/]+/captions/?$"),
    "video": re.compile(r"^/download/"),
    "preview": re.compile(r"^/lazy-static/(?:previews|thumbnails)/"),
    "caption": re.compile(r"^/lazy-static/video-captions/"),
    "segments": re.compile(r"^/static/streaming-playlists/.*-segments-sha256\.json$"),
    "fiche-pdf": re.compile(r"^/fiche\.pdf$"),
    "transcript-pdf": re.compile(r"^/transcription\.pdf$"),
}
JSON_TARGETS = ("api", "captions-api", "segments")
_FIXTURES = Path(__file__).parent / "fixtures" / "peertube"


def _answer_of(name: str) -> Any:
    document = json.loads((_FIXTURES / name).read_text(encoding="utf-8"))
    document.pop("_source", None)  # the fixture's note of where its shape comes from
    return document


# The shapes changes to an answer are drawn against: real answers of PeerTube 7 (the genuine
# answer the fake sends has the same shape; a change to a path it lacks is skipped).
REFERENCES: dict[str, Any] = {
    "api": _answer_of("v7-video.json"),
    "captions-api": _answer_of("v7.1-captions.json"),
    "segments": {"e443df78-360-fragmented.mp4": {"1248-65247": "e8" * 32, "65248-79999": "a" * 64}},
}
# Fields of the API's answers that become URLs, file names, sizes, choices.
API_HOT: list[Path_] = [
    ("uuid",), ("shortUUID",), ("duration",), ("state",), ("state", "id"), ("isLive",),
    ("previewPath",), ("thumbnailPath",), ("language", "id"), ("licence", "id"), ("name",),
    ("privacy", "id"), ("files",), ("streamingPlaylists",), ("streamingPlaylists", 0, "files"),
    ("streamingPlaylists", 0, "segmentsSha256Url"), ("streamingPlaylists", 0, "files", 0),
    ("streamingPlaylists", 0, "files", 0, "fileDownloadUrl"),
    ("streamingPlaylists", 0, "files", 0, "fileUrl"), ("streamingPlaylists", 0, "files", 0, "size"),
    ("streamingPlaylists", 0, "files", 0, "resolution", "id"),
    ("streamingPlaylists", 0, "files", 0, "height"), ("streamingPlaylists", 0, "files", 0, "hasVideo"),
    ("data",), ("total",), ("data", 0, "captionPath"), ("data", 0, "fileUrl"),
    ("data", 0, "language", "id"), ("data", 0, "language"),
]  # fmt: skip
PORTAL = (
    b"<!doctype html><html><head><title>Portail captif</title></head><body>"
    b"<form action=/login><input name=user></form><script>location='/login'</script>"
    b"<x-fuzz onload=alert(1)></x-fuzz></body></html>\n"
)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
LOCATIONS = [
    "@SELF@", "@SELF@?again", "/fiche.pdf", "/nowhere", "/download/../fiche.pdf",
    "@BASE@/transcription.pdf", "//127.0.0.1:9/x", "@DEAD@/x", "https://127.0.0.1:@PORT@/fiche.pdf",
    "http://tube.example.org/x.mp4", "ftp://127.0.0.1/x", "file:///etc/passwd",
    "file://@ROOT@/victim/settings.json", "javascript:alert(1)", f"data:text/html,<{MARKER}>",
    "", "http://[::1", f"http://user:{SECRET}@127.0.0.1:@PORT@/fiche.pdf", "\x1b[2J",
]  # fmt: skip
EXTRA_HEADERS = [
    ("ETag", '"fuzz"'), ("ETag", 'W/"weak"'), ("ETag", "unquoted"), ("ETag", '"' + "e" * 4000 + '"'),
    ("ETag", ""), ("Last-Modified", "yesterday"), ("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT"),
    ("Content-Range", "bytes 0-0/1"), ("Content-Range", "bytes */*"), ("Content-Range", "bytes 5-2/1"),
    ("Content-Range", "bytes 0-99999999999999999999/99999999999999999999"), ("Content-Range", "lines 1-2/3"),
    ("Content-Encoding", "gzip"), ("Content-Encoding", "br"), ("Content-Encoding", "x-fuzz"),
    ("Content-Disposition", 'attachment; filename="../../victim/settings.json"'),
    ("Content-Disposition", "attachment; filename*=UTF-8''..%2F..%2Fvictim%2Findex.html"),
    ("Content-Type", "text/html; charset=utf-8"), ("Content-Type", "application/pdf"),
    ("Content-Type", "video/mp4"), ("Content-Type", "application/problem+json"),
    ("Content-Type", "multipart/byteranges; boundary=x"), ("Content-Type", ""),
    ("Retry-After", "99999999999999999999"), ("Retry-After", "-5"), ("Retry-After", "soon"),
    ("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"), ("Accept-Ranges", "none"),
    ("X-Fuzz", "\x1b]0;pwned\x07"), ("Set-Cookie", "a=" + "c" * 3000),
    ("Cache-Control", "no-store"), ("Vary", "*"),
]  # fmt: skip
STATUSES = [
    200, 200, 200, 200, 201, 203, 204, 206, 300, 301, 302, 303, 304, 307, 308, 400, 401, 403,
    404, 405, 406, 410, 416, 418, 429, 451, 500, 502, 503, 504, 599,
]  # fmt: skip
# An API answering 429 or 503 is waited out as PeerTube asks (a window, up to 5 times), which
# takes minutes by design: no fault of this suite's in-process runs sends those to the API.
SLOW_FOR_API = {429, 503}
ENDLESS = 48 * 1024 * 1024  # an "endless" body: three times the largest cap on an answer


@dataclass(frozen=True)
class Answer:
    """One spoilt answer: a status, a body made from the genuine one, headers, a length."""

    status: int = 200
    body: str = "genuine"  # genuine | cut | portal | empty | garbage | junk | json | other
    cut: float = 0.5
    garbage: bytes = b""
    raw_json: Raw | None = None  # for "json": a whole other document, else the genuine one
    changes: tuple[Mutation, ...] = ()  # for "json": with these changes
    length: str = "true"  # true | more | less | none (chunked) | bogus
    headers: tuple[tuple[str, str], ...] = ()
    location: str | None = None


@dataclass(frozen=True)
class Slow:
    """An answer that takes its time: ``trickle`` bytes every ``every`` seconds, a ``stall``
    after some bytes, or an ``endless`` body (no Content-Length), or headers past any size."""

    kind: str  # trickle | stall | endless | headers | think
    every: float = 0.5


@st.composite
def answers(draw: st.DrawFn, target: str) -> Answer:
    """A spoilt answer for ``target`` (see :data:`TARGETS`)."""
    statuses = [
        s for s in STATUSES if not (target in ("api", "captions-api") and s in SLOW_FOR_API)
    ]
    status = draw(st.sampled_from(statuses))
    kinds = ["genuine", "cut", "portal", "empty", "garbage", "junk", "other"]
    if target in JSON_TARGETS:
        kinds += ["json", "json", "json"]
    body = draw(st.sampled_from(kinds))
    headers = draw(st.lists(st.sampled_from(EXTRA_HEADERS), max_size=3))
    if target in ("api", "captions-api"):
        headers = [h for h in headers if h[0] != "Retry-After"]
    raw = None
    changes: tuple[Mutation, ...] = ()
    if body == "json" and target in REFERENCES:
        edits = st.lists(mutations(REFERENCES[target], API_HOT), min_size=1, max_size=3)
        changes = tuple(draw(edits))
    if body == "json" and draw(st.integers(0, 3)) == 3:
        raw = draw(
            st.sampled_from(
                [Raw("null"), Raw("[]"), Raw('"x"'), Raw("{"), Raw("NaN"), Raw("9" * 5000),
                 Raw("[" * 100_000), Raw("[" * 100_000 + "]" * 100_000), Raw('{"files": 5}'),
                 Raw('{"streamingPlaylists": [{"files": [{}]}]}'), Raw("{}" * 3)]
            )
        )  # fmt: skip
    return Answer(
        status=status,
        body=body,
        cut=draw(st.floats(0, 1)),
        garbage=draw(st.binary(max_size=64)) if body == "garbage" else b"",
        raw_json=raw,
        changes=changes if raw is None else (),
        length=draw(st.sampled_from(["true", "true", "true", "more", "less", "none", "bogus"])),
        headers=tuple(headers),
        location=draw(st.sampled_from(LOCATIONS)) if 300 <= status < 400 else None,
    )


class Genuine:
    """What each target answers when nothing is wrong: its bytes and content type."""

    def __init__(self, answers: Mapping[str, tuple[bytes, str]]) -> None:
        self.answers = dict(answers)

    def __call__(self, target: str) -> tuple[bytes, str]:
        return self.answers.get(target, (b"", "application/octet-stream"))

    def document(self, target: str) -> Any:
        return json.loads(self(target)[0])


class FaultyRoute:
    """A route in front of every other on the test server: the first answers for each target
    are spoilt as a scenario says, the next ones left to the routes and files behind it.

    ``scenario`` maps a target to its sequence of answers (:class:`Answer` or :class:`Slow`).
    Install it before the fake instance, so that it is asked first.
    """

    def __init__(self, server: FileServer, genuine: Genuine, sandbox_root: Path) -> None:
        self.server = server
        self.genuine = genuine
        self.root = sandbox_root
        self.scenario: dict[str, Sequence[Answer | Slow]] = {}
        self.used: dict[str, int] = {}
        self.lock = threading.Lock()
        self.big = b""

    def play(self, scenario: Mapping[str, Sequence[Answer | Slow]], *, root: Path) -> None:
        """Spoil answers as ``scenario`` says from now on, ``root`` filling ``@ROOT@``."""
        with self.lock:
            self.scenario = dict(scenario)
            self.used = {}
            self.root = root

    def __call__(self, call: Call) -> Reply | Served | None:
        target = next((name for name, pattern in TARGETS.items() if pattern.match(call.path)), None)
        if target is None:
            return None
        with self.lock:
            spoilt = self.scenario.get(target, ())
            number = self.used.get(target, 0)
            if number >= len(spoilt):
                return None
            self.used[target] = number + 1
            answer = spoilt[number]
        if isinstance(answer, Slow):
            return self._slow(answer, target)
        return self._reply(answer, target, call)

    def _fill(self, text: str, call: Call) -> str:
        return (
            text.replace("@SELF@", call.path)
            .replace("@BASE@", self.server.url(""))
            .replace("@PORT@", str(self.server.port))
            .replace("@ROOT@", str(self.root))
            .replace("@DEAD@", DEAD)
        )

    def _reply(self, answer: Answer, target: str, call: Call) -> Reply:
        data, kind = self.genuine(target)
        body = {
            "genuine": data,
            "cut": data[: int(len(data) * answer.cut)],
            "portal": PORTAL,
            "empty": b"",
            "garbage": answer.garbage,
            "junk": data + b"\x00<junk/>" * 8,
            "other": self.genuine("fiche-pdf" if target != "fiche-pdf" else "video")[0],
        }.get(answer.body, data)
        if answer.body == "json":
            if answer.raw_json is not None:
                text = answer.raw_json.text
            else:
                text = encode(mutate(self.genuine.document(target), answer.changes))
            body = self._fill(text, call).encode("utf-8", "surrogatepass")
        headers = [("Content-Type", "text/html" if answer.body == "portal" else kind)]
        headers += [(k, self._fill(v, call)) for k, v in answer.headers]
        if answer.location is not None:
            headers.append(("Location", self._fill(answer.location, call)))
        chunked = False
        if answer.length == "more":
            headers += [("Content-Length", str(len(body) + 1000)), ("Connection", "close")]
        elif answer.length == "less":
            headers += [("Content-Length", str(max(len(body) - 10, 0))), ("Connection", "close")]
        elif answer.length == "bogus":
            headers += [("Content-Length", "-1, 12"), ("Connection", "close")]
        elif answer.length == "none":
            chunked = True
        return Reply(answer.status, body, headers, chunked=chunked)

    def _slow(self, slow: Slow, target: str) -> Reply | Served:
        data, kind = self.genuine(target)
        if slow.kind == "trickle":
            return Served(content=data or PDF, content_type=kind, trickle=(1, slow.every))
        if slow.kind == "stall":
            return Served(
                content=data or PDF,
                content_type=kind,
                stall_after=max(len(data) // 3, 1),
                stall_seconds=TIME_LIMIT,
                stall_times=1,
            )
        if slow.kind == "think":
            return Served(content=data or PDF, content_type=kind, delay=TIME_LIMIT)
        if slow.kind == "headers":
            many = [(f"X-Fuzz-{i}", "h" * 4000) for i in range(100)]
            return Reply(200, data, [("Content-Type", kind), *many, ("Connection", "close")])
        # endless: a body far past any cap, with no length said
        if not self.big:
            self.big = (b"[" if target in JSON_TARGETS else b"\x00") * ENDLESS
        return Reply(200, self.big, [("Content-Type", kind)], chunked=True)
