"""Shared by the scale benchmarks (``bench_sync``, ``bench_package``): an archive of many videos
made quickly, a run's time by phase, and a plot of time against collection size as a PNG.

The PNG is drawn here, pixel by pixel (a 5×7 font, straight lines, zlib): a plot of three
curves needs no matplotlib, numpy and Pillow in the benchmark's environment.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from math import log10
from pathlib import Path

from archiver import media
from archiver.archive import Archive, Derived
from archiver.catalog import _CHANGES_TABLES
from archiver.entry import Entry
from archiver.files import file_sha256

# -- an archive of many videos, posters included, without 10,000 runs of ffmpeg ----------------


def seed_derived(root: Path, entries: Sequence[Entry], clip: Path) -> None:
    """Record, for every entry's held video, what the kit's first build would make of it with
    FFmpeg: its facts (duration, size) and its poster. The videos differ only by a trailer
    (their own sha256), so one frame made by ffmpeg is each one's poster; making 10,000 of
    them took 23 minutes and measures nothing of a sync that has nothing to do."""
    info = media.probe(clip)
    poster = clip.with_name("poster.jpg")
    media.make_poster(clip, poster, info)
    digest, size = file_sha256(poster), poster.stat().st_size
    name = f"poster-v{media.POSTER_VERSION}.jpg"
    with Archive(root) as archive, archive.locked():
        for entry in entries:
            record = archive.current(entry.id, "video")
            assert record is not None, entry.id
            archive.record_media_facts(record.sha256, info.duration, info.width, info.height)
            target = archive.derived_path(record.sha256, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(poster, target)
            archive.record_derived(
                Derived(
                    sha256=record.sha256,
                    kind="poster",
                    version=media.POSTER_VERSION,
                    path=target.relative_to(root).as_posix(),
                    file_sha256=digest,
                    file_size=size,
                    duration=info.duration,
                    width=info.width,
                    height=info.height,
                )
            )


# -- the same folders for another tree, whose catalog may be older -------------------------------

# What each catalog migration added, undone, for a tree that knows only the versions before it
# (``--base``): a twin's catalog is brought back to the version the base tree knows. Only
# migrations that add what older code never reads may be listed.
_CHANGES_TRIGGERS = [
    f"DROP TRIGGER changes_{table}_{event}"
    for table in _CHANGES_TABLES  # this tree's: what brings its catalog down
    for event in ("insert", "delete", "update")
]
# What brings a catalog back from each version to the one before it, statement by statement.
UNDO = {
    5: ["ALTER TABLE items DROP COLUMN entry_note"],
    6: [*_CHANGES_TRIGGERS, "DROP TABLE changes"],
}


def twin(folder: Path, copy: Path, base: Path) -> None:
    """``copy``: ``folder`` hard-linked (every file is replaced whole when written, never
    edited in place), but for the catalog, copied and brought back to the version the tree
    at ``base`` knows. Runs of two trees then time the same bytes without one tree's catalog
    refusing the other's (a newer catalog is refused, as it should be)."""
    if copy.exists():
        return
    subprocess.run(["cp", "-al", str(folder), str(copy)], check=True)
    for catalog in copy.rglob("catalog.sqlite*"):
        data = catalog.read_bytes()
        catalog.unlink()
        catalog.write_bytes(data)
    known = subprocess.run(
        [sys.executable, "-c", "from archiver.catalog import SCHEMA_VERSION as v; print(v)"],
        env={**os.environ, "PYTHONPATH": str(base)},
        capture_output=True,
        text=True,
        check=True,
    )
    version = int(known.stdout)
    for catalog in copy.rglob("catalog.sqlite"):
        db = sqlite3.connect(catalog)
        try:
            have = db.execute("PRAGMA user_version").fetchone()[0]
            for number in range(have, version, -1):
                for statement in UNDO[number]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version:d}")
            db.commit()
        finally:
            db.close()


# -- where a run's time goes ---------------------------------------------------------------------

