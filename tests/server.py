"""A real HTTP/1.1 server on 127.0.0.1 for the tests: Range, If-Range, ETag, and faults on demand.

Each file is registered with :meth:`FileServer.add` and may carry faults: drop the connection
after N bytes, answer 503 with Retry-After, stall, change its content between requests, ignore
Range, lie about its length, trickle slowly. Every request is logged so that tests can assert
what the client actually asked for (``Range: bytes=N-`` after a crash, no request at all on a
second run), with its query string and headers.

A service with behaviour of its own (a fake PeerTube instance, see ``tests/peertube.py``)
registers a handler with :meth:`FileServer.route`: it sees each matching request as a
:class:`Call` and answers a :class:`Reply`, or a :class:`Served` file (sent with Range, ETag and
the file's faults), or ``None`` to let the files registered with ``add`` answer.

``FileServer(tls=make_certificate(folder))`` serves HTTPS with a self-signed certificate for
127.0.0.1, which clients refuse unless told to trust it (``SSL_CERT_FILE``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs


@dataclass
class Served:
    """A file the server holds, with its faults."""

    content: bytes
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = "video/mp4"
    # faults, each consumed as it fires
    drop_after: int | None = None  # close the connection after this many body bytes...
    drop_times: int = 0  # ...on this many responses
    statuses: list[int] = field(default_factory=list)  # answer these statuses first
    retry_after: str | None = None
    stall_after: int | None = None  # send this many bytes, then go silent
    stall_seconds: float = 0.0
    stall_times: int = 0
    change_to: bytes | None = None  # new content after `change_after` responses
    change_after: int = 1
    ignore_range: bool = False
    ignore_if_range: bool = False  # honour Range even when the file changed (a broken server)
    bad_content_range_times: int = 0  # answer 206 with a range that starts elsewhere
    # Answer 206 with a Content-Range that ends half-way through the range asked for, while
    # its body (and Content-Length) runs on to the asked end with 0xAA filler: the two headers
    # disagree, as RFC 9110 (8.6, 14.4) forbids and a broken server or proxy may still send.
    long_range_times: int = 0
    range_headers: dict[str, str] = field(default_factory=dict)  # more headers on a 206 only
    # A 206 without ETag or Last-Modified (RFC 9110 15.3.7 has a server repeat the ETag its
    # 200 would carry): with ``ignore_if_range``, a server or cache that cannot be caught.
    range_without_validators: bool = False
    # Answer at most this many bytes of any range, after ``range_delay`` seconds (honestly:
    # the Content-Range says so; RFC 9110 15.3.7: a server "will usually attempt to satisfy
    # all of the requested ranges", not always): a server whose every answer is short and
    # slow in coming.
    range_cap: int | None = None
    range_delay: float = 0.0
    # A 206 without Content-Length: its body ends when the server closes the connection (a
    # close-delimited body, RFC 9112 6.3, item 8).
    close_delimited_ranges: bool = False
    extra_length: int = 0  # announce this many bytes more than sent, then close
    trickle: tuple[int, float] | None = None  # (bytes per write, seconds between writes)
    delay: float = 0.0  # seconds to think before answering
    weak_etag: bool = False
    # More headers on every answer (Content-Disposition, Cache-Control, CORS...).
    headers: dict[str, str] = field(default_factory=dict)
    # How If-Range and If-None-Match are judged: "strict" is RFC 9110 (a weak validator never
    # satisfies If-Range); "send" is what Express's ``send`` does (see ``_range``).
    validators: Literal["strict", "send"] = "strict"
    responses: int = 0

    def __post_init__(self) -> None:
        if self.etag is None:
            self.etag = _etag(self.content, weak=self.weak_etag)
        if self.last_modified is None:
            self.last_modified = formatdate(1_700_000_000, usegmt=True)


def _etag(content: bytes, *, weak: bool = False) -> str:
    tag = f'"{hashlib.sha256(content).hexdigest()[:16]}"'
    return f"W/{tag}" if weak else tag


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; ``path`` keeps its query string, as it was sent."""

    path: str
    method: str
    headers: dict[str, str]
    status: int
    sent: int
    query: dict[str, list[str]] = field(default_factory=dict)

    @property
    def bare_path(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]


