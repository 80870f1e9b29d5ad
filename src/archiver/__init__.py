"""archiver: turn a folder of video fiches into a manifest, an archive and an offline kit.

The package, in pipeline order (imports point one way, from the top of this list down)::

    cli/         the command line: click, tqdm, every line a person reads
    sync         manifest + download + kit in one run, for cron
    kit/         the offline kit: what goes in, derived files, the French site, BagIt, writing
    fetch/       the download: PeerTube's API, the choice, the plan, the fetcher, HTTP
    sniff        is a file what it claims (PDF, WebVTT, image) before it is kept
    choose       which rendition each video gets (--max-height, --fit, --transcode)
    media        FFmpeg: reading videos, posters, re-encodes
    audit        fixity audits of the archive
    archive      the archive folder: media tree, partials, quarantine, the lock
    archive_paths  its path checks: safe segments, no link followed, a lost catalog refused
    archive_lock   its lock: one run at a time (flock), the holder's PID
    archive_status what `archiver status` shows, read from the catalog
    catalog      its SQLite catalog, the only module that speaks SQL
    manifest     the deterministic JSON manifest, built and written
    manifest_reader  the Manifest record, read back strictly from untrusted JSON
    fiches       reading and validating fiches; entry: the records they become
    front_matter a fiche's YAML, loaded safely (no aliases, bounded values)
    errors, progress, files, names, units, urls, links: small utilities used by all
                 (links: PeerTube's link forms and short UUIDs)
"""

from __future__ import annotations

from ._version import __version__
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