PHASES = {
    "start-up (imports)": ["imports"],
    "fiches → manifest": ["archiver.sync:build_valid"],
    "catalog: entries noted (entry.json)": ["archiver.archive:Archive.record_items"],
    "download: plan and checks": ["archiver.sync:fetch_into"],
    "last manifest written": ["archiver.sync:write_manifest"],
    "kit: plan (catalog, posters)": ["archiver.kit:plan_kit"],
    # This tree makes pages in site_sources (provenance.json within it); earlier ones in
    # render_site, then provenance_json.
    "kit: pages, search index, provenance": [
        "archiver.kit:site_sources",
        "archiver.kit:render_site",
        "archiver.kit:provenance_json",
    ],
    "kit: write (survey, compare)": ["archiver.kit:write_kit"],
    # A sealed no-op (archiver.settled): the fiches read for its key, the archive and kit
    # looked at, the sealed report read.
    "seal: fiches read": ["archiver.settled:key_of"],
    "seal: archive and kit looked at": ["archiver.settled:Survey.holds"],
    "seal: report read": ["archiver.settled:Seal.report"],
    # A whole run that found nothing to do: what sealing it cost.
    "seal: archive and kit surveyed": ["archiver.settled:survey"],
    "seal: written": ["archiver.settled:write"],
}
_TIMER = r"""
import atexit, functools, importlib, sys, time
start = time.perf_counter()
import archiver.cli
imported = time.perf_counter()
spent = {}
def wrap(name):
    module, attr = name.split(":")
    try:
        owner = importlib.import_module(module)
    except ModuleNotFoundError:  # a stage another tree does not have
        return
    *path, last = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    if not hasattr(owner, last):
        return
    real = getattr(owner, last)
    @functools.wraps(real)
    def timed(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - begun
    setattr(owner, last, timed)
for name in sys.argv[1].split(","):
    wrap(name)
def report():
    print(f"imports {imported - start:.3f}", file=sys.stderr)
    for name, seconds in spent.items():
        print(f"{name} {seconds:.3f}", file=sys.stderr)
    print(f"total {time.perf_counter() - start:.3f}", file=sys.stderr)
atexit.register(report)
sys.argv = ["archiver", *sys.argv[2:]]
archiver.cli.main()
"""


