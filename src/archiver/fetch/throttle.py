"""A process-wide bandwidth cap shared by every concurrent download (``--rate-limit``)."""

from __future__ import annotations

import asyncio
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    """A token bucket: ``rate`` bytes per second on average, bursts of at most ``burst`` bytes.

    Downloads call :meth:`consume` after each chunk they receive; a download that overdraws the
    bucket sleeps until the debt is repaid. Waiting downloads queue on a lock, so they are
    served in turn and share the rate fairly. TCP flow control then holds the line itself to
    what the process drains.

    >>> limiter = RateLimiter(512 * 1024)  # 500k, as curl's --limit-rate 500k
    """

    def __init__(self, rate: float, *, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        # A quarter of a second of traffic: smooth enough for a school's line, and large
        # enough that one socket read (64 KiB) never waits twice.
        self.burst = float(burst) if burst is not None else max(self.rate / 4, 64 * 1024)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def consume(self, count: int) -> None:
        """Account for ``count`` bytes received; sleep as long as the cap requires."""
        async with self._lock:
            self._refill()
            self._tokens -= count
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate)
                self._refill()
