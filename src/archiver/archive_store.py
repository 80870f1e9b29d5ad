"""The archive's store and the views of it: where a downloaded file's bytes go, and how a
person browsing ``media/`` sees them.

Bytes are kept once per sha256 in ``store/<aa>/<sha256>``; the current version of each
rendition shows in its item's folder under a name for its role (a hard link, the *view*).
:class:`ArchiveStore` is the part of :class:`~archiver.archive.Archive` that commits a
checked partial file there and keeps the views: a name another file holds is never written
over. A mixin over :class:`~archiver.archive_folder.ArchiveFolder`, in its own module so that
the Archive class reads as its concepts.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .archive_folder import ArchiveFolder, log
from .archive_paths import NAME, SHA256, lstat_inside, segment
from .archive_records import VIDEO, FetchedFile, media_facts_row
from .catalog import FileRecord, store_path, utc_now
from .errors import StorageError, describe_os_error, writing
from .files import file_sha256, fsync_dir

__all__ = ["ArchiveStore"]

# What :meth:`Catalog.path_owner` says of a path that holds a version's bytes, not a view.
_BYTES = ("", "", -1)

# How many names a file tries (``fiche.pdf``, ``fiche-2.pdf``…) before the archive gives up.
_NAME_TRIES = 20


class ArchiveStore(ArchiveFolder):
    """Where a checked file's bytes are kept (the store), and shown (its item's folder)."""

    def commit(
        self, item_id: str, role: str, name: str, partial: Path, fetched: FetchedFile
    ) -> FileRecord:
        """Move a complete, checked partial file into the store and record it.

        Bytes are stored once per sha256 (``store/<aa>/<sha256>``): a version whose bytes the
        archive holds already (an earlier version come back, the same file of another item)
        takes no more room. A video's renditions (its 720p, its 240p) each have their own
        versions: a new version of one supersedes its rendition's current one, which stays,
        recorded and in the store, and leaves the others as they are. The current version of
        each rendition shows in the item's folder under ``name`` (a hard link). Blocking
        (renames, fsyncs, a catalog transaction): the downloader calls it off its event loop.
        """
        rendition = self.rendition_of(item_id, role, fetched.url, fetched.resolution)
        folder = self.item_dir(item_id)
        name = segment(name, "file name", NAME)
        self.inside(partial)
        old = self.catalog.current(item_id, role, rendition)
        facts = media_facts_row(fetched.sha256, *fetched.media) if fetched.media else None
        stored = self._store(partial, fetched.sha256, fetched.size)
        try:
            if old is not None and old.sha256 == fetched.sha256:
                self.catalog.refresh_provenance(
                    old,
                    url=fetched.url,
                    final_url=fetched.final_url,
                    etag=fetched.etag,
                    last_modified=fetched.last_modified,
                    facts=facts,
                    run_id=self.run_id,
                )
                record = self.catalog.current(item_id, role, rendition) or old
            else:
                now = utc_now()
                view = self._free_name(folder, name, (item_id, role, rendition))
                record = FileRecord(
                    item_id=item_id,
                    role=role,
                    version=self.catalog.next_version(item_id, role),
                    path=store_path(fetched.sha256),
                    url=fetched.url,
                    final_url=fetched.final_url,
                    sha256=fetched.sha256,
                    size=fetched.size,
                    etag=fetched.etag,
                    last_modified=fetched.last_modified,
                    fetched_at=now,
                    current=True,
                    checked_at=now,
                    resolution=fetched.resolution,
                    content_type=fetched.content_type,
                    segments=fetched.segments,
                    rendition=rendition,
                    view=view.relative_to(self.root).as_posix(),
                )
                self.catalog.add_version(record, superseded=old, facts=facts, run_id=self.run_id)
        except StorageError:
            # Not recorded: the new bytes go back to the partial, where the next run finds
            # them and records them; the store keeps only what the catalog knows.
            if stored:
                with contextlib.suppress(OSError):
                    os.replace(self.root / store_path(fetched.sha256), partial)
            raise
        if old is not None and old.view is not None and old.view != record.view:
            self._hide(old)
        self._show(record)
        return record

    def rendition_of(self, item_id: str, role: str, url: str, resolution: int | None) -> int:
        """Which rendition a file fetched from ``url`` is: a video's height as its instance
        gave it; for a video fetched without asking its instance, the rendition that came
        from the same URL before (the same file), else 0 (unknown); 0 for every other role."""
        if role != VIDEO:
            return 0
        renditions = self.catalog.renditions(item_id, role)
        if resolution and any(r.rendition == resolution for r in renditions):
            return resolution
        same = [r.rendition for r in renditions if r.url == url]
        if resolution and 0 not in same:
            return resolution
        # Fetched once without its height (its instance did not answer): the same file from
        # the same URL goes on in that rendition, so a change is a change, not a new rendition.
        return same[0] if same else (resolution or 0)

    def _store(self, partial: Path, sha256: str, size: int) -> bool:
        """Put a checked partial's bytes in the store: False when it held them already (the
        partial is then dropped), True when they were moved there.

        Bytes that came again while the store holds their sha256 are rare (a full answer to
        a conditional request, the same file for two items): the store's copy is read once
        to be sure of it, and a copy that rotted is replaced by the fresh, checked bytes.
        """
        target = self.inside(self.root / store_path(segment(sha256, "sha256", SHA256)))
        with writing(target, "cannot store the file"):
            if self._size_held(target) == size:
                if file_sha256(target) == sha256:
                    partial.unlink()
                    return False
                log.warning(
                    "%s: damaged (its sha256 is not its name); replaced by the bytes just"
                    " fetched, which are",
                    target,
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
            fsync_dir(target.parent)
        return True

    def _show(self, record: FileRecord) -> None:
        """Make a current version's ``view`` in its item's folder a hard link to its bytes.

        The view is for a person browsing ``media/``: the store and the catalog are what is
        held. A file system that has no hard links (or refuses one) leaves the version shown
        nowhere, with a warning said once; nothing is copied, so no bytes are held twice.
        """
        if record.view is None:
            return
        view = self.inside(self.root / record.view)
        stored = self.root / record.path
        with contextlib.suppress(OSError):
            if os.path.samefile(view, stored) and not os.path.islink(view):
                return
        temporary = view.with_name(f".{view.name}.{os.getpid()}.link")
        try:
            view.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            os.link(stored, temporary)
            os.replace(temporary, view)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            if "views" not in self._links_named:
                self._links_named.add("views")
                log.warning(
                    "%s: cannot show the archive's files in media/ (%s); they are held in"
                    " store/, and 'archiver history' says which is which",
                    view,
                    describe_os_error(exc),
                )
            self.catalog.set_view(record, None)

    def shown(self, record: FileRecord) -> None:
        """Show a held current version in its item's folder again if its view is gone (a
        person deleted it, or moved the folder): one ``lstat`` when it is there. Raises
        :class:`StorageError` for a link on the way: nothing is written through one."""
        if record.view is None:
            return
        view = self._under_root(record.view)
        if lstat_inside(self.root, view, self._folders) is None:
            self._show(record)

    def _hide(self, record: FileRecord) -> None:
        """Remove a superseded version's view, if it still shows that version's bytes from
        the store (the bytes stay there). A view that is itself a version's only copy (an
        archive not yet moved into the store) is never removed."""
        if record.view is None or not record.path.startswith("store/"):
            return
        view = self.inside(self.root / record.view)
        if self.catalog.path_owner(record.view) == _BYTES:
            return
        with contextlib.suppress(OSError):
            if os.path.samefile(view, self.root / record.path) and not os.path.islink(view):
                view.unlink()

    def _shows_ours(self, candidate: Path, owner: tuple[str, str, int]) -> bool:
        """Whether ``candidate`` is missing, or a hard link to the store's bytes of a version
        of ``owner``'s rendition: a file a person put there instead is not ours to replace."""
        if not os.path.lexists(candidate):
            return True
        if os.path.islink(candidate):
            return False
        item_id, role, rendition = owner
        for record in self.catalog.versions(item_id, role):
            if record.rendition == rendition and record.path.startswith("store/"):
                with contextlib.suppress(OSError):
                    if os.path.samefile(candidate, self.root / record.path):
                        return True
        return False

    def _free_name(self, folder: Path, name: str, owner: tuple[str, str, int]) -> Path:
        """``folder/name``, unless another file holds that name: then ``stem-2.ext``, and so on.

        A name another file of the item shows under (an archive of an earlier release, which
        named files after their URL), a version's bytes not yet in the store, or a file
        archiver did not put there (a person's own, in the view's place), is never written
        over. The rendition's own view is: it shows the new version instead.
        """
        stem, dot, extension = name.partition(".")
        for number in range(1, _NAME_TRIES + 1):
            candidate = folder / (name if number == 1 else f"{stem}-{number}{dot}{extension}")
            found = self.catalog.path_owner(candidate.relative_to(self.root).as_posix())
            if found == owner and self._shows_ours(self.inside(candidate), owner):
                return candidate
            if found is None and not os.path.lexists(candidate):
                return candidate
        raise StorageError(folder / name, f"taken, and so are {_NAME_TRIES - 1} names like it")
