"""``archiver history``, ``archiver restore`` and ``archiver export``: what the archive holds of
an item and what happened to it, which held version kits get, and the whole story written out
(JSON lines, PREMIS 3). Also the lines ``archiver status`` adds about its audits.

Wiring only: :mod:`archiver.history` and :mod:`archiver.premis` read the catalog, and
:class:`~archiver.archive.Archive` restores. Imported by :mod:`archiver.cli` once its shared
pieces (``common_options``, ``_echo``) exist, and registered there.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from ..errors import ArchiveError, ArchiverError, UsageError
from ..units import format_bytes
from . import _echo, _refuse_inside, _state, common_options

if TYPE_CHECKING:
    from ..archive import Archive
    from ..catalog import FileRecord
    from ..history import ItemHistory, RoleHistory, VersionHistory

# The archive and its history are imported by the commands that read them, not with the
# command line: every other command starts without them (issue 14's start-up).

__all__ = [
    "audit_lines",
    "export_command",
    "history_command",
    "history_lines",
    "restore_command",
]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")

# --archive, for commands that read or change an archive that must exist already.
existing_archive = click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("archive"),
    show_default=True,
    help="The archive folder (it must exist: nothing is created).",
)


def _moment(text: str | None) -> str:
    """A catalog time for a person, to the second: ``2026-11-27 04:00:28Z``."""
    if not text:
        return "never"
    return text[:19].replace("T", " ") + "Z" if len(text) >= 19 else text


# -- archiver history --------------------------------------------------------------------------


@click.command(name="history")
@click.argument("item")
@existing_archive
@click.option(
    "--role",
    default=None,
    metavar="ROLE",
    help="Only this file of the item (video, audio, fiche_pdf, caption_fr…); all by default.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the history as JSON (docs/history.md)."
)
@common_options
def history_command(item: str, archive: Path, role: str | None, as_json: bool) -> None:
    """Every version and rendition of an item's files, and what happened to them.

    For each version: when it was fetched, its sha256, size and resolution, its source URL
    and final URL, whether it is current, restored for kits or the one kits get, what
    replaced it and why (an upstream change, a new URL), its refreshes, when an audit last
    saw it intact and any audit it failed; then every event of the item in order.

    \b
    Examples:
      archiver history 9520b54d-0a3c-43dc-8821-d559fa418cc6 --archive /srv/archive
      archiver history ITEM --archive /srv/archive --role video --json | jq .roles

    \b
    Exit codes: 0 shown; 2 no such item in the archive, or no archive.
    """
    from ..archive import Archive
    from ..history import item_history

    with Archive.existing(archive) as store:
        found = item_history(store, item, role=role)
    if as_json:
        _echo(json.dumps(found.to_json(), indent=2, sort_keys=True), lines=True)
        return
    for line in history_lines(found):
        _echo(line)


def history_lines(history: ItemHistory) -> list[str]:
    """``archiver history`` for a person: per role, each version, then the item's events."""
    from ..history import event_sentence

    lines = [f"{history.item_id}: {history.title or '(no title recorded)'}"]
    for role in history.roles:
        lines.append("")
        lines.extend(_role_lines(role))
    lines.append("")
    lines.append(f"Events ({len(history.events)}):")
    lines.extend(
        f"  {_moment(e.at)}  {e.outcome:<7}  {event_sentence(e)}"
        + (f" (run {e.run_id})" if e.run_id is not None else "")
        for e in history.events
    )
    return lines


def _role_lines(role: RoleHistory) -> list[str]:
    count = len(role.versions)
    shown = role.kits_get
    if shown is None:
        gets = "kits get none (no version held)"
    elif shown.restored:
        gets = f"kits get version {shown.record.version}, restored"
    else:
        gets = f"kits get version {shown.record.version}"
    lines = [f"{role.role}: {count} version{'s' if count != 1 else ''}; {gets}"]
    for version in role.versions:
        lines.extend(_version_lines(version))
    for event in role.quarantined:
        lines.append(
            f"  quarantined {_moment(event.at)}: {event.detail.get('reason', '?')}"
            f" (kept in {event.detail.get('path', '?')}; the held version stayed)"
        )
    return lines


