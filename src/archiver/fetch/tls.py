"""The client's TLS context, its CA certificates loaded on the first request that needs them.

Loading certifi's bundle (what httpx does for every client it makes) costs 23 to 30 ms of
CPU, measured, before the first request of a run: on a school's poor line, where start-up is
what separates archiver from aria2c (issue 14), that is paid for nothing by a manifest of
``http://`` URLs, and is paid once, not once per proxy, by one of ``https://`` URLs. The
context is made at once (about 2 ms) and handed to httpx for the direct transport and every
proxy from the environment; :meth:`Certificates.ready`, a request hook, loads the
certificates in a worker thread before the first request to an ``https://`` URL, or before
any request at all when a proxy is configured (its own connection may be TLS). A request
never reaches a TLS handshake with a context that trusts nothing.

The certificates are those httpx would load: ``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, from
the environment, else certifi's bundle; ``SSLKEYLOGFILE`` as :func:`ssl.create_default_context`
honours it.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys

import httpx

__all__ = ["Certificates"]

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class Certificates:
    """One client's TLS context, and the request hook that fills it before it is used."""

    def __init__(self, *, trust_env: bool = True) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname and chain checked
        self.trust_env = trust_env
        # A proxy's connection may be TLS whatever the URL: then every request waits.
        self.always = trust_env and any(
            os.environ.get(name) or os.environ.get(name.lower()) for name in _PROXY_VARIABLES
        )
        self.loaded = False
        self._loading: asyncio.Future[None] | None = None
        keylog = os.environ.get("SSLKEYLOGFILE")
        if keylog and not sys.flags.ignore_environment:
            self.context.keylog_filename = keylog

    def load(self) -> None:
        """Load the CA certificates (blocking: from a worker thread)."""
        cafile = capath = None
        if self.trust_env and os.environ.get("SSL_CERT_FILE"):
            cafile = os.environ["SSL_CERT_FILE"]
        elif self.trust_env and os.environ.get("SSL_CERT_DIR"):
            capath = os.environ["SSL_CERT_DIR"]
        else:
            import certifi  # only here: a run of http:// URLs never needs it

            cafile = certifi.where()
        self.context.load_verify_locations(cafile=cafile, capath=capath)
        self.loaded = True

    async def ready(self, request: httpx.Request) -> None:
        """A request hook: the certificates are loaded before a request that may need them.

        A failure to load them fails the request as a connection that could not be made
        (with the file and the reason), not the run.
        """
        if self.loaded or not (self.always or request.url.scheme == "https"):
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(asyncio.to_thread(self.load))
        try:
            await asyncio.shield(self._loading)
        except OSError as exc:  # ssl.SSLError included
            self._loading = None  # the next request tries again
            message = f"cannot load the CA certificates: {exc}"
            raise httpx.ConnectError(message, request=request) from exc
