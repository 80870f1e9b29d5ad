"""A fiche's front matter, loaded as YAML that every later stage can hold.

PyYAML's safe loader builds only plain types, but not every plain type survives the rest of
the pipeline: an alias expands to gigabytes once written as JSON, ``.nan`` and a 5,000-digit
integer have no JSON or SQLite form, ``2024-02-30`` is no date. Here they are refused as the
YAML is loaded, and every problem becomes a :class:`~archiver.errors.FicheError` naming the
fiche, the field and the reason. What a fiche's fields mean is :mod:`archiver.fiches`' concern.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter
import frontmatter.default_handlers
import yaml
from frontmatter.default_handlers import YAMLHandler

from .entry import MAX_NESTING, JSONValue
from .errors import FicheError
from .names import shown_name

__all__ = ["as_json", "load_front_matter", "parsing_libraries", "value_kind"]

# Integers a fiche may hold: what SQLite and every JSON reader in the chain store exactly.
_INT_RANGE = range(-(2**63), 2**63)
# Longest integer text worth converting: 64 binary digits with a prefix and a sign, with room
# for `_` separators. Longer is refused before int() is asked to convert it (5,000 digits
# raise ValueError; a few hundred thousand take seconds).
_MAX_INT_TEXT = 80
# Values the YAML constructor made that need no further check.
_PLAIN_SCALARS = (str, int, float, dt.date, bytes, type(None))
# How much of a refused value's text an error message shows.
_SHOWN_CHARS = 40


@dataclass(frozen=True)
class _Refused:
    """A YAML value a fiche may not hold, kept with why so that the field holding it is named.

    The YAML constructor cannot raise with the field's name (it does not know it); the check
    of the loaded front matter (:func:`_check_values`) finds these and reports the field.
    """

    text: str
    reason: str


class _AliasFound(Exception):
    """A YAML alias (``*name``) in a fiche; ``line`` is its anchor's, counted from 0 as marks."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _FicheConstructor(yaml.constructor.SafeConstructor):
    """PyYAML's safe constructor, with the bounds a fiche needs.

    Aliases are refused: a fiche is a handful of scalar fields, no real one uses an alias
    (nor does the seed fiche), and an alias is what makes a "billion laughs" possible: 700 bytes
    of nested aliases load as a small shared graph, but everything after (the manifest's JSON,
    comparisons, the kit) expands it to gigabytes, and ``&a [*a]`` makes a list that holds
    itself. Refusing them costs one dictionary look-up per node; a budget of expansion would
    have to be counted by every later consumer.

    Scalars that have no JSON or SQLite form (a 5,000-digit integer, ``.nan``, ``.inf``,
    ``2024-02-30``) become :class:`_Refused` values rather than exceptions, so the error can
    name the field that holds them.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A node met a second time is an alias (libyaml's composer hands back the anchored
        # node itself); one still being built is an alias to an enclosing node.
        if node in self.constructed_objects or node in self.recursive_objects:
            raise _AliasFound(node.start_mark.line)
        return super().construct_object(node, deep)

    def construct_fiche_int(self, node: yaml.ScalarNode) -> object:
        text = self.construct_scalar(node)
        if len(text.replace("_", "")) > _MAX_INT_TEXT:
            return _Refused(text, f"number too large ({len(text)} characters; at most 64 bits)")
        try:
            value = self.construct_yaml_int(node)
        except (ValueError, IndexError):  # `!!int abc`, `!!int ""`
            return _Refused(text, "not an integer")
        if value not in _INT_RANGE:
            return _Refused(text, "number too large (at most 64 bits)")
        return value

    def construct_fiche_float(self, node: yaml.ScalarNode) -> object:
        text = self.construct_scalar(node)
        try:
            value = self.construct_yaml_float(node)
        except (ValueError, IndexError):  # `!!float abc`, `!!float ""`
            return _Refused(text, "not a number")
        if math.isfinite(value):
            return value
        if "inf" in text.lower() or "nan" in text.lower():
            return _Refused(text, "not a finite number (.nan and .inf have no JSON form)")
        return _Refused(text, "number too large for a 64-bit float")

    def construct_fiche_timestamp(self, node: yaml.ScalarNode) -> object:
        text = self.construct_scalar(node)
        if not self.timestamp_regexp.match(text):  # `!!timestamp soon`
            return _Refused(text, "not a date (YYYY-MM-DD)")
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError as exc:  # `2024-02-30`, year 0, a zone offset of 25 hours
            return _Refused(text, f"not a valid date: {exc}")

    def construct_fiche_bool(self, node: yaml.ScalarNode) -> object:
        text = self.construct_scalar(node)
        if text.lower() not in self.bool_values:  # `!!bool maybe`
            return _Refused(text, "not a boolean")
        return self.construct_yaml_bool(node)


for _tag, _constructor in (
    ("int", _FicheConstructor.construct_fiche_int),
    ("float", _FicheConstructor.construct_fiche_float),
    ("timestamp", _FicheConstructor.construct_fiche_timestamp),
    ("bool", _FicheConstructor.construct_fiche_bool),
):
    # The stubs want a Loader as the first argument; a constructor method is what PyYAML calls.
    _FicheConstructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _constructor)  # type: ignore[type-var]


def _pick_safe_loader() -> type[yaml.SafeLoader]:
    # libyaml's C loader is ~10x faster than the pure-Python one python-frontmatter uses by
    # default, and just as safe: CSafeLoader constructs only plain YAML types. Its parser also
    # bounds nesting (1,000 levels) where the Python one recurses until RecursionError.
    base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader: type[yaml.SafeLoader] = type("FicheLoader", (_FicheConstructor, base), {})
    return loader


_FICHE_LOADER = _pick_safe_loader()
# PyYAML's own resolver (the one every loader uses): which type a plain scalar's text is.
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"
# The first characters for which the resolver has patterns (None: patterns for any text).
_RESOLVED_STARTS = frozenset(_RESOLVER.yaml_implicit_resolvers)
# A line `name: value` of the simplest kind: a short name, one space, a value that starts with
# no indicator and no blank, holds no flow bracket, and ends with no blank.
_SIMPLE_LINE = re.compile(r"([A-Za-z][A-Za-z0-9_]{0,63}): ([^-?:,\[\]{}#&*!|>'\"%@`\s][^\[\]{}]*)")


def _typed(text: str) -> bool:
    """Whether YAML reads the plain scalar ``text`` as other than a string (a number, a
    boolean, null, a date...). The resolver tries only the patterns of the text's first
    character, so text starting with none of them is a string without asking it."""
    if None not in _RESOLVED_STARTS and text[:1] not in _RESOLVED_STARTS:
        return False
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return bool(tag != _STR_TAG)


def _simple_fields(fm: str) -> dict[str, str] | None:
    """The front matter's fields when every line is ``name: text`` as YAML reads it, else
    ``None`` (and libyaml loads it).

    Nearly every fiche is a handful of such lines, and building them through libyaml's
    events and PyYAML's constructor took a third of a fiche's parse. What is accepted here
    is a subset YAML reads as exactly these strings: one line each (blank lines between),
    plain scalars with no comment (`` #``), no second colon (``: `` or a final ``:``), only
    printable characters (so no tab, no YAML line break), and text that PyYAML's own resolver
    types as a string (not ``yes``, ``12``, ``null``, ``2024-02-01``), names alike, each name
    once. Anything else, however valid, is left to libyaml, which says what is wrong.

    >>> _simple_fields("\\ntitle: Un titre, court\\nurl: https://a.example/v\\n")
    {'title': 'Un titre, court', 'url': 'https://a.example/v'}
    >>> print(_simple_fields("\\nsize: 12\\n"), _simple_fields("\\ntitle: a # b\\n"))
    None None
    """
    fields: dict[str, str] = {}
    for line in fm.split("\n"):
        if not line:
            continue
        match = _SIMPLE_LINE.fullmatch(line)
        if match is None:
            return None
        name, value = match.groups()
        if (
            name in fields
            or value.endswith((" ", ":"))
            or ": " in value
            or " #" in value
            or not value.isprintable()
            or _typed(name)
            or _typed(value)
        ):
            return None
        fields[name] = value
    return fields or None


class _NotAMapping(Exception):
    def __init__(self, found: object) -> None:
        super().__init__(type(found).__name__)
        self.found = found


class _SafeYAMLHandler(YAMLHandler):
    """python-frontmatter's YAML handler, with libyaml's safe loader and a mapping check."""

    loader = _FICHE_LOADER

    def load(self, fm: str, **kwargs: object) -> Any:
        if self.loader is _FICHE_LOADER:  # not when a benchmark swaps in another loader
            simple = _simple_fields(fm)
            if simple is not None:
                return simple
        try:
            data = yaml.load(fm, Loader=self.loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.reader.ReaderError as exc:
            raise _reader_error_with_line(exc, fm, self.loader) from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise _NotAMapping(data)
        return data


def _reader_error_with_line(
    exc: yaml.reader.ReaderError, fm: str, loader: type[yaml.SafeLoader]
) -> yaml.MarkedYAMLError:
    """A reader error (a control character) as a marked one, so that it says on which line.

    libyaml counts its position in bytes of UTF-8, the Python reader in characters.
    """
    if issubclass(loader, getattr(yaml, "CParser", ())):
        line = fm.encode("utf-8", "surrogatepass")[: exc.position].count(b"\n")
    else:
        line = fm[: exc.position].count("\n")
    if isinstance(exc.character, int):
        problem = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
    else:
        problem = exc.reason
    mark = yaml.Mark(exc.name, exc.position, line, 0, None, 0)
    return yaml.MarkedYAMLError(problem=problem, problem_mark=mark)


_HANDLER = _SafeYAMLHandler()


def _colon_hint(text: str, line: int) -> str | None:
    """For a value holding " : " (French typography puts a space before a colon: "Travailler
    en équipe : outils"), which YAML reads as a second key: the fix, on the fiche's own line.

    >>> print(_colon_hint("---\\ntitle: Outils : le cahier\\n---\\n", 2))
    line 2 has a colon inside its value: put the whole value in quotes: title: "Outils : le cahier"
    """
    lines = text.split("\n")
    if not 0 < line <= len(lines):
        return None
    key, colon, value = lines[line - 1].partition(":")
    value = value.strip()
    if not colon or ":" not in value or value[:1] in ("'", '"'):
        return None
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f"line {line} has a colon inside its value: put the whole value in quotes:"
        f' {key.strip()}: "{quoted}"'
    )


def load_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    """A fiche's front matter as a checked mapping of fields, and the Markdown after it.

    ``text`` has its line ends already made ``\\n``; ``path`` is only used in messages. The
    fields are text; their values are plain YAML types that JSON and SQLite can hold.

    >>> load_front_matter("---\\ntitle: Un titre\\nsize: 12\\n---\\n## Script\\n", Path("a.md"))
    ({'title': 'Un titre', 'size': 12}, '## Script')
    >>> load_front_matter("---\\ntitle: A\\nratio: .nan\\n---\\n", Path("a.md"))
    Traceback (most recent call last):
    archiver.errors.FicheError: a.md: ratio: not a finite number (.nan and .inf have no JSON form)
    """
    stripped = text.lstrip()
    if not _HANDLER.detect(stripped):
        raise FicheError(path, "front matter", "missing: a fiche starts with a '---' line")
    parts = _HANDLER.FM_BOUNDARY.split(stripped, 2)
    if len(parts) < 3:
        raise FicheError(path, "front matter", "not closed by a '---' line")
    # Lines before the front matter's first line, so YAML errors give the file's line number.
    offset = text[: len(text) - len(stripped)].count("\n") + 1
    try:
        # What frontmatter.parse(text, handler=_HANDLER) returns, from the split above rather
        # than a second strip and split of the whole fiche (a tenth of a fiche's parse). Its
        # split of the text stripped at both ends finds the same boundaries: trailing blanks
        # only ever follow the closing line's ``-{3,}\s*$``, and the Markdown is stripped.
        meta, body = _HANDLER.load(parts[1]), parts[2].strip()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + offset}" if mark else ""
        reason = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in reason:
            reason = f"{reason} (only plain YAML is allowed; tags are not)"
        hint = (
            _colon_hint(text, mark.line + offset) if mark and "mapping values" in reason else None
        )
        raise FicheError(
            path, "front matter", f"malformed YAML{where}: {reason}", hint=hint
        ) from exc
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise FicheError(path, "front matter", f"malformed YAML: {reason}") from exc
    except _NotAMapping as exc:
        raise FicheError(
            path, "front matter", f"must be a mapping of fields, got {value_kind(exc.found)}"
        ) from exc
    except _AliasFound as exc:
        raise FicheError(
            path,
            "front matter",
            f"YAML aliases (*name) are not allowed in a fiche (anchor at line "
            f"{exc.line + offset}); write the value out instead",
        ) from exc
    except RecursionError as exc:  # the pure-Python loader, where libyaml is missing
        raise FicheError(path, "front matter", "YAML nested too deeply") from exc
    _check_values(meta, path)
    return meta, body


def _check_values(meta: Mapping[Any, Any], path: Path) -> None:
    """Refuse what the front matter may not hold, naming the field: a field name that is not
    text (JSON has only text keys; ``3`` and ``"3"`` would collide), a :class:`_Refused`
    value, nesting deeper than :data:`MAX_NESTING` (no fiche needs it, and every later reader
    of the manifest would recurse that deep)."""
    for key, value in meta.items():
        if not isinstance(key, str):
            raise FicheError(path, _shown_key(key), "field names must be text")
        if not isinstance(value, _PLAIN_SCALARS):  # else nothing to check, nor to name
            _check_value(value, shown_name(key), path, 0)


def _check_value(value: object, field: str, path: Path, depth: int) -> None:
    if isinstance(value, _Refused):
        raise FicheError(path, field, value.reason)
    if isinstance(value, Mapping):
        if depth >= MAX_NESTING:
            raise FicheError(path, field, f"nested more than {MAX_NESTING} levels deep")
        for key, item in value.items():
            if not isinstance(key, str):
                raise FicheError(path, f"{field}.{_shown_key(key)}", "field names must be text")
            if not isinstance(item, _PLAIN_SCALARS):
                _check_value(item, f"{field}.{shown_name(key)}", path, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        if depth >= MAX_NESTING:
            raise FicheError(path, field, f"nested more than {MAX_NESTING} levels deep")
        for index, item in enumerate(value):
            if not isinstance(item, _PLAIN_SCALARS):
                _check_value(item, f"{field}[{index}]", path, depth + 1)


def _shown_key(key: object) -> str:
    text = key.text if isinstance(key, _Refused) else "null" if key is None else str(key)
    return shown_name(text, limit=_SHOWN_CHARS)


def value_kind(value: object) -> str:
    """What a loaded value is, as a message to the fiche's author says it.

    >>> value_kind(3), value_kind([1]), value_kind(dt.date(2024, 2, 1))
    ('a number', 'a list', 'a date')
    """
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, dt.date):
        return "a date"
    return f"a {type(value).__name__}"


def as_json(value: object) -> JSONValue:
    """A loaded value as JSON can hold it (dates as ISO text, binary as base64).

    >>> as_json({"when": dt.date(2024, 2, 1), "raw": b"hi", "tags": {"b", "a"}})
    {'when': '2024-02-01', 'raw': 'aGk=', 'tags': ['a', 'b']}
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value  # finite: the constructor refused the others
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): as_json(v) for k, v in value.items()}  # keys checked as text
    if isinstance(value, set | frozenset):
        return sorted(str(as_json(v)) for v in value)
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return str(value)


def parsing_libraries() -> bytes:
    """What the libraries that read a front matter are, for :mod:`archiver.code_key`: PyYAML's
    version and whether libyaml's C loader is there, and which (a scalar resolved otherwise is
    another value), python-frontmatter's files (the boundary of a front matter) by size and
    time of change: its version is only in its metadata, which takes 16 ms to read."""
    libyaml = yaml._yaml.get_version_string() if yaml.__with_libyaml__ else "-"
    found = [f"{yaml.__version__}\0{libyaml}".encode()]
    for module in (frontmatter, frontmatter.default_handlers):
        where = module.__file__ or ""
        try:
            info = os.stat(where)
        except OSError:
            found.append(b"? %s" % os.fsencode(where))
            continue
        found.append(b"%s %d %d" % (os.fsencode(where), info.st_size, info.st_ctime_ns))
    return b"\0".join(found)
