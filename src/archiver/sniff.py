"""What a downloaded file is, read from its bytes: a PDF, WebVTT captions, an image.

A server's ``Content-Type`` says what it meant to send, not what came: a captive portal (a
school's Wi-Fi login) answers any URL with ``200 text/html``, and a fiche's link may lead to a
web page, a ZIP or a program. So the downloader reads each file before it keeps it, as a
browser or ``file(1)`` would, and the bytes alone decide; the ``Content-Type`` only helps say
what came instead. Videos and sound files are checked by :mod:`archiver.media` (a whole MP4
that FFmpeg reads).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import media
from .errors import describe_os_error

__all__ = [
    "CAPTIONS",
    "IMAGE",
    "PDF",
    "Claim",
    "Mismatch",
    "check",
    "decode_command",
]

# A PDF reader looks for the header within the first 1024 bytes (PDF 1.7, annex H.3, note 13):
# some generators write a few bytes before it.
PDF_HEADER_WINDOW = 1024
# ffmpeg reads one small picture in 0.1 to 0.3 s; one that takes longer than this is refused.
DECODE_TIMEOUT = 30.0
# What of a file the reason may quote, and how much of a file is read to say what it is.
_HEAD = 1024


@dataclass(frozen=True)
class Claim:
    """What a file is said to be: its name in a reason (``a PDF``) and its extension."""

    label: str
    extension: str


PDF = Claim("a PDF", ".pdf")
CAPTIONS = Claim("WebVTT captions", ".vtt")
IMAGE = Claim("an image (JPEG, PNG or WebP)", ".jpg")


class Mismatch(Exception):
    """The bytes are not what the file was said to be; ``reason`` says what came."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Image signatures (the first bytes of each format) and the extension the file is kept with.
_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", ".jpg"),  # JPEG: a start-of-image marker, then the first segment's
    (b"\x89PNG\r\n\x1a\n", ".png"),  # PNG (RFC 2083, section 3.1)
)


def check(path: Path, claim: Claim, content_type: str | None = None, *, decode: bool = True) -> str:
    """The extension ``path`` is kept with when its bytes are what ``claim`` says, else
    :class:`Mismatch` with a reason that names the ``Content-Type`` the server answered.
    ``decode=False`` trusts an image's signature without decoding it with ffmpeg: for a file
    checked once already, when it was fetched.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     page = Path(folder, "f.pdf")
    ...     _ = page.write_bytes(b"<!DOCTYPE html><title>Connexion</title>")
    ...     check(page, PDF, "text/html; charset=utf-8")
    Traceback (most recent call last):
    archiver.sniff.Mismatch: answered text/html, not a PDF: a login page?
    """
    try:
        with path.open("rb") as stream:
            head = stream.read(_HEAD)
        if claim is PDF:
            return _pdf(head, content_type)
        if claim is CAPTIONS:
            return _captions(path.read_bytes(), content_type)
        if claim is IMAGE:
            return _image(path, head, content_type, decode=decode)
    except OSError as exc:
        raise Mismatch(f"cannot read it: {describe_os_error(exc)}") from exc
    raise ValueError(f"no check for {claim.label}")  # a bug: every claim has one


def _pdf(head: bytes, content_type: str | None) -> str:
    if b"%PDF-" in head[:PDF_HEADER_WINDOW]:
        return PDF.extension
    raise Mismatch(_not(PDF, head, content_type))


# A cue's timings (WebVTT, section 4.1): hours optional, then a start, an arrow, an end and
# optional settings. A line with an arrow that is not this is no WebVTT.
_TIMESTAMP = r"(?:\d{2,}:)?[0-5]\d:[0-5]\d\.\d{3}"
_TIMINGS = re.compile(rf"{_TIMESTAMP}[ \t]+-->[ \t]+{_TIMESTAMP}(?:[ \t].*)?")
# The signature: WEBVTT alone, or followed by a space or a tab and any text.
_SIGNATURE = re.compile(r"WEBVTT(?:[ \t].*)?")


