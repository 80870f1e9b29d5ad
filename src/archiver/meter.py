"""Byte progress for long reads and writes (packaging, verifying), null unless a CLI draws it."""

from __future__ import annotations

__all__ = ["ByteMeter"]


class ByteMeter:
    """Told how many bytes a task will handle, then of each block handled. Shows nothing."""

    def begin(self, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def end(self) -> None:
        pass
