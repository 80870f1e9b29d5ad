"""What a person sees in a terminal: ``archiver`` run in a real pseudo-terminal (pexpect), its
output read back as the screen shows it (carriage returns, cursor moves and line clears
applied), against the loopback HTTP server and a real archive."""

from __future__ import annotations

import io
import re
import sys
import termios
from pathlib import Path

import pexpect

from archiver.entry import Asset
from archiver.manifest import Manifest, write_manifest

from .conftest import content_of, fiche_text, make_entry
from .server import FileServer

ARCHIVER = Path(sys.executable).parent / "archiver"
COLUMNS = 100
KIB = 1024
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
# Every size or rate printed: a number and a unit of archiver's one family.
SIZE = re.compile(r"\b\d+(?:\.\d)? (?:B|KiB|MiB|GiB)\b")
# What tqdm or a decimal unit would print instead: "586k", "2.00M", "41.6MB/s", "3 kB".
FOREIGN_UNIT = re.compile(r"\d(?:[kKMG]|[kKMG]?B/s|\s?[kMG]B)\b")
_CONTROL = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b[78]")


class Screen:
    """A terminal's screen, enough of one to read tqdm's output as a person does: text
    overwrites what the cursor is on, ``\\r`` and ``\\n`` move it, ``ESC[nA`` moves it up,
    ``ESC[K`` clears to the end of the line (``ESC[2K`` all of it), and a character written
    past the last column wraps to the next line (as xterm does: only when the next one comes)."""

    def __init__(self, columns: int = COLUMNS) -> None:
        self.columns = columns
        self.rows: list[list[str]] = [[]]
        self.row = self.col = 0
        self.pending_wrap = False
        self.continued: set[int] = set()  # rows a long line wrapped onto

    def feed(self, text: str) -> Screen:
        at = 0
        while at < len(text):
            control = _CONTROL.match(text, at)
            if control:
                self._control(control.group(1) or "", control.group(2) or "")
                at = control.end()
                continue
            char = text[at]
            at += 1
            if char == "\r":
                self.col, self.pending_wrap = 0, False
            elif char == "\n":
                self._down()
            elif char == "\b":
                self.col = max(0, self.col - 1)
            elif char >= " ":
                self._put(char)
        return self

    def _control(self, argument: str, command: str) -> None:
        if command == "A":
            self.row = max(0, self.row - int(argument or 1))
            self.pending_wrap = False
        elif command == "K":
            del self.rows[self.row][0 if argument == "2" else self.col :]

    def _down(self) -> None:
        self.row += 1
        self.pending_wrap = False
        if self.row == len(self.rows):
            self.rows.append([])

    def _put(self, char: str) -> None:
        if self.pending_wrap:
            self._down()
            self.col = 0
            self.continued.add(self.row)
        line = self.rows[self.row]
        line.extend(" " * (self.col + 1 - len(line)))
        line[self.col] = char
        if self.col == self.columns - 1:
            self.pending_wrap = True
        else:
            self.col += 1

    def lines(self) -> list[str]:
        """The lines down to the cursor's, as they read now; a line the terminal wrapped is
        one line again."""
        lines: list[str] = []
        for number, row in enumerate(self.rows[: self.row + 1]):
            text = "".join(row)
            if number in self.continued and lines:
                lines[-1] += text.rstrip()
            else:
                lines.append(text.rstrip())
        return lines


def spawn(tmp_path: Path, *args: str | Path) -> pexpect.spawn:
    child = pexpect.spawn(
        str(ARCHIVER),
        [str(a) for a in args],
        cwd=str(tmp_path),
        dimensions=(40, COLUMNS),
        timeout=60,
        encoding="utf-8",
        codec_errors="strict",
    )
    # A terminal emulator reads what a program writes as it comes; pexpect reads only while a
    # test waits on it, and a pty flushes what is unread when Ctrl-C is pressed (no NOFLSH):
    # bytes a real screen would have shown. Keep them, so the screen is the one a person sees.
    attrs = termios.tcgetattr(child.child_fd)
    attrs[3] |= termios.NOFLSH
    termios.tcsetattr(child.child_fd, termios.TCSANOW, attrs)
    return child


def finish(child: pexpect.spawn) -> tuple[int | None, list[str], Screen]:
    """Read the child to its end: its exit code, and the screen it leaves."""
    child.expect(pexpect.EOF)
    child.close()
    screen = Screen().feed(child.before)
    return child.exitstatus, screen.lines(), screen


def manifest_of(tmp_path: Path, server: FileServer, sizes: dict[str, int]) -> Path:
    """A manifest of one video a name, each with its fiche's PDF: videos and files differ."""
    entries = []
    for name, size in sizes.items():
        server.add(f"/v/{name}.mp4", content_of(size, seed=len(entries)))
        server.add(f"/f/{name}.pdf", PDF, content_type="application/pdf")
        asset = Asset("fiche_pdf", server.url(f"/f/{name}.pdf"))
        entries.append(make_entry(name, server.url(f"/v/{name}.mp4"), assets=(asset,)))
    path = tmp_path / "m.json"
    write_manifest(Manifest(entries=tuple(entries)), path)
    return path


