"""What archiver's own code is, as the work it spares must know it: a digest of every file of
the package (:func:`package`), and of those files with what parsing a fiche depends on beyond
them (:func:`parser`).

A new build under the same version number (a fix applied by hand, a checkout between releases,
a package rebuilt) keeps ``__version__`` but may parse, check or render otherwise: what a run
spares by trusting an earlier one must be keyed by the code that did the earlier work, not by
its version. Both the seal of a sync (:mod:`archiver.settled`) and the fiche cache
(:mod:`archiver.fiche_cache`) are keyed by :func:`parser`; one function, so a build that makes
one of them stale makes the other stale too.

Kept apart from both: the seal's module imports the fiche cache's, which cannot import it
back. What the libraries that parse fiches are is :mod:`archiver.front_matter`'s to say (the
one module that loads them, loaded already by the fiche cache through :mod:`archiver.fiches`).
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import unicodedata
from pathlib import Path

from .front_matter import parsing_libraries

__all__ = ["package", "parser"]

_ROOT = str(Path(__file__).parent)


def package() -> str:
    """Every file of archiver's package (code, templates, static files), by name, size and time
    of change, as they are now (0.35 ms for 120 files, ``__pycache__`` left out): another
    build of the same version is another digest. The change time, not the modification time:
    a copy, a checkout or an ``os.utime`` may put the latter back, never the former."""
    digest = hashlib.sha256()
    pending = [_ROOT]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            digest.update(b"? %s\n" % os.fsencode(folder))
            continue
        for entry in entries:
            if entry.name == "__pycache__":
                continue
            try:
                found = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(found.st_mode):
                pending.append(entry.path)
            elif stat.S_ISREG(found.st_mode):
                name = os.fsencode(entry.path)
                digest.update(b"%s %d %d\n" % (name, found.st_size, found.st_ctime_ns))
    return digest.hexdigest()


def parser() -> str:
    """:func:`package`, and what turns a fiche's bytes into an entry beyond archiver's files:
    Python's version and its Unicode database (``str.strip``, ``unicodedata.normalize`` on
    titles and headings), PyYAML's version and whether libyaml's C loader is there, and which
    (a scalar resolved otherwise is another value), python-frontmatter's files (the boundary
    of a front matter), by size and time of change: its version is only in its metadata,
    which takes 16 ms to read. Any of them upgraded, the fiches are parsed again (a second
    and a half at 10,000 fiches, once). Asked anew each time (about 1 ms): a run asks it
    twice, for its seal and for its fiche cache."""
    digest = hashlib.sha256(package().encode("ascii"))
    digest.update(f"\0{sys.version}\0{unicodedata.unidata_version}\0".encode())
    digest.update(parsing_libraries())
    return digest.hexdigest()
