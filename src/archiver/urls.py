"""URL checks shared by every input that names a URL (fiches, manifests)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DEFAULT_PORTS", "redact", "url_problem"]

ALLOWED_SCHEMES = ("http", "https")
# The port each scheme archiver fetches connects to when its URL names none.
DEFAULT_PORTS = {"http": 80, "https": 443}
# White space (str.isspace) and control characters (Unicode category Cc).
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def url_problem(value: str) -> str | None:
    """Why ``value`` is not an http(s) URL archiver may fetch, or ``None`` when it is one."""
    if _SPACE_OR_CONTROL.search(value):
        return "URL contains spaces or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is what validates it
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        shown = f"'{parts.scheme}'" if parts.scheme else "none"
        return f"URL scheme must be http or https, got {shown}"
    if not parts.hostname:
        return "URL has no host"
    return None


def redact(url: str) -> str:
    """``url`` fit to print: a ``user:password@`` in it becomes ``***@``; anything else as is.

    >>> redact("https://ann:s3cret@tube.example/videos/v.mp4")
    'https://***@tube.example/videos/v.mp4'
    >>> redact("https://tube.example/v.mp4")
    'https://tube.example/v.mp4'
    """
    if "@" not in url:
        return url  # no credentials can hide in it: the common case, without parsing
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a URL with credentials>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
