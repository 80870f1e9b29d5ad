"""archiver: turn a folder of video fiches into a manifest, an archive and an offline kit."""

from __future__ import annotations

from .collection import default_collection
from .entry import Asset, Credit, Entry, Licence, PeerTubeRef, Source, Video
from .errors import (
    ArchiverError,
    ConfigError,
    FicheError,
    InputError,
    InvalidInputs,
    LockHeld,
    ManifestError,
    UsageError,
)
from .fiches import find_fiches, parse_fiche
from .manifest import Manifest, build_manifest, dumps, load_manifest, write_manifest

__version__ = "0.1.0"

__all__ = [
    "ArchiverError",
    "Asset",
    "ConfigError",
    "Credit",
    "Entry",
    "FicheError",
    "InputError",
    "InvalidInputs",
    "Licence",
    "LockHeld",
    "Manifest",
    "ManifestError",
    "PeerTubeRef",
    "Source",
    "UsageError",
    "Video",
    "__version__",
    "build_manifest",
    "default_collection",
    "dumps",
    "find_fiches",
    "load_manifest",
    "parse_fiche",
    "write_manifest",
]