def _version_lines(version: VersionHistory) -> list[str]:
    r = version.record
    marks = [
        mark
        for mark, on in (
            ("current", r.current),
            ("restored", version.restored),
            ("kits get it", version.kits_get),
            ("NOT HELD", not version.held),
        )
        if on
    ]
    height = f"{r.resolution}p" if r.resolution else "resolution unknown"
    if r.content_type and not r.content_type.startswith(("video/", "audio/")):
        height = r.content_type
    head = f"  version {r.version}: {_moment(r.fetched_at)}, {format_bytes(r.size)}, {height}"
    lines = [head + (f" [{', '.join(marks)}]" if marks else "")]
    rows: list[tuple[str, str]] = [("sha256", r.sha256), ("source", r.url)]
    if r.final_url != r.url:
        rows.append(("final URL", r.final_url))
    for event in version.events:
        url = event.detail.get("url")
        if event.kind == "refresh":
            rows.append(("refreshed", f"{_moment(event.at)}: the same bytes again from {url}"))
        elif event.kind == "restore" and event.detail.get("latest"):
            rows.append(("restore", f"{_moment(event.at)}: restored no more (--latest)"))
        elif event.kind == "restore":
            rows.append(("restore", f"{_moment(event.at)}: made the version kits get"))
    if version.replaced_by is not None:
        by = version.replaced_by
        rows.append(("replaced", f"by version {by.version} on {_moment(by.at)}: {by.reason}"))
    seen = f"last seen intact by an audit {_moment(r.audited_at)}" if r.audited_at else None
    rows.append(("intact", seen or "never audited yet"))
    for event in version.audit_failures:
        problem = event.detail.get("problem", "failed")
        last = _moment(event.detail.get("last_intact"))
        rows.append(("audit", f"FAILED {_moment(event.at)}: {problem}; last seen intact {last}"))
    if not version.held:
        rows.append(("not held", "missing or damaged: 'archiver verify --archive' says which"))
    lines.extend(f"      {label:<10} {text}" for label, text in rows)
    return lines


# -- archiver restore --------------------------------------------------------------------------


@click.command(name="restore")
@click.argument("item")
@existing_archive
@click.option(
    "--version",
    "version",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Make version N (see 'archiver history') the one kits get.",
)
@click.option(
    "--sha256",
    "sha256",
    default=None,
    metavar="HEX",
    help="Make the held version with this sha256 the one kits get.",
)
@click.option("--latest", is_flag=True, help="Undo a restore: kits get the current version again.")
@click.option(
    "--role",
    default="video",
    show_default=True,
    metavar="ROLE",
    help="Which file of the item (video, audio, fiche_pdf…).",
)
@common_options
@click.pass_context
def restore_command(
    ctx: click.Context,
    item: str,
    archive: Path,
    version: int | None,
    sha256: str | None,
    latest: bool,
    role: str,
) -> None:
    """Make a held version of an item's file the one kits get, offline.

    It stays the one kits get, whatever the manifest pins, until upstream changes that
    rendition (the new version is then current, and kits get it) or 'restore --latest'.
    Recorded as an event of the archive ('archiver history' shows it). The next 'archiver
    package' or 'archiver sync' puts it in the kit.

    \b
    Examples:
      archiver restore ITEM --archive /srv/archive --version 1
      archiver restore ITEM --archive /srv/archive --sha256 0386a52f…(64 hex digits)
      archiver restore ITEM --archive /srv/archive --latest

    \b
    Exit codes: 0 done; 2 no such version held (named), or bad usage; 3 another run holds
    the archive.
    """
    state = _state(ctx)
    if sum((version is not None, sha256 is not None, latest)) != 1:
        raise UsageError("give one of --version N, --sha256 HEX or --latest")
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        raise UsageError(f"--sha256 {sha256!r}: not a sha256 (64 hexadecimal digits)")
    from ..archive import Archive

    with Archive.existing(archive) as store, store.locked(), _recorded(store, "restore"):
        if not store.versions(item, role):
            raise ArchiveError(
                archive,
                f"{item} ({role}): no such file in this archive; 'archiver history {item}"
                f" --archive {archive}' lists what it holds",
            )
        if latest:
            lifted = store.restore_latest(item, role)
            current = store.for_kit(item, role)
            line = _latest_line(item, role, lifted, current)
        else:
            record = store.restore(
                item, role, version=version, sha256=sha256.lower() if sha256 else None
            )
            line = (
                f"Restore: {item} ({role}): kits now get version {record.version}"
                f" (sha256 {record.sha256}, {format_bytes(record.size)}, fetched"
                f" {_moment(record.fetched_at)})"
            )
    if not state.quiet:
        _echo(
            f"{line}; the next 'archiver package' or 'archiver sync' puts it in the kit", err=True
        )