def assert_one_unit_family(lines: list[str]) -> None:
    for line in lines:
        assert not FOREIGN_UNIT.search(line.split("http://")[0]), line


def test_a_dropped_connection_and_a_failed_file_end_in_a_bar_and_summary_that_add_up(
    server: FileServer, tmp_path: Path
) -> None:
    manifest = manifest_of(tmp_path, server, {"a": 300 * KIB, "b": 400 * KIB, "c": 500 * KIB})
    server.files["/v/b.mp4"].drop_after, server.files["/v/b.mp4"].drop_times = 100 * KIB, 1
    # Cut every 32 KiB: under the 64 KiB an attempt must bring to count as progress.
    server.files["/v/c.mp4"].drop_after, server.files["/v/c.mp4"].drop_times = 32 * KIB, 99
    child = spawn(tmp_path, "download", manifest, "--archive", "archive", "--retries", "1")
    code, lines, screen = finish(child)
    assert code == 1, lines
    assert (screen.col, lines[-1]) == (0, "")  # the cursor on a fresh line
    shown = lines[:-1]
    assert "" not in shown, shown  # no blank line
    bars = [line for line in shown if re.match(r"\d+/\d+ files", line)]
    assert len(bars) == 1, shown  # one overall bar left, no file's bar
    bar, error, summary = shown[-3:]
    assert bar == bars[0]
    # Five of six files done, one failed: the bar says so, short of 100%, over the total
    # known before the first byte (each file's HEAD), never grown.
    match = re.match(r"5/6 files, 1 failed: +(\d+)%\|.*\| (.+?)/(.+?) \[", bar)
    assert match, bar
    assert int(match.group(1)) < 100
    assert match.group(3) == "1.2 MiB"  # 300 + 400 + 500 KiB and 3 PDFs of 77 B
    assert error.startswith("Error: Vidéo c (c, video): ")
    said = re.match(
        r"Download: 3 videos \(1 failed\), 6 files: 5 downloaded, 0 changed,"
        r" 0 already held, 1 failed; (\d+\.\d KiB) at \S+ \S+/s in \d+\.\d s$",
        summary,
    )
    assert said, summary
    assert said.group(1) == match.group(2)  # the bytes the bar counted are the summary's
    retries = [line for line in shown if "retry 1 in" in line]
    assert [line.split(":")[0] for line in retries] == ["Vidéo b (b, video)", "Vidéo c (c, video)"]
    assert_one_unit_family(shown)
    assert all(SIZE.search(line) for line in (bar, summary))


def test_a_bar_that_ends_leaves_no_blank_line_under_the_others(
    server: FileServer, tmp_path: Path
) -> None:
    """A file that ends above others still under way: the lowest bar moves up into its line,
    with its bytes; no line is left blank between the bars while the run goes on."""
    entries = [make_entry("a", server.url("/v/a.mp4"))]
    server.add("/v/a.mp4", content_of(192 * KIB, seed=0), trickle=(16 * KIB, 0.1))  # ~1.2 s
    for seed, name in enumerate(("b", "c"), start=1):
        # Asked after a (each of their answers waits), so a's bar takes the first line; and
        # under way when a ends.
        server.add(
            f"/v/{name}.mp4", content_of(768 * KIB, seed=seed), delay=0.3, trickle=(16 * KIB, 0.1)
        )
        entries.append(make_entry(name, server.url(f"/v/{name}.mp4")))
    manifest = tmp_path / "m.json"
    write_manifest(Manifest(entries=tuple(entries)), manifest)
    child = spawn(tmp_path, "download", manifest, "--archive", "archive")
    shown = io.StringIO()
    child.logfile_read = shown
    child.expect(r"Vidéo [bc] \([bc], video\): +\d+%")  # b's or c's bar is drawn
    child.expect(r"1/3 files")  # a is done
    child.expect(r"Vidéo [bc] \([bc], video\): +\d+%")  # and the bars drawn after it
    child.expect(r"Vidéo [bc] \([bc], video\): +\d+%")
    rows = ["".join(row).rstrip() for row in Screen().feed(shown.getvalue()).rows]
    code, _, _ = finish(child)
    assert code == 0
    bars = [n for n, row in enumerate(rows) if re.match(r"Vidéo [bc] ", row)]
    assert len(bars) == 2, rows
    assert re.match(r"1/3 files", rows[bars[0] - 1]), rows  # right under the overall bar
    assert bars[1] == bars[0] + 1, rows  # and under each other


