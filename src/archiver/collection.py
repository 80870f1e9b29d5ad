"""The bundled default collection: the fiches archiver ships with and uses when given none."""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_collection"]


def default_collection() -> Path:
    """The folder holding the bundled fiches."""
    import importlib.resources  # 25 ms at start-up, for the one command that needs it

    return Path(str(importlib.resources.files("archiver") / "default_collection"))
