"""Progress a person can trust: every byte counted once (a dropped and resumed file, a restarted
one), a failed file counted as failed, a total given up front and never grown, sizes in the
unit family of every other line, bars that neither overlap nor leave blank lines."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from archiver.cli.progress import MAX_FILE_BARS, TqdmProgress, write_above_bars
from archiver.fetch import DownloadSettings, download
from archiver.manifest import Manifest

from .conftest import content_of, make_entry
from .server import FileServer

# sizes_first: each file's size asked (HEAD) before the first byte, as the CLI does with a bar.
FAST = DownloadSettings(retries=4, backoff_base=0.01, backoff_max=0.05, timeout=5, sizes_first=True)
MIB = 1024 * 1024


def run(server: FileServer, tmp_path: Path, *paths: str) -> tuple[TqdmProgress, str, list[int]]:
    """A download with bars into a string; the overall total as ``begin`` gave it and as it
    stood at each ``started`` (it must never change)."""
    manifest = Manifest(
        entries=tuple(make_entry(f"item-{i}", server.url(p)) for i, p in enumerate(paths))
    )
    stream = io.StringIO()
    totals: list[int] = []

    class Watched(TqdmProgress):
        def begin(self, tasks: int, total: int | None) -> None:
            super().begin(tasks, total)
            totals.append(self.overall.total if self.overall is not None else -1)

        def started(self, key: object, label: str, total: int | None, done: int) -> None:
            super().started(key, label, total, done)
            totals.append(self.overall.total if self.overall is not None else -1)

    progress = Watched(stream=stream)
    download(manifest, tmp_path, settings=FAST, progress=progress)
    return progress, stream.getvalue(), totals


def last_overall(shown: str) -> str:
    """The overall bar as it was last drawn."""
    lines = [line for line in re.split(r"[\r\n]", shown) if " files" in line]
    return lines[-1].strip()


def test_a_file_dropped_twice_ends_whole_on_one_bar(server: FileServer, tmp_path: Path) -> None:
    data = content_of(3 * MIB)
    server.add("/v/a.mp4", data, drop_after=MIB, drop_times=2)
    progress, shown, totals = run(server, tmp_path, "/v/a.mp4")
    gets = [r for r in server.requests("/v/a.mp4") if r.method == "GET"]
    assert len(gets) == 3
    assert gets[1].headers.get("Range") == f"bytes={MIB}-"  # resumed, not restarted
    assert progress.overall is not None
    assert (progress.overall.n, progress.overall.total) == (len(data), len(data))
    assert set(totals) == {len(data)}  # known before the first byte, never changed
    assert (progress.done, progress.failed) == (1, 0)
    final = last_overall(shown)
    assert final.startswith("1/1 files: 100%"), final
    assert "| 3.0 MiB/3.0 MiB [" in final, final


def test_a_file_restarted_from_zero_takes_its_bytes_back(
    server: FileServer, tmp_path: Path
) -> None:
    old, new = content_of(2 * MIB, seed=1), content_of(2 * MIB, seed=2)
    # The first answer drops after 1 MiB; then the file changes upstream: If-Range fails,
    # the server sends the whole new file, and the download starts again from zero.
    server.add("/v/a.mp4", old, drop_after=MIB, drop_times=1, change_to=new, change_after=2)
    progress, shown, totals = run(server, tmp_path, "/v/a.mp4")
    assert (tmp_path / "media" / "item-0" / "video.mp4").read_bytes() == new
    assert progress.overall is not None
    assert (progress.overall.n, progress.overall.total) == (len(new), len(new))
    assert set(totals) == {len(new)}
    assert last_overall(shown).startswith("1/1 files: 100%")


def test_a_failed_file_is_counted_as_failed_not_done(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(MIB))
    # Cut every 32 KiB: under the 64 KiB an attempt must bring to count as progress.
    server.add("/v/b.mp4", content_of(MIB, seed=1), drop_after=MIB // 32, drop_times=99)
    progress, shown, totals = run(server, tmp_path, "/v/a.mp4", "/v/b.mp4")
    assert (progress.done, progress.failed) == (1, 1)
    assert set(totals) == {2 * MIB}
    final = last_overall(shown)
    # Its bytes never all came: the bar ends short of 100%, never "2/2 files 100%".
    match = re.match(r"1/2 files, 1 failed: +(\d+)%\|", final)
    assert match, final
    assert int(match.group(1)) < 100


def test_the_total_given_up_front_never_grows() -> None:
    stream = io.StringIO()
    progress = TqdmProgress(stream=stream)
    progress.begin(2, 1000)
    progress.started("a", "a", 700, 0)
    progress.advance("a", 700)
    progress.started("b", "b", 900, 0)  # more than announced: the total stays as given
    progress.advance("b", 200)
    assert progress.overall is not None
    assert progress.overall.total == 1000
    progress.finished("a", failed=False)
    progress.finished("b", failed=True)
    progress.end()
    assert last_overall(stream.getvalue()).startswith("1/2 files, 1 failed:  90%|")


def test_with_no_total_the_bar_shows_bytes_and_no_percentage() -> None:
    stream = io.StringIO()
    progress = TqdmProgress("Kit", stream=stream, per_file=False)
    progress.begin(2, None)
    progress.started("a", "a", None, 0)
    progress.advance("a", 1536)
    progress.finished("a", failed=False)
    progress.end()
    final = last_overall(stream.getvalue())
    assert re.fullmatch(r"Kit: 1/2 files: 1\.5 KiB \[00:00, \S+ \S+/s\]", final), final
    assert "%" not in final


def test_sizes_and_rates_read_as_every_other_line() -> None:
    stream = io.StringIO()
    progress = TqdmProgress(stream=stream)
    progress.begin(1, 3 * MIB)
    progress.started("a", "Vidéo", 3 * MIB, 0)
    progress.advance("a", 3 * MIB)
    progress.finished("a", failed=False)
    progress.end()
    shown = stream.getvalue()
    assert "3.0 MiB/3.0 MiB" in shown
    assert not re.search(r"\d(?:[kMG]B/s|[kMG]/|[kMG] )", shown), shown  # tqdm's "3.00M", "MB/s"


def test_each_file_takes_the_lowest_free_line_and_no_more_than_there_is_room_for() -> None:
    progress = TqdmProgress(stream=io.StringIO())
    progress.begin(20, None)
    progress.started("a", "a", 10, 0)
    progress.started("b", "b", 10, 0)
    assert progress.lines == {"a": 1, "b": 2}
    progress.finished("a", failed=False)
    assert progress.lines == {"b": 1}  # moved up into a's line: no gap
    assert progress.bars["b"].pos in (1, -1)  # drawn there (tqdm keeps a fixed one negative)
    progress.started("c", "c", 10, 0)
    assert progress.lines == {"b": 1, "c": 2}  # the lowest free line: no gap, no overlap
    for n in range(MAX_FILE_BARS + 2):
        progress.started(n, str(n), 10, 0)
    assert sorted(progress.lines.values()) == list(range(1, MAX_FILE_BARS + 1))
    progress.end()


def test_a_log_line_goes_above_the_bars_not_at_the_end_of_one() -> None:
    stream = io.StringIO()
    assert not write_above_bars("Warning: nothing drawn yet", stream)
    progress = TqdmProgress(stream=stream)
    progress.begin(1, 100)
    progress.started("a", "a", 100, 0)
    assert write_above_bars("Warning: a line", stream)
    progress.end()
    shown = stream.getvalue()
    # tqdm.write clears the bars' lines, writes the line, then draws the bars again.
    assert "\rWarning: a line\n" in shown or "\nWarning: a line\n" in shown, repr(shown)
    assert not write_above_bars("after", stream)


def test_a_file_started_again_keeps_its_time_and_its_true_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file split after 3 s at 2 MiB/s (``started`` again with its bytes so far, as a split
    and every retry do): its bar goes on at 2 MiB/s, 3 s old, drawn as its bytes come."""
    import tqdm.std

    clock = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    progress = TqdmProgress(stream=io.StringIO())
    progress.begin(1, 100 * MIB)
    progress.started("a", "a", 100 * MIB, 0)

    def stream(seconds: float) -> None:
        for _ in range(round(seconds / 0.1)):
            clock[0] += 0.1
            progress.advance("a", 200 * 1024)  # 2 MiB/s

    stream(3.0)
    progress.started("a", "a", 100 * MIB, progress.counted["a"])
    stream(1.0)
    shown = progress.bars["a"].format_dict
    assert shown["elapsed"] == pytest.approx(4.0)
    assert shown["rate"] == pytest.approx(2 * MIB * 1000 / 1024, rel=0.05)
    assert progress.bars["a"].last_print_n == progress.bars["a"].n  # drawn up to its last bytes