def test_ctrl_c_leaves_one_bar_and_one_line_on_a_fresh_line(
    server: FileServer, tmp_path: Path
) -> None:
    manifest = manifest_of(tmp_path, server, {f"v{i}": 2048 * KIB for i in range(4)})
    for i in range(4):  # slow enough to be under way when Ctrl-C comes
        server.files[f"/v/v{i}.mp4"].trickle = (16 * KIB, 0.05)
    child = spawn(tmp_path, "download", manifest, "--archive", "archive")
    child.expect(r"0/8 files: +\d+%\|.*\| \d+\.\d KiB/")  # bytes have come
    child.expect(r"Vidéo v\d \(v\d, video\): +\d+%")  # the files' bars are drawn
    child.sendintr()
    code, lines, screen = finish(child)
    assert code == 130
    assert (screen.col, lines[-1]) == (0, "")  # the prompt comes back on a fresh line
    shown = lines[:-1]
    assert "" not in shown, shown
    assert not any("^C" in line for line in shown), shown
    *_, bar, said = shown
    assert re.match(r"\d/8 files: +\d+%\|", bar), shown
    assert sum(1 for line in shown if re.search(r"\d/8 files", line)) == 1, shown
    assert not any(line.startswith("Vidéo v") for line in shown), shown  # no file's bar left
    assert said == (
        "Interrupted: the download stopped; files under way keep their partial, and the next"
        " run resumes them"
    )
    assert_one_unit_family(shown)
    # What it said is true: the next run resumes the partial files (Range from their size).
    for i in range(4):
        server.files[f"/v/v{i}.mp4"].trickle = None
    again = spawn(tmp_path, "download", manifest, "--archive", "archive")
    code, lines, _ = finish(again)
    assert code == 0, lines
    assert any(r.headers.get("Range", "").startswith("bytes=") for r in server.requests()), lines


def test_verbose_lists_each_file_outcome_in_the_terminal(
    server: FileServer, tmp_path: Path
) -> None:
    manifest = manifest_of(tmp_path, server, {"a": 100 * KIB})
    args: list[str | Path] = ["download", manifest, "--archive", "archive", "-v"]
    code, lines, _ = finish(spawn(tmp_path, *args))
    assert code == 0
    assert [line for line in lines if line.startswith(("fetched", "kept"))] == [
        "fetched   Vidéo a (a, fiche_pdf): 77 B",
        "fetched   Vidéo a (a, video): 100.0 KiB",
    ]
    code, lines, _ = finish(spawn(tmp_path, *args))
    assert [line for line in lines if line.startswith(("fetched", "kept"))] == [
        "kept      Vidéo a (a, fiche_pdf): held, not due for a check upstream",
        "kept      Vidéo a (a, video): held, not due for a check upstream",
    ]


def test_a_sync_with_a_failed_video_reads_true_in_the_terminal(
    server: FileServer, tmp_path: Path
) -> None:
    fiches = tmp_path / "fiches"
    fiches.mkdir()
    for name in ("a", "b"):
        (fiches / f"{name}.md").write_text(
            fiche_text(title=f"Vidéo {name}", embed=None, download=server.url(f"/v/{name}.mp4")),
            encoding="utf-8",
        )
    server.add("/v/a.mp4", content_of(300 * KIB))  # b is not served: it fails
    args = ["sync", "fiches", "--archive", "archive", "--kit", "kit", "--retries", "0", "-v"]
    code, lines, screen = finish(spawn(tmp_path, *args))
    assert code == 1, lines
    assert (screen.col, lines[-1]) == (0, "")
    shown = lines[:-1]
    assert "" not in shown, shown
    assert_one_unit_family(shown)
    items = [line for line in shown if line.startswith(("fetched ", "failed "))]
    assert [line.split(" (")[0] for line in items] == ["fetched   Vidéo a", "failed    Vidéo b"]
    assert items[0].endswith(", video): 300.0 KiB")
    kit_bar = [line for line in shown if line.startswith("Kit: ")]
    assert len(kit_bar) == 1 and re.match(r"Kit: (\d+)/\1 files: ", kit_bar[0]), shown
    assert re.match(
        r"Sync: 2 videos \(1 failed\); 2 files: 1 fetched, 0 changed, 0 held, 1 failed"
        r" \(300\.0 KiB\); kit: 1 video, \d+ files written; in \d+\.\d s$",
        shown[-1],
    ), shown[-1]


def test_an_unusable_kit_is_one_line_and_exit_2_in_the_terminal(
    server: FileServer, tmp_path: Path
) -> None:
    manifest = manifest_of(tmp_path, server, {"a": 100 * KIB})
    code, lines, _ = finish(spawn(tmp_path, "download", manifest, "--archive", "archive"))
    assert code == 0, lines
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    args = ["package", manifest, "--archive", "archive", "-o", "a-file/kit"]
    code, lines, _ = finish(spawn(tmp_path, *args))
    assert (code, lines) == (
        2,
        ["Error: a-file/kit: cannot read the kit folder: Not a directory", ""],
    )
