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

from typing import TYPE_CHECKING

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
from .lazy import lazy_dir, lazy_names
from .manifest_reader import Manifest, load_manifest

if TYPE_CHECKING:
    from .fiches import find_fiches, parse_fiche
    from .manifest import build_manifest, dumps, write_manifest

# Building a manifest needs the fiches, hence YAML and python-frontmatter: 50-90 ms that a
# download, a package or a status never uses. These names are imported when first asked for
# (PEP 562), so ``import archiver.fetch`` stays free of them (tests/test_startup.py).
_LAZY = {
    "build_manifest": "manifest",
    "dumps": "manifest",
    "find_fiches": "fiches",
    "parse_fiche": "fiches",
    "write_manifest": "manifest",
}


__getattr__ = lazy_names(__name__, _LAZY, globals())
__dir__ = lazy_dir(_LAZY, globals())


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
