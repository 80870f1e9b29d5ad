"""The bundled default collection: the fiches archiver ships with and uses when given none."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["default_collection"]


def default_collection() -> Path:
    """The folder holding the bundled fiches."""
    return Path(str(importlib.resources.files("archiver") / "default_collection"))
