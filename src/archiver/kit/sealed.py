"""A run that updates a kit and finds nothing to do, sealed; the next one replayed while the
seal holds (:mod:`archiver.settled`): what ``sync`` and ``package`` share of it.

A seal is replayed under the archive's lock (its caller's) and the kit's, taken here: no run
writes either while it is checked. A kit that cannot be locked or looked at (gone: a key
formatted again) is a whole run, which makes it again; another run holding the kit is said
as a whole run says it (exit 3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import settled
from ..errors import KitError, LockHeld
from .lock import locked

if TYPE_CHECKING:
    from ..archive import Archive
    from . import KitReport

__all__ = ["Sealing", "quiet", "replayed"]

log = logging.getLogger(__name__)

_R = TypeVar("_R")


def replayed(
    seal: settled.Seal,
    archive: Archive,
    kit: Path,
    kind: type[_R],
    record: Callable[[], None] = lambda: None,
) -> _R | None:
    """The sealed run's report (a ``kind``) when the seal still holds, ``record``-ed (in the
    catalog, for a sync) while both locks are held, its log said again; else ``None``: the
    run does its work (and forgets the seal)."""
    if not kit.is_dir():  # gone (a key formatted again, a kit deleted to be made anew)
        return None
    try:
        with locked(kit):
            if not seal.survey.holds(archive):
                return None
            report = seal.report(kind)
            if report is None:
                return None
            record()
    except LockHeld:
        raise
    except (KitError, OSError) as exc:  # the kit cannot be locked or looked at: a whole run
        log.debug("%s: not replayed: %s", seal.path, exc)
        return None
    seal.replay_log()
    return report


def quiet(report: KitReport) -> bool:
    """Whether a kit update found nothing to do: no file written, linked, moved or removed."""
    return report.written == report.removed == report.linked == report.moved == 0


@dataclass
class Sealing:
    """A whole run that may seal: where no seal of its ``key`` is, the archive and the kit are
    surveyed before it (:func:`settled.survey`) and what it logs is kept; :meth:`close` seals
    it if it found nothing to do and nothing moved meanwhile, else forgets the seal."""

    key: settled.Key | None
    archive: Archive
    kit: Path
    before: settled.Survey | None = None
    logged: list[tuple[str, int, str]] = field(default_factory=list)

    @contextmanager
    def watching(self, last_manifest: Path) -> Iterator[None]:
        """Survey before the run (only where no seal of this key is: a seal that did not
        hold says something moved, which this run likely mends; the run after it finds none,
        and seals), and keep what the run logs."""
        key = self.key
        if key is not None and not settled.seal_path(self.archive.root, key).exists():
            self.before = settled.survey(self.archive, self.kit, last_manifest)
        with settled.capture_log() as logged:
            yield
        self.logged = logged

    def close(
        self, report: object, found_nothing_to_do: bool, *, until: float, summary: dict[str, Any]
    ) -> None:
        """Seal ``report`` if the run ``found_nothing_to_do`` and the archive, the kit and the
        catalog are as it found them (a folder that gained a file has another time); else
        forget the seal of its key."""
        key, before = self.key, self.before
        if key is None:
            return
        if before is None or not found_nothing_to_do or not before.holds(self.archive):
            settled.forget(self.archive.root, key)
            return
        settled.write(
            self.archive.root,
            key,
            report,
            until=until,
            before=before,
            logged=self.logged,
            summary=summary,
        )
