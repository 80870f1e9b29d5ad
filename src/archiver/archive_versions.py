"""Which version of a file the archive holds, and which one a run, a kit or a restore means.

:class:`ArchiveVersions` is the part of :class:`~archiver.archive.Archive` that answers from
the catalog and one ``lstat`` per file: the current version of each rendition, those whose
bytes are on disk at their recorded size, the one a kit shows, and ``archiver restore``'s
choice of it; with the derived rows (FFmpeg's facts, posters) that go with a version's bytes,
which tell a video's height when its instance did not. A mixin over
:class:`~archiver.archive_folder.ArchiveFolder`, in its own module so that the Archive class
reads as its concepts.
"""

from __future__ import annotations

from .archive_folder import ArchiveFolder, log
from .archive_records import VIDEO, media_facts_row
from .catalog import MEDIA_FACTS, MEDIA_FACTS_VERSION, Derived, FileRecord
from .errors import ArchiveError
from .files import file_sha256

__all__ = ["ArchiveVersions"]


class ArchiveVersions(ArchiveFolder):
    """The versions an archive holds, read from its catalog and checked on disk."""

    def current(self, item_id: str, role: str, rendition: int = 0) -> FileRecord | None:
        """The current version of a file (of one rendition of a video), as recorded, whether
        or not it is still on disk."""
        return self.catalog.current(item_id, role, rendition)

    def current_roles(self, item_id: str, prefix: str) -> list[FileRecord]:
        """The current files of an item whose role starts with ``prefix`` (``caption_``)."""
        records = self.catalog.current_with_prefix(item_id, prefix)
        return [r for r in records if self._on_disk(r)]

    def held_versions(self, item_id: str, role: str) -> list[FileRecord]:
        """Every version, of every rendition, of a file whose bytes are held at their size."""
        return [r for r in self.versions(item_id, role) if self._on_disk(r)]

    def versions(self, item_id: str, role: str) -> list[FileRecord]:
        return self.catalog.versions(item_id, role)

    def held(
        self,
        item_id: str,
        role: str,
        url: str | None = None,
        *,
        rendition: int | None = None,
    ) -> FileRecord | None:
        """A current version on disk at its recorded size: of ``rendition`` (a video's height)
        when given, from ``url`` when given; the tallest rendition that qualifies.

        A version of unknown height (0) from the same URL counts for any rendition: the file
        an earlier run fetched without asking its instance is the same file. This is the
        catalog-trusting check that makes a second run fetch nothing: the full sha256 is the
        job of ``archiver verify``, not of every run.
        """
        found = []
        for record in self.catalog.renditions(item_id, role):
            if rendition is not None and record.rendition not in (rendition, 0):
                continue
            if rendition and record.rendition == 0 and url is None:
                continue
            if (url is None or record.url == url) and self._on_disk(record):
                found.append(record)
        if len(found) > 1 and found[-1].rendition == 0:
            return max(found, key=self._height)  # one of unknown height: as FFmpeg read it
        return found[0] if found else None

    def _height(self, record: FileRecord) -> int:
        """A version's height: its rendition's, else as FFmpeg read it, else 0."""
        if record.rendition:
            return record.rendition
        facts = self.media_facts(record.sha256)
        return facts.height if facts is not None and facts.height else 0

    def held_sha256(
        self, item_id: str, role: str, sha256: str, size: int | None = None
    ) -> FileRecord | None:
        """The latest held version of a file (any rendition) whose bytes have ``sha256``."""
        for record in reversed(self.versions(item_id, role)):
            if record.sha256 == sha256 and size in (None, record.size) and self._on_disk(record):
                return record
        return None

    def restored(self, item_id: str, role: str = VIDEO) -> FileRecord | None:
        """The version ``archiver restore`` made the one kits get, if any (held or not)."""
        return self.catalog.restored(item_id, role)

    def for_kit(
        self,
        item_id: str,
        role: str = VIDEO,
        *,
        sha256: str | None = None,
        size: int | None = None,
        url: str | None = None,
        chosen: FileRecord | None = None,
    ) -> FileRecord | None:
        """The held version a kit shows, in this order: the one ``archiver restore`` made the
        one kits get; the one a manifest pins (``sha256``: ``None`` if it is not held); the
        one this run chose (``chosen``: a rendition for ``--fit``, ``--max-height``); the
        current rendition from ``url`` (the fiche's link); the tallest current one."""
        restored = self.catalog.restored(item_id, role)
        if restored is not None and self._on_disk(restored):
            return restored
        if restored is not None:
            log.warning(
                "%s (%s): version %d, restored for kits, is not held; the kit shows another",
                item_id,
                role,
                restored.version,
            )
        if sha256 is not None:
            return self.held_sha256(item_id, role, sha256, size)
        if chosen is not None and self._on_disk(chosen):
            return chosen
        return (url is not None and self.held(item_id, role, url)) or self.held(item_id, role)

    def restore(
        self,
        item_id: str,
        role: str = VIDEO,
        *,
        version: int | None = None,
        sha256: str | None = None,
    ) -> FileRecord:
        """Make a held version the one kits get, until its rendition changes upstream or
        :meth:`restore_latest`; recorded as an event. Raises :class:`ArchiveError` naming
        what is not held."""
        if version is not None:
            record = self.catalog.file_version(item_id, role, version)
            wanted = f"version {version}"
        else:
            record = next(
                (r for r in reversed(self.versions(item_id, role)) if r.sha256 == sha256), None
            )
            wanted = f"sha256 {sha256}"
        if record is None:
            known = [str(r.version) for r in self.versions(item_id, role)]
            said = f"its versions are {', '.join(known)}" if known else "it has none"
            raise ArchiveError(self.root, f"{item_id} ({role}): no {wanted}; {said}")
        path = self.root / record.path
        if not self._on_disk(record) or file_sha256(path) != record.sha256:
            raise ArchiveError(
                path,
                f"{item_id} ({role}): version {record.version} is not held (missing or"
                " damaged); 'archiver verify --archive' says more",
            )
        current = self.catalog.current(item_id, role, record.rendition)
        detail: dict[str, object] = {"version": record.version, "sha256": record.sha256}
        if current is not None:
            detail["current_version"] = current.version
        self.catalog.restore(record, run_id=self.run_id, detail=detail)
        return record

    def restore_latest(self, item_id: str, role: str = VIDEO) -> FileRecord | None:
        """Kits show the current version again; the version that was restored, if any."""
        return self.catalog.restore_latest(item_id, role, run_id=self.run_id)

    def mark_checked(self, record: FileRecord) -> None:
        """Note that upstream confirmed this version unchanged just now."""
        self.catalog.mark_checked(record)

    def derived(self, sha256: str, kind: str, version: int) -> Derived | None:
        derived = self.catalog.derived(sha256, kind, version)
        if derived is None or not derived.path:
            return derived
        if self._size_held(self._under_root(derived.path)) is None:
            return None  # its file was removed (or is behind a link, named): make it again
        return derived

    def media_facts(self, sha256: str) -> Derived | None:
        """What FFmpeg read of these bytes (duration, size) when they were confirmed playable."""
        return self.derived(sha256, MEDIA_FACTS, MEDIA_FACTS_VERSION)

    def record_media_facts(
        self, sha256: str, duration: float | None, width: int | None, height: int | None
    ) -> Derived:
        facts = media_facts_row(sha256, duration, width, height)
        self.record_derived(facts)
        return facts

    def record_derived(self, derived: Derived) -> None:
        self.catalog.record_derived(derived)
