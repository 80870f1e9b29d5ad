"""Progress bars for the CLI, drawn with tqdm when a terminal is attached.

The core never draws anything: it reports to a :class:`~archiver.download.Progress`, and this
module turns those reports into bars.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Never

from tqdm import tqdm

from .download import Job, Outcome
from .meter import ByteMeter

__all__ = ["TqdmBytes", "TqdmProgress"]


class TqdmProgress:
    """An overall bar (bytes, rate, ETA) and one bar per file being fetched."""

    def __init__(self, *, stream: IO[str] | None = None, per_file: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.per_file = per_file
        self.total: tqdm[Never] | None = None
        self.bars: dict[tuple[str, str], tqdm[Never]] = {}
        self.files = 0
        self.done = 0

    def _bar(
        self, *, total: int | None, desc: str, position: int, initial: int = 0, leave: bool = True
    ) -> tqdm[Never]:
        return tqdm(
            file=self.stream,
            total=total,
            desc=desc,
            position=position,
            initial=initial,
            leave=leave,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            dynamic_ncols=True,
        )

    def begin(self, jobs: Sequence[Job]) -> None:
        self.files = len(jobs)
        if jobs:
            self.total = self._bar(total=0, desc=self._desc(), position=0)

    def _desc(self) -> str:
        return f"{self.done}/{self.files} files"

    def started(self, job: Job, total: int | None, offset: int) -> None:
        if self.total is not None and total:
            self.total.total = (self.total.total or 0) + total
            self.total.update(offset)
        if self.per_file:
            key = (job.entry.id, job.role)
            old = self.bars.pop(key, None)
            if old is not None:
                old.close()
            name = job.entry.title if len(job.entry.title) <= 40 else job.entry.title[:39] + "…"
            self.bars[key] = self._bar(
                total=total, initial=offset, desc=name, leave=False, position=len(self.bars) + 1
            )

    def advance(self, job: Job, count: int) -> None:
        if self.total is not None:
            self.total.update(count)
        bar = self.bars.get((job.entry.id, job.role))
        if bar is not None:
            bar.update(count)

    def retrying(self, job: Job, attempt: int, delay: float, reason: str) -> None:
        message = f"{job.label}: {reason}; retry {attempt} in {delay:.0f} s"
        tqdm.write(message, file=self.stream)

    def finished(self, outcome: Outcome) -> None:
        self.done += 1
        bar = self.bars.pop((outcome.job.entry.id, outcome.job.role), None)
        if bar is not None:
            bar.close()
        if self.total is not None:
            self.total.set_description(self._desc())

    def end(self) -> None:
        for bar in self.bars.values():
            bar.close()
        if self.total is not None:
            self.total.close()


class TqdmBytes(ByteMeter):
    """One bar over a known number of bytes (packaging a kit, verifying one)."""

    def __init__(self, description: str, *, stream: IO[str] | None = None) -> None:
        self.description = description
        self.stream = stream or sys.stderr
        self.bar: tqdm[Never] | None = None

    def begin(self, total: int) -> None:
        if total:
            self.bar = tqdm(
                file=self.stream,
                total=total,
                desc=self.description,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                dynamic_ncols=True,
            )

    def advance(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.close()
