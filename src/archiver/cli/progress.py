"""Progress bars, drawn with tqdm when a person watches a terminal.

The core never draws anything: it reports through :class:`archiver.progress.Progress`, and
:class:`TqdmProgress` turns those reports into bars: one overall bar (bytes, rate, ETA, files
done and failed), and, for downloads, one bar per file being fetched.

What a person can trust in them:

- the overall total is the one given up front (:meth:`TqdmProgress.begin`) and never grows,
  so the percentage and the ETA never jump back; when no total was given, the bar shows bytes
  and rate, and no percentage it would have to guess;
- every byte counts once: a file whose attempt fails and resumes keeps its bar and its bytes;
  a file that restarts from zero (its upstream changed) takes its bytes back;
- a failed file is counted as failed, never as done, and its bytes never arrive: a run with a
  failure ends short of 100%;
- sizes and rates in the unit family of every other line archiver prints (KiB, MiB, GiB:
  :func:`archiver.units.format_bytes`), never tqdm's own "MB/s";
- one line per bar, no blank line between bars (each file takes the lowest free line; when a
  file ends, the bar on the lowest line moves up into its line), and
  each bar narrower than the terminal by the width of a ``^C`` echo, so an interrupt never
  wraps a line and shifts the bars under the cursor; :meth:`TqdmProgress.end` leaves the
  overall bar on a clean line and the cursor at the start of the next one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Hashable, MutableMapping
from typing import IO, Any, Never

from tqdm import tqdm

from ..units import format_bytes
from .output import for_terminal

__all__ = ["TqdmProgress", "write_above_bars"]

# Room left at the end of every bar: the terminal echoes "^C" after the text when Ctrl-C is
# pressed; a bar as wide as the terminal would wrap there and every bar below would shift.
_ECHO_ROOM = 3
# Bars for files under way, at most: more would scroll the overall bar off a small terminal.
MAX_FILE_BARS = 8
_LABEL_WIDTH = 40
_SIZED = "{desc}{percentage:3.0f}%|{bar}| {sofar}/{whole} [{elapsed}<{remaining}, {speed}]"
_UNSIZED = "{desc}{sofar} [{elapsed}, {speed}]"
_CLEAR_LINE = "\r\x1b[K"


class _Bar(tqdm):  # type: ignore[type-arg]
    """A tqdm bar whose sizes and rate read as every other size archiver prints."""

    @property
    def format_dict(self) -> MutableMapping[str, Any]:
        values = super().format_dict
        rate = values.get("rate")
        if rate is None and values["elapsed"]:
            rate = (values["n"] - values.get("initial", 0)) / values["elapsed"]
        total = values["total"]
        values["sofar"] = format_bytes(values["n"])
        values["whole"] = format_bytes(total) if total else "?"
        values["speed"] = f"{format_bytes(rate)}/s" if rate else "? B/s"
        if values.get("ncols"):
            values["ncols"] = max(values["ncols"] - _ECHO_ROOM, 20)
        return values


def write_above_bars(line: str, stream: IO[str]) -> bool:
    """Print ``line`` above the bars drawn on ``stream``, if any are (a log line written
    under them would land at the end of a bar's line): whether it was printed."""
    bars = list(getattr(tqdm, "_instances", ()))
    if not any(getattr(bar.fp, "_wrapped", bar.fp) is stream for bar in bars):
        return False
    tqdm.write(line, file=stream)
    return True


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
        self.lines: dict[Hashable, int] = {}  # the line under the overall bar each file uses
        self.counted: dict[Hashable, int] = {}  # bytes of each task in the overall bar
        self.tasks = 0
        self.done = 0
        self.failed = 0
        self.ended = False

    def _bar(
        self, *, total: int | None, desc: str, position: int, initial: int = 0, leave: bool = True
    ) -> tqdm[Never]:
        bar: tqdm[Never] = _Bar(
            file=self.stream,
            total=total,
            desc=desc,
            position=position,
            initial=initial,
            leave=leave,
            bar_format=_SIZED if total else _UNSIZED,
            dynamic_ncols=True,
        )
        return bar

    def _desc(self) -> str:
        prefix = f"{self.description}: " if self.description else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{prefix}{self.done}/{self.tasks} files{failed}: "

    def begin(self, tasks: int, total: int | None) -> None:
        """``total`` is the overall bar's total for the whole run: it is never grown (a
        percentage that jumps back and an ETA that doubles are worse than none)."""
        self.tasks = tasks
        if tasks:
            self.overall = self._bar(total=total or None, desc=self._desc(), position=0)

    def started(self, key: Hashable, label: str, total: int | None, done: int) -> None:
        if self.overall is not None:
            # Resumed at ``done``: what the task had counted beyond that is counted again
            # by this attempt, so it is taken back (or, resuming further, added).
            self.overall.update(done - self.counted.get(key, 0))
        self.counted[key] = done
        if not self.per_file:
            return
        bar = self.bars.get(key)
        if bar is None:
            line = self._free_line()
            if line is None:
                return  # no room: the overall bar counts the file all the same
            label = for_terminal(label, one_line=True)
            name = label if len(label) <= _LABEL_WIDTH else label[: _LABEL_WIDTH - 1] + "…"
            name += ": "
            self.lines[key] = line
            self.bars[key] = self._bar(
                total=total, initial=done, desc=name, leave=False, position=line
            )
        else:  # the same file again (split, or retried): its bar stands where its bytes are
            # Set, not counted: a jump counted as bytes would show a rate of tens of MiB/s
            # and make tqdm wait for as many more bytes before it draws again; the bar's
            # time goes on from the file's start.
            bar.total = total
            bar.n = bar.last_print_n = done
            bar.refresh()

    def _close_up(self, line: int) -> None:
        """Move the bar on the lowest line up into ``line``, which a file that ended freed: no
        blank line stays between bars while others go on. The bar is drawn anew there with its
        bytes, its clock and its rate as they were; its old line is cleared."""
        below = [(used, key) for key, used in self.lines.items() if used > line]
        if not below:
            return
        _, key = max(below)
        old = self.bars[key]
        total = None if old.total is None else int(old.total)
        moved = self._bar(
            total=total, initial=int(old.n), desc=old.desc, leave=False, position=line
        )
        # Its clock, its last drawing and its smoothed rate (tqdm's own state) go with it.
        for name in ("start_t", "last_print_t", "last_print_n", "_ema_dn", "_ema_dt", "miniters"):
            setattr(moved, name, getattr(old, name))
        old.close()  # leave=False: its line is cleared
        self.bars[key], self.lines[key] = moved, line
        moved.refresh()

    def _free_line(self) -> int | None:
        """The lowest line under the overall bar that no file's bar uses: a file that ends
        frees its line for the next, so bars neither overlap nor leave a blank line."""
        used = set(self.lines.values())
        return next((n for n in range(1, MAX_FILE_BARS + 1) if n not in used), None)

    def advance(self, key: Hashable, count: int) -> None:
        self.counted[key] = self.counted.get(key, 0) + count
        if self.overall is not None:
            self.overall.update(count)
        bar = self.bars.get(key)
        if bar is not None:
            bar.update(count)

    def retrying(self, key: Hashable, label: str, attempt: int, delay: float, why: str) -> None:
        if logging.getLogger("archiver").isEnabledFor(logging.INFO):
            return  # -v: the log says it already, one line a retry
        line = for_terminal(f"{label}: {why}; retry {attempt} in {delay:.1f} s", one_line=True)
        tqdm.write(line, file=self.stream)

    def finished(self, key: Hashable, *, failed: bool) -> None:
        if failed:
            self.failed += 1
        else:
            self.done += 1
        line = self.lines.pop(key, None)
        bar = self.bars.pop(key, None)
        if bar is not None:
            bar.close()
        if line is not None:
            self._close_up(line)
        if self.overall is not None:
            self.overall.set_description_str(self._desc(), refresh=False)
            self.overall.refresh()

    def end(self) -> None:
        """Close every bar: those of files still under way (an interrupt, a deadline) are
        cleared; the overall bar is drawn once more on a line cleared first (a ``^C`` the
        terminal echoed after it would otherwise stay), then the cursor goes to the start of
        the next line, where the summary, or the line saying what was interrupted, goes."""
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        self.lines.clear()
        if self.overall is not None and not self.ended:
            self.stream.write(_CLEAR_LINE)
            self.overall.close()
        self.ended = True