def phases(command: Sequence[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Seconds spent in each of :data:`PHASES` by one run of ``archiver COMMAND...`` (each
    function wrapped by a timer: no profiler's overhead), and in all."""
    wrapped = ",".join(name for names in PHASES.values() for name in names if ":" in name)
    done = subprocess.run(
        [sys.executable, "-c", _TIMER, wrapped, *command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    found: dict[str, float] = {}
    for line in done.stderr.splitlines():
        name, _, seconds = line.rpartition(" ")
        try:
            found[name] = float(seconds)
        except ValueError:
            continue
    if "total" not in found:
        raise RuntimeError(f"the timed run failed: {done.stderr[-2000:]}")
    if "archiver.kit:site_sources" in found:  # it calls provenance_json: not counted twice
        found.pop("archiver.kit:provenance_json", None)
    shown = {label: sum(found.get(name, 0.0) for name in names) for label, names in PHASES.items()}
    # The download's own share, without the entries it notes (timed apart, inside it).
    shown["download: plan and checks"] -= shown["catalog: entries noted (entry.json)"]
    shown["all"] = found["total"]
    return shown


# -- a plot of time against collection size, as a PNG --------------------------------------------


@dataclass(frozen=True)
class Curve:
    label: str
    points: Sequence[tuple[float, float]]  # (videos, seconds)
    colour: tuple[int, int, int]
    joined: bool = True  # False: marks alone (targets)


# A 5×7 font: each glyph seven rows of five bits, as hex. Text is drawn in capitals.
_FONT = {
    "0": "0e11131519110e",
    "1": "040c040404040e",
    "2": "0e11010204081f",
    "3": "1f02040201110e",
    "4": "02060a121f0202",
    "5": "1f101e0101110e",
    "6": "0608101e11110e",
    "7": "1f010204080808",
    "8": "0e11110e11110e",
    "9": "0e11110f01020c",
    ".": "0000000000000c",
    ",": "00000000000c08",
    " ": "00000000000000",
    "-": "000000001f0000",
    "(": "02040808080402",
    ")": "08040202020408",
    "/": "01010204081010",
    ":": "000c0c000c0c00",
    "=": "00001f001f0000",
    "≤": "0204080402001f",
    "A": "0e11111f111111",
    "B": "1e11111e11111e",
    "C": "0e11101010110e",
    "D": "1c12111111121c",
    "E": "1f10101e10101f",
    "F": "1f10101e101010",
    "G": "0e11101711110f",
    "H": "1111111f111111",
    "I": "0e04040404040e",
    "J": "0702020202120c",
    "K": "11121418141211",
    "L": "1010101010101f",
    "M": "111b1515111111",
    "N": "11111915131111",
    "O": "0e11111111110e",
    "P": "1e11111e101010",
    "Q": "0e111111151209",
    "R": "1e11111e141211",
    "S": "0f10100e01011e",
    "T": "1f040404040404",
    "U": "1111111111110e",
    "V": "11111111110a04",
    "W": "11111115151b11",
    "X": "11110a040a1111",
    "Y": "11110a04040404",
    "Z": "1f01020408101f",
    "É": "021f101e10101f",
    "×": "00110a040a1100",
}


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, colour: tuple[int, int, int]) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            at = (y * self.width + x) * 3
            self.pixels[at : at + 3] = bytes(colour)

    def line(
        self, a: tuple[int, int], b: tuple[int, int], colour: tuple[int, int, int], width: int = 1
    ) -> None:
        (x0, y0), (x1, y1) = a, b
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for step in range(steps + 1):
            x = round(x0 + (x1 - x0) * step / steps)
            y = round(y0 + (y1 - y0) * step / steps)
            for dx in range(width):
                for dy in range(width):
                    self.dot(x + dx - width // 2, y + dy - width // 2, colour)

    def text(
        self, x: int, y: int, words: str, colour: tuple[int, int, int] = (0, 0, 0), scale: int = 2
    ) -> int:
        """Draw ``words`` from its top left corner; the x where it ends."""
        for char in words.upper():
            rows = _FONT.get(char, _FONT[" "])
            for row in range(7):
                bits = int(rows[row * 2 : row * 2 + 2], 16)
                for column in range(5):
                    if bits & (1 << (4 - column)):
                        for dx in range(scale):
                            for dy in range(scale):
                                self.dot(x + column * scale + dx, y + row * scale + dy, colour)
            x += 6 * scale
        return x

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * self.width * 3 : (y + 1) * self.width * 3])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def plot(path: Path, title: str, curves: Sequence[Curve], *, width: int = 900) -> None:
    """Seconds against videos, both on log scales (a cost that grows with the collection is
    a line of slope 1; one that does not, a flat line), written to ``path`` as a PNG."""
    height = width * 2 // 3
    canvas = _Canvas(width, height)
    left, right, top = 110, width - 70, 60
    bottom = height - 90 - 24 * len(curves)  # room for the axis's name and the legend
    xs = [x for curve in curves for x, _ in curve.points]
    ys = [y for curve in curves for _, y in curve.points if y > 0]
    x_low, x_high = 10 ** int(log10(min(xs))), 10 ** (int(log10(max(xs)) + 0.999))
    y_low, y_high = 10 ** int(log10(min(ys)) - (min(ys) < 1)), 10 ** (int(log10(max(ys)) + 1))

    def at(x: float, y: float) -> tuple[int, int]:
        fx = (log10(x) - log10(x_low)) / (log10(x_high) - log10(x_low))
        fy = (log10(y) - log10(y_low)) / (log10(y_high) - log10(y_low))
        return round(left + fx * (right - left)), round(bottom - fy * (bottom - top))

    grey, black = (210, 210, 210), (0, 0, 0)
    decade = x_low
    while decade <= x_high:
        x, _ = at(decade, y_low)
        canvas.line((x, top), (x, bottom), grey)
        label = f"{decade:,}".replace(",", " ")
        canvas.text(x - len(label) * 6, bottom + 10, label)
        decade *= 10
    value = y_low
    while value <= y_high:
        _, y = at(x_low, value)
        canvas.line((left, y), (right, y), grey)
        label = f"{value:g} S"
        canvas.text(left - 12 - len(label) * 12, y - 7, label)
        value *= 10
    canvas.line((left, bottom), (right, bottom), black, 2)
    canvas.line((left, top), (left, bottom), black, 2)
    canvas.text(left, 20, title)
    canvas.text((left + right) // 2 - 36, bottom + 34, "VIDEOS")
    for number, curve in enumerate(curves):
        points = [at(x, y) for x, y in sorted(curve.points) if y > 0]
        for a, b in itertools.pairwise(points):
            if curve.joined:
                canvas.line(a, b, curve.colour, 3)
        for x, y in points:
            if curve.joined:
                for dx in range(-4, 5):
                    canvas.line((x + dx, y - 4), (x + dx, y + 4), curve.colour)
            else:  # a cross
                canvas.line((x - 7, y - 7), (x + 7, y + 7), curve.colour, 3)
                canvas.line((x - 7, y + 7), (x + 7, y - 7), curve.colour, 3)
        y = bottom + 64 + number * 24
        if curve.joined:
            canvas.line((left, y + 7), (left + 40, y + 7), curve.colour, 3)
        else:
            canvas.line((left + 13, y), (left + 27, y + 14), curve.colour, 3)
            canvas.line((left + 13, y + 14), (left + 27, y), curve.colour, 3)
        canvas.text(left + 52, y, curve.label)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canvas.png())


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)