@dataclass(frozen=True)
class Call:
    """A request as a route's handler sees it."""

    method: str
    path: str  # as sent (percent-encoded), without the query string
    query: dict[str, list[str]]
    headers: Message  # case-insensitive: ``call.headers.get("range")``
    body: bytes
    client: str  # the peer's address


@dataclass
class Reply:
    """A route's answer. With ``chunked`` the body goes out in chunks with no Content-Length,
    as a streamed Express response does."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False
    # Send ``body`` again and again, chunked, until the client goes away (or ``endless_limit``
    # bytes, so that a client with no bound fails its test instead of hanging it).
    endless: bool = False
    endless_limit: int = 1 << 30


Handler = Callable[[Call], "Reply | Served | None"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    errors: list[BaseException]
    connections = 0  # connections accepted (or refused in the TLS handshake) since reset()

    def get_request(self) -> tuple[socket.socket, object]:
        self.connections += 1
        return super().get_request()  # type: ignore[no-any-return]

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that goes away (killed, timed out on a stall) is part of the tests; any
        # other error is kept for them to see, not printed where a CLI test reads stderr.
        error = sys.exc_info()[1]
        gone = ConnectionError | TimeoutError | ssl.SSLEOFError
        if error is not None and not isinstance(error, gone):
            self.errors.append(error)


def make_certificate(folder: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 and its key, made by ``openssl req -x509``;
    ``None`` when openssl is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class FileServer:
    """The server, its files and its request log; ``url(path)`` gives a file's address."""

    def __init__(self, *, tls: tuple[Path, Path] | None = None) -> None:
        self.files: dict[str, Served] = {}
        self.redirects: dict[str, str] = {}
        self.routes: list[tuple[re.Pattern[str], Handler]] = []
        self.log: list[Request] = []
        self.lock = threading.Lock()
        # Bumped by reset(): a handler still busy from an earlier test (a stall, a trickle)
        # must not log into the next test's requests.
        self.generation = 0
        # Requests being answered now, by generation (a handler left from an earlier test must
        # not count), and the most answered at once since the last reset.
        self.active: dict[int, int] = {}
        self.peak = 0
        handler = type("Handler", (_Handler,), {"owner": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.errors = []
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            # The handshake happens in accept(): a client that refuses the certificate is an
            # OSError there, which the server ignores, as it should.
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def add(self, path: str, content: bytes, **faults: object) -> Served:
        served = Served(content=content, **faults)  # type: ignore[arg-type]
        with self.lock:
            self.files[path] = served
        return served

    def redirect(self, path: str, to: str) -> None:
        self.redirects[path] = to

    def route(self, pattern: str | re.Pattern[str], handler: Handler) -> None:
        """Send requests whose path (without query) starts with ``pattern`` (a string) or
        matches it (a compiled regex, with ``re.match``) to ``handler``, before the files.

        Routes are tried in the order they were added; a handler that returns ``None`` lets
        the next route, then the redirects and files, answer.
        """
        compiled = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        with self.lock:
            self.routes.append((compiled, handler))

    def requests(self, path: str | None = None) -> list[Request]:
        """The requests logged since the last reset; with ``path``, those sent to exactly that
        path (with its query string, if it had one)."""
        with self.lock:
            return [r for r in self.log if path is None or r.path == path]

    @property
    def connections(self) -> int:
        """TCP connections accepted since the last reset, TLS handshakes refused included."""
        return self.httpd.connections

    @property
    def errors(self) -> list[BaseException]:
        """Errors raised in the server's handlers (other than clients going away)."""
        return self.httpd.errors

    def reset(self) -> None:
        with self.lock:
            self.httpd.errors.clear()
            self.generation += 1
            self.files.clear()
            self.redirects.clear()
            self.routes.clear()
            self.log.clear()
            self.peak = 0
            self.httpd.connections = 0

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    owner: FileServer
    generation: int
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and a small body go out in two writes: without this, Nagle's algorithm and
        # the client's delayed ACK hold the second one back ~40 ms, and 50 API calls take 2 s.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _record(self, status: int, sent: int) -> None:
        query = parse_qs(self.path.partition("?")[2], keep_blank_values=True)
        with self.owner.lock:
            if self.generation != self.owner.generation:
                return
            self.owner.log.append(
                Request(self.path, self.command, dict(self.headers.items()), status, sent, query)
            )

    def _plain(self, status: int, headers: dict[str, str] | None = None) -> None:
        body = f"{status}\n".encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._record(status, 0)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        with self.owner.lock:
            generation = self.owner.generation
            active = self.owner.active
            active[generation] = active.get(generation, 0) + 1
            self.owner.peak = max(self.owner.peak, active[generation])
        try:
            self._answer()
        finally:
            with self.owner.lock:
                active[generation] -= 1

    def _answer(self) -> None:
        self.generation = self.owner.generation
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self._route(path, body):
            return
        if self.command == "POST":
            self._plain(404)
            return
        if path in self.owner.redirects:
            self._plain(302, {"Location": self.owner.redirects[path]})
            return
        with self.owner.lock:
            served = self.owner.files.get(path)
            if served is not None:
                served.responses += 1
                number = served.responses
        if served is None:
            self._plain(404)
            return
        self._serve(served, number)

    def _route(self, path: str, body: bytes) -> bool:
        """Let the first route that answers do so; whether one did."""
        with self.owner.lock:
            routes = list(self.owner.routes)
        call: Call | None = None
        for pattern, handler in routes:
            if not pattern.match(path):
                continue
            if call is None:
                query = parse_qs(self.path.partition("?")[2], keep_blank_values=True)
                call = Call(self.command, path, query, self.headers, body, self.client_address[0])
            answer = handler(call)
            if answer is None:
                continue
            if isinstance(answer, Served):
                with self.owner.lock:
                    answer.responses += 1
                    number = answer.responses
                self._serve(answer, number)
            else:
                self._reply(answer)
            return True
        return False

    def _reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        names = {name.lower() for name, _ in reply.headers}
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.chunked or reply.endless:
            self.send_header("Transfer-Encoding", "chunked")
        elif "content-length" not in names:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command == "HEAD":
            self._record(reply.status, 0)
            return
        try:
            if reply.endless:
                self._endless(reply)
                return
            if reply.chunked:
                for piece in _pieces(reply.body, None):
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        self._record(reply.status, len(reply.body))

    def _endless(self, reply: Reply) -> None:
        chunk = f"{len(reply.body):x}\r\n".encode() + reply.body + b"\r\n"
        sent = 0
        try:
            while sent < reply.endless_limit and self.generation == self.owner.generation:
                self.wfile.write(chunk)
                sent += len(reply.body)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        self.close_connection = True
        self._record(reply.status, sent)

    def _serve(self, served: Served, number: int) -> None:
        """Answer with ``served``, its faults first."""
        if served.delay:
            time.sleep(served.delay)
        if served.statuses:
            status = served.statuses.pop(0)
            headers = {"Retry-After": served.retry_after} if served.retry_after else {}
            self._plain(status, headers)
            return
        if served.change_to is not None and number > served.change_after:
            served.content = served.change_to
            served.etag = _etag(served.content, weak=served.weak_etag)
            served.last_modified = formatdate(1_800_000_000, usegmt=True)
            served.change_to = None
        self._send(served)

    def _range(self, served: Served) -> tuple[int, int] | str | None:
        """The byte range to send, ``None`` for the whole file, ``"416"`` when unsatisfiable."""
        header = self.headers.get("Range")
        if not header or served.ignore_range or not header.startswith("bytes="):
            return None
        if_range = self.headers.get("If-Range")
        if served.validators == "send":
            if if_range is not None and not _send_range_fresh(if_range, served):
                return None
        else:
            if (
                if_range is not None
                and not served.ignore_if_range
                and if_range not in (served.etag, served.last_modified)
            ):
                return None  # the file changed: RFC 9110 says send it all, with 200
            if if_range is not None and if_range.startswith("W/"):
                return None  # weak validators never satisfy If-Range
        spec = header[len("bytes=") :]
        if "," in spec:
            return None  # several ranges: answered whole, as Express's send does
        first, dash, last = spec.strip().partition("-")
        size = len(served.content)
        if not dash or not (first + last).isdigit():
            return None  # a malformed Range is ignored (RFC 9110 section 14.2)
        if not first:  # a suffix: the last N bytes
            if int(last) == 0:
                return "416"
            return max(size - int(last), 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
        if start >= size:
            return "416"
        if end < start:
            return None  # an invalid range is ignored
        return start, min(end, size - 1)

    def _not_modified(self, served: Served) -> bool:
        match = self.headers.get("If-None-Match")
        if served.validators == "send":
            # jshttp/fresh (used by send): If-None-Match compares weakly, "*" matches all.
            if match is not None:
                tags = [t.strip().removeprefix("W/") for t in match.split(",")]
                return "*" in tags or (served.etag or "").removeprefix("W/") in tags
        elif match is not None:
            return match == served.etag
        since = self.headers.get("If-Modified-Since")
        return since is not None and since == served.last_modified

    def _send(self, served: Served) -> None:
        if self._not_modified(served):
            self.send_response(304)
            if served.etag:
                self.send_header("ETag", served.etag)
            self.end_headers()
            self._record(304, 0)
            return
        content = served.content
        size = len(content)
        byte_range = self._range(served)
        if byte_range == "416":
            self._plain(416, {"Content-Range": f"bytes */{size}"})
            return
        if isinstance(byte_range, tuple):
            start, end = byte_range
            status = 206
            if served.range_cap is not None:
                end = min(end, start + served.range_cap - 1)
            time.sleep(served.range_delay)
        else:
            start, end, status = 0, size - 1, 200
        body: bytes | memoryview = memoryview(content)[start : end + 1]  # no copy per request
        shown, shown_end = start, end
        if status == 206:
            with self.owner.lock:
                if served.bad_content_range_times > 0:
                    served.bad_content_range_times -= 1
                    shown = max(start - 1000, 0)
                if served.long_range_times > 0 and end > start:
                    served.long_range_times -= 1
                    shown_end = start + (end - start) // 2
                    filler = b"\xaa" * (end - shown_end)
                    body = bytes(body[: shown_end - start + 1]) + filler
        self.send_response(status)
        for name, value in served.headers.items():
            self.send_header(name, value)
        if status == 206:
            for name, value in served.range_headers.items():
                self.send_header(name, value)
        self.send_header("Content-Type", served.content_type)
        close_delimited = status == 206 and served.close_delimited_ranges
        if not close_delimited:
            self.send_header("Content-Length", str(len(body) + served.extra_length))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.send_header("Accept-Ranges", "bytes")
        validators = status != 206 or not served.range_without_validators
        if served.etag and validators:
            self.send_header("ETag", served.etag)
        if served.last_modified and validators:
            self.send_header("Last-Modified", served.last_modified)
        if status == 206:
            self.send_header("Content-Range", f"bytes {shown}-{shown_end}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            self._record(status, 0)
            return
        sent = self._write_body(served, body)
        self._record(status, sent)

    def _write_body(self, served: Served, body: bytes | memoryview) -> int:
        limit = len(body)
        drop = False
        stall = False
        with self.owner.lock:
            if served.drop_after is not None and served.drop_times > 0:
                served.drop_times -= 1
                limit = min(limit, served.drop_after)
                drop = True
            if served.stall_after is not None and served.stall_times > 0:
                served.stall_times -= 1
                limit = min(limit, served.stall_after)
                stall = True
        sent = 0
        try:
            for piece in _pieces(body[:limit], served.trickle):
                self.wfile.write(piece)
                self.wfile.flush()
                sent += len(piece)
                if served.trickle:
                    time.sleep(served.trickle[1])
            if stall:
                time.sleep(served.stall_seconds)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return sent
        if drop or stall or served.extra_length:
            self.close_connection = True
        return sent


def _send_range_fresh(if_range: str, served: Served) -> bool:
    """Whether Express's ``send`` honours a Range under this If-Range.

    pillarjs/send ``SendStream.prototype.isRangeFresh`` (index.js): a value with a quote is an
    ETag and is looked for *as a substring* of the ETag sent, so a weak ``W/"..."`` matches
    too, against RFC 9110; any other value is a date, fresh when Last-Modified is not later.
    """
    if '"' in if_range:
        return bool(served.etag) and (served.etag or "") in if_range
    try:
        asked = parsedate_to_datetime(if_range)
        modified = parsedate_to_datetime(served.last_modified or "")
    except (TypeError, ValueError):
        return False
    return modified <= asked


def _pieces(body: bytes | memoryview, trickle: tuple[int, float] | None) -> Iterator[bytes]:
    step = trickle[0] if trickle else 256 * 1024
    view = memoryview(body)
    for offset in range(0, len(body), step):
        yield bytes(view[offset : offset + step])
