"""Which rendition of each video a run takes: every ``--max-height``, ``--fit`` and
``--transcode`` rule, in one place, over a type both the downloader and the kit use.

A :class:`Rendition` is one way to have a video: its height, its size, and a ``key`` that
says where it comes from to whoever offered it (a URL the PeerTube instance gave, a path in
the archive). The downloader chooses among what an instance offers; the kit among what the
archive holds; the rules are the same. Pure functions: no network, no disk.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import UsageError
from .units import format_bytes

__all__ = [
    "FAT32_CLUSTER",
    "FILES_PER_VIDEO",
    "FS_RESERVE",
    "KIT_OVERHEAD",
    "KIT_OVERHEAD_PER_VIDEO",
    "FitPlan",
    "Rendition",
    "best_under",
    "fs_margin",
    "kit_margin",
    "kit_overhead",
    "plan_fit",
    "reencode_cap",
]

log = logging.getLogger(__name__)

# What a kit holds besides its videos, for --fit's plan: its pages and posters (measured about
# 60 KiB a video with a 640 px poster), the catalog, scripts, styles and checksums; rounded up.
KIT_OVERHEAD = 256 * 1024
KIT_OVERHEAD_PER_VIDEO = 96 * 1024

# The file system's share, counted alike by --fit's plan and by the check before a kit is
# written (kit/write.py), with :func:`fs_margin`: a cluster for each file (what its last
# cluster wastes, at most) and folder (its first), and FS_RESERVE for what the file system
# itself takes as it grows (a directory's entries, its journal's records).
FS_RESERVE = 64 * 1024
# The plan's cluster: the largest FAT32 and exFAT use by default up to 32 GB. The check takes
# the real one, which on ext4, NTFS, tmpfs and any FAT32 key is no larger: a planned kit
# passes it. (exFAT over 32 GB uses 128 KiB: a budget for such a key keeps more room.)
FAT32_CLUSTER = 32 * 1024
# The files a kit makes whatever its videos: the bag's six tag files, LISEZMOI.txt,
# verifier-cle.ps1 and the update's journal at the root; the catalog, its search index,
# provenance.json and the styles and scripts under data/; with room to spare.
KIT_FILES = 20
# Its folders: data/, data/videos/, data/assets/, each also in the staging folder, and that.
KIT_FOLDERS = 7
# A video's files, as the plan counts them when it does not know better: its page, the video,
# its poster, two PDFs and a caption track. And its folders: its own, and its staged one.
FILES_PER_VIDEO = 6
FOLDERS_PER_VIDEO = 2


def fs_margin(*, files: int, folders: int, cluster: int, reserve: int = FS_RESERVE) -> int:
    """The room ``files`` new files and ``folders`` new folders take on a file system that
    allocates by ``cluster`` bytes, besides their bytes, with ``reserve`` for the file system
    itself: what --fit's plan keeps and what the check before writing a kit asks for.

    >>> fs_margin(files=3, folders=1, cluster=4096)
    81920
    """
    return (files + folders) * cluster + reserve


def kit_margin(videos: int, *, files: int = 0, cluster: int = FAT32_CLUSTER) -> int:
    """The file system's share of a kit of ``videos``: :func:`fs_margin` for its files
    (``files``, its videos' files when known: never fewer than :data:`FILES_PER_VIDEO` each
    are counted) and folders.

    >>> kit_margin(10) // 1024
    3488
    """
    return fs_margin(
        files=KIT_FILES + max(files, FILES_PER_VIDEO * videos),
        folders=KIT_FOLDERS + FOLDERS_PER_VIDEO * videos,
        cluster=cluster,
    )


def kit_overhead(videos: int, *, files: int = 0) -> int:
    """What a kit of ``videos`` needs besides the videos: pages, posters, checksums, and the
    file system's share (:func:`kit_margin`).

    >>> kit_overhead(10)
    4816896
    """
    return KIT_OVERHEAD + KIT_OVERHEAD_PER_VIDEO * videos + kit_margin(videos, files=files)


@dataclass(frozen=True)
class Rendition:
    """One way to have a video: ``height`` pixels tall, ``size`` bytes, found by ``key``."""

    height: int
    size: int
    key: str


def best_under(renditions: Sequence[Rendition], max_height: int | None) -> Rendition | None:
    """The tallest rendition at most ``max_height`` (the tallest of all when ``None``).

    When every rendition is taller than the cap, the smallest one: the closest to what was
    asked (``--transcode`` can shrink it for the kit), never the tallest.

    >>> offered = [Rendition(1080, 90, "a"), Rendition(360, 20, "b"), Rendition(720, 50, "c")]
    >>> best_under(offered, 480).key, best_under(offered, None).key, best_under(offered, 240).key
    ('b', 'a', 'b')
    """
    if not renditions:
        return None
    ladder = sorted(renditions, key=lambda r: (r.height, r.size))
    fitting = [r for r in ladder if max_height is None or r.height <= max_height]
    if fitting:
        return fitting[-1]
    log.warning(
        "no resolution at most %sp offered; taking the smallest, %sp",
        max_height,
        ladder[0].height,
    )
    return ladder[0]


def reencode_cap(
    preset_height: int | None, *, max_height: int | None, budget: int | None
) -> int | None:
    """With a ``--transcode`` preset: the height past which a video is re-encoded, if any.

    ``--max-height`` when given; else, without a budget, the preset's own height (with a
    budget, only the budget calls for re-encoding). No preset, no re-encoding.

    >>> reencode_cap(480, max_height=None, budget=None)
    480
    >>> reencode_cap(480, max_height=720, budget=None)
    720
    >>> reencode_cap(480, max_height=None, budget=10**9) is None
    True
    """
    if preset_height is None:
        return None
    if max_height is not None or budget is not None:
        return max_height
    return preset_height


@dataclass(frozen=True)
class FitPlan:
    """The rendition chosen for each video so that the kit fits a budget.

    Over budget only when the caller allowed it (``--transcode`` shrinks the rest): then every
    video is at its lowest rendition.
    """

    choices: tuple[tuple[str, Rendition], ...]  # (entry id, rendition)
    overhead: int  # all but the videos, ``margin`` included
    budget: int
    reencode: str | None = None  # the preset that will shrink the kit when it is over budget
    margin: int = 0  # of ``overhead``, what is kept for the file system (:func:`kit_margin`)

    @property
    def total(self) -> int:
        return self.overhead + sum(r.size for _, r in self.choices)

    @property
    def fits(self) -> bool:
        return self.total <= self.budget


def plan_fit(
    options: Mapping[str, Sequence[Rendition]],
    *,
    budget: int,
    overhead: int,
    reencode: str | None = None,
    margin: int = 0,
) -> FitPlan:
    """Each video's rendition, as tall and as even as the budget allows.

    Every video starts at its tallest; while the kit is over budget, the video at the tallest
    height (the largest file among equals) steps down one rendition. When even the lowest
    renditions do not fit, :class:`UsageError` gives the smallest size reachable, unless a
    ``reencode`` preset may shrink the videos further: then the plan is the lowest
    renditions, over budget. ``margin``, the part of ``overhead`` kept for the file
    system, is noted in the plan for the line that shows it.

    >>> plan = plan_fit({"a": [Rendition(720, 60, "a7"), Rendition(360, 20, "a3")],
    ...                  "b": [Rendition(720, 50, "b7")]}, budget=90, overhead=10)
    >>> [(item, r.key) for item, r in plan.choices], plan.total
    ([('a', 'a3'), ('b', 'b7')], 80)
    """
    ladders = {
        item: sorted(files, key=lambda r: (r.height, r.size)) for item, files in options.items()
    }
    level = {item: len(files) - 1 for item, files in ladders.items() if files}
    if not level:
        return FitPlan(choices=(), overhead=overhead, budget=budget, margin=margin)

    def total() -> int:
        return overhead + sum(ladders[item][i].size for item, i in level.items())

    while total() > budget:
        candidates = [item for item, i in level.items() if i > 0]
        if not candidates:
            if reencode is not None:
                break
            kept = f", {format_bytes(margin)} of it kept for the file system" if margin else ""
            raise UsageError(
                f"the kit cannot fit in {format_bytes(budget)}: even at the lowest resolutions"
                f" it needs {format_bytes(total())}{kept}",
                hint="use a larger key, fewer videos, or --transcode",
            )
        item = max(
            candidates, key=lambda c: (ladders[c][level[c]].height, ladders[c][level[c]].size)
        )
        level[item] -= 1
    return FitPlan(
        choices=tuple((item, ladders[item][i]) for item, i in sorted(level.items())),
        overhead=overhead,
        budget=budget,
        reencode=reencode,
        margin=margin,
    )