def _captions(data: bytes, content_type: str | None) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if data.lstrip()[:1] == b"<" or not data.startswith((b"WEBVTT", b"\xef\xbb\xbfWEBVTT")):
            raise Mismatch(_not(CAPTIONS, data[:_HEAD], content_type)) from exc
        raise Mismatch(f"not WebVTT captions: not UTF-8 (byte {exc.start})") from exc
    lines = text.removeprefix("\ufeff").splitlines()
    if not lines or not _SIGNATURE.fullmatch(lines[0]):
        raise Mismatch(_not(CAPTIONS, data[:_HEAD], content_type))
    # A file of no cue is valid WebVTT (an instance's placeholder track): nothing to refuse.
    for number, line in enumerate(lines[1:], start=2):
        if "-->" in line and not _TIMINGS.fullmatch(line.strip()):
            shown = _quote(line)
            raise Mismatch(f"not WebVTT captions: line {number}: {shown} is no cue timing")
    return CAPTIONS.extension


def _image(path: Path, head: bytes, content_type: str | None, *, decode: bool) -> str:
    extension = next((ext for sign, ext in _IMAGES if head.startswith(sign)), None)
    if extension is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        extension = ".webp"  # a RIFF container of WebP (RFC 9649, section 2.5)
    if extension is None:
        raise Mismatch(_not(IMAGE, head, content_type))
    problem = _decode_problem(path) if decode else None
    if problem:
        raise Mismatch(f"not a readable image: {problem}")
    return extension


def decode_command(path: Path) -> list[str]:
    """The ffmpeg command that decodes every picture of ``path`` and keeps none.

    >>> decode_command(Path("p.jpg"))[:4]
    ['ffmpeg', '-v', 'error', '-nostdin']
    """
    # fmt: off
    return [
        "ffmpeg",
        "-v", "error",  # say nothing but errors: a damaged picture is one, its last line the reason
        "-nostdin",  # never read the terminal: the downloader runs unattended
        "-xerror",  # stop at the first error rather than conceal it
        "-i", str(path),
        "-f", "null",  # decode to nothing: only whether it decodes matters
        "-",
    ]
    # fmt: on


def _decode_problem(path: Path) -> str | None:
    """Why ffmpeg cannot decode the picture, or ``None`` (also when ffmpeg is not installed:
    then the signature alone decided)."""
    if not media.available():
        return None
    try:
        done = subprocess.run(  # noqa: S603 - arguments built by a pure function, no shell
            decode_command(path), capture_output=True, check=False, timeout=DECODE_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return f"ffmpeg took more than {DECODE_TIMEOUT:g} s to decode it"
    except OSError as exc:
        return f"cannot run ffmpeg: {describe_os_error(exc)}"
    # At -v error, anything said is an error (a truncated JPEG: "overread"), whatever the exit.
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0 or said:
        return said[-1].strip() if said else f"ffmpeg exit {done.returncode}"
    return None


# What a file that is not what it claims most often is instead, by its first bytes.
_HTML = re.compile(rb"^\s*<(?:!doctype\s+html|html|head|body|meta|title|script|!--)", re.I)
_GUESSES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows program"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF-", "a PDF"),
    (b"\x7fELF", "a program"),
    (b"\x1f\x8b", "a gzip archive"),
)


def _guess(head: bytes) -> str | None:
    """What the first bytes look like, in a few words, when they say it clearly."""
    head = head.removeprefix(b"\xef\xbb\xbf")
    if _HTML.match(head) or b"<html" in head.lower():
        return "a login page?"
    if head[4:8] == b"ftyp":
        return "a video"
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG")):
        return "an image"
    return next((what for sign, what in _GUESSES if head.startswith(sign)), None)


_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,60}/[A-Za-z0-9!#$&^_.+-]{1,60}")


def _answered(content_type: str | None) -> str:
    """The media type the server announced, fit to print: a header is untrusted text."""
    if not content_type:  # None or ""
        return "answered no Content-Type"
    kind = content_type.split(";", 1)[0].strip().lower()
    return f"answered {kind}" if _MEDIA_TYPE.fullmatch(kind) else "answered an odd Content-Type"


def _not(claim: Claim, head: bytes, content_type: str | None) -> str:
    """``answered text/html, not a PDF: a login page?``; ``content_type`` is ``None`` for a
    file no server just answered (one held already), ``""`` when the server named none."""
    guess = _guess(head)
    said = "" if content_type is None else f"{_answered(content_type)}, "
    reason = f"{said}not {claim.label}"
    if guess is None and not head:
        guess = "an empty file"
    return f"{reason}: {guess}" if guess else reason


def _quote(line: str) -> str:
    """A line of the file, short and printable, to show in a reason."""
    shown = "".join(c if c.isprintable() else "?" for c in line.strip()[:60])
    return repr(shown)