def _latest_line(
    item: str, role: str, lifted: FileRecord | None, current: FileRecord | None
) -> str:
    now = f"version {current.version}" if current is not None else "no held version"
    if lifted is None:
        return f"Restore: {item} ({role}): no version was restored; kits get {now}"
    return (
        f"Restore: {item} ({role}): version {lifted.version} is restored no more;"
        f" kits now get {now}, the current one"
    )


@contextlib.contextmanager
def _recorded(store: Archive, command: str) -> Iterator[None]:
    """Record the command as a run of the archive, so that its events name their run."""
    run_id = store.start_run(command)
    try:
        yield
    except ArchiverError as exc:
        store.finish_run(run_id, "failed", {"error": exc.message})
        raise
    store.finish_run(run_id, "ok", {})


# -- archiver export ---------------------------------------------------------------------------


@click.command(name="export")
@existing_archive
@click.option(
    "--format",
    "form",
    type=click.Choice(["jsonl", "premis"]),
    required=True,
    help="jsonl: one JSON object per event; premis: a PREMIS 3 XML document (docs/history.md).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    show_default=True,
    help="The file to write, atomically (never through a link); '-' is standard output.",
)
@common_options
@click.pass_context
def export_command(ctx: click.Context, archive: Path, form: str, output: Path) -> None:
    """Every event of the archive, with its objects and agents: provenance out of SQLite.

    jsonl writes one JSON object per event (fetch, change, refresh, quarantine, audit,
    restore, retire, prune, upgrade), with the sha256, size and path of the version it
    concerns. premis writes the same as PREMIS 3 XML, the preservation metadata standard of
    libraries: an object with its SHA-256 fixity for each stored version, an event for each
    event, an agent for archiver and for each web server, all linked by identifiers.
    Written as it is read: an archive of any size is exported in little memory.

    \b
    Examples:
      archiver export --archive /srv/archive --format premis -o archive-premis.xml
      archiver export --archive /srv/archive --format jsonl | jq -c 'select(.kind=="audit")'

    \b
    Exit codes: 0 written; 1 the file could not be written (a full disk); 2 bad usage, or
    no archive.
    """
    state = _state(ctx)
    # The archive, its history and PREMIS's XML writer (urllib and email, 15-20 ms): imported
    # by the command that writes them, not at every start.
    from ..archive import Archive
    from ..history import write_export, write_jsonl
    from ..premis import write_premis

    writer: Callable[[Archive, IO[str]], int] = write_premis if form == "premis" else write_jsonl
    with Archive.existing(archive) as store:
        if str(output) == "-":
            count = _to_stdout(lambda out: writer(store, out))
        else:
            _refuse_inside(output, {"archive": archive})
            count = write_export(output, lambda out: writer(store, out))
    if not state.quiet and str(output) != "-":
        _echo(f"Export: {count} event(s) of {archive} written to {output} ({form})", err=True)


def _to_stdout(write: Callable[[IO[str]], int]) -> int:
    """Write to standard output as UTF-8 whatever the locale says (an export is a file)."""
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream put in stdout's place
        return write(sys.stdout)
    sys.stdout.flush()
    stream = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")
    try:
        count = write(stream)
        stream.flush()
    finally:
        stream.detach()
    return count


# -- the lines archiver status adds ------------------------------------------------------------


def audit_lines(status: Mapping[str, Any]) -> list[str]:
    """``archiver status``'s account of the last audits and of what failed its last one."""
    audit = status["audit"]
    lines = []
    if audit.get("recent"):
        lines.append(f"Last audits ({len(audit['recent'])}):")
        for run in audit["recent"]:
            problems = run.get("problems") or 0
            found = f"{problems} problem(s)" if problems else "all intact"
            share = f", a {run['sample_percent']:g}% sample" if run.get("sample_percent") else ""
            lines.append(
                f"  {_moment(run['at'])}: {run.get('files')} of {run.get('of_files')} files"
                f" ({format_bytes(run.get('bytes') or 0)}{share}), {found}"
            )
    failing = audit.get("failing") or []
    if failing:
        lines.append(f"Failing their last audit: {len(failing)}")
        lines.extend(
            f"  {f['item']} ({f['role']}, version {f['version']}): {f['problem']};"
            f" last seen intact {_moment(f['last_intact'])}"
            for f in failing
        )
    return lines
