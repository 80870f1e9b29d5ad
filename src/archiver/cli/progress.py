"""Progress bars, drawn with tqdm when a person watches a terminal.

The core never draws anything: it reports through :class:`archiver.progress.Progress`, and
:class:`TqdmProgress` turns those reports into bars: one overall bar (bytes, rate, ETA, files
done), and, for downloads, one bar per file being fetched.

Every byte counts once. A file whose attempt fails and resumes keeps its bar and its bytes; a
file that restarts from zero (its upstream changed) takes its bytes back from the overall bar;
a failed file is counted as failed, not done.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from typing import IO, Never

from tqdm import tqdm

from .output import for_terminal

__all__ = ["TqdmProgress"]


class TqdmProgress:
    """An overall bar and, with ``per_file``, one bar per task under way."""

    def __init__(
        self, description: str = "", *, stream: IO[str] | None = None, per_file: bool = True
    ) -> None:
        self.description = description
        self.stream = stream or sys.stderr
        self.per_file = per_file
        self.overall: tqdm[Never] | None = None
        self.bars: dict[Hashable, tqdm[Never]] = {}
        self.counted: dict[Hashable, int] = {}  # bytes of each task in the overall bar
        self.sizes: dict[Hashable, int | None] = {}  # each task's total, as last announced
        self.grows = False  # the total was not known at the start: each task adds its own
        self.tasks = 0
        self.done = 0
        self.failed = 0

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

    def _desc(self) -> str:
        prefix = f"{self.description}: " if self.description else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{prefix}{self.done}/{self.tasks} files{failed}"

    def begin(self, tasks: int, total: int | None) -> None:
        self.tasks = tasks
        self.grows = total is None
        if tasks:
            self.overall = self._bar(total=total or 0, desc=self._desc(), position=0)

    def started(self, key: Hashable, label: str, total: int | None, done: int) -> None:
        if self.overall is not None:
            if self.grows and total != self.sizes.get(key):
                self.overall.total = (self.overall.total or 0) + (total or 0)
                self.overall.total -= self.sizes.get(key) or 0
            # Resumed at ``done``: what the task had counted beyond that is counted again
            # by this attempt, so it is taken back (or, resuming further, added).
            self.overall.update(done - self.counted.get(key, 0))
        self.sizes[key] = total
        self.counted[key] = done
        if not self.per_file:
            return
        bar = self.bars.get(key)
        if bar is None:
            label = for_terminal(label, one_line=True)
            name = label if len(label) <= 40 else label[:39] + "…"
            self.bars[key] = self._bar(
                total=total, initial=done, desc=name, leave=False, position=len(self.bars) + 1
            )
        else:  # the same file again: its bar resumes where the bytes are
            bar.reset(total=total)
            bar.update(done)

    def advance(self, key: Hashable, count: int) -> None:
        self.counted[key] = self.counted.get(key, 0) + count
        if self.overall is not None:
            self.overall.update(count)
        bar = self.bars.get(key)
        if bar is not None:
            bar.update(count)

    def retrying(self, key: Hashable, label: str, attempt: int, delay: float, why: str) -> None:
        line = for_terminal(f"{label}: {why}; retry {attempt} in {delay:.0f} s", one_line=True)
        tqdm.write(line, file=self.stream)

    def finished(self, key: Hashable, *, failed: bool) -> None:
        if failed:
            self.failed += 1
        else:
            self.done += 1
        bar = self.bars.pop(key, None)
        if bar is not None:
            bar.close()
        if self.overall is not None:
            self.overall.set_description(self._desc())

    def end(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        if self.overall is not None:
            self.overall.close()
