"""libzim's writer items for the ZIM's entries: how each is read, hinted and indexed.

A file of the archive is handed to libzim as a path (:class:`libzim.writer.FileProvider`:
libzim reads it itself, in C++, outside the GIL, which keeps a video's bytes out of Python);
a generated page as its bytes. libzim calls these methods from its own threads, so they only
return what was fixed when the item was made.
"""

from __future__ import annotations

import re
import unicodedata

from libzim.writer import (
    ContentProvider,
    FileProvider,
    Hint,
    IndexData,
    Item,
    StringProvider,
)

from .content import ZimEntry

__all__ = ["both_forms", "fold", "item_of"]

# The stubs declare the members as instance variables of type Self: mypy finds them ambiguous.
COMPRESS: Hint = Hint.COMPRESS  # type: ignore[misc]
FRONT_ARTICLE: Hint = Hint.FRONT_ARTICLE  # type: ignore[misc]


def fold(text: str) -> str:
    """``text`` lower-cased without its accents, as libzim folds what it indexes itself.

    libzim's own index data (``DefaultIndexData``) passes the title, text and keywords of a
    page through ``removeAccents`` (ICU: lower-case, decompose, drop the marks); index data
    given by the caller is indexed as given, and libzim folds the reader's query the same
    way, so an accented index would find neither "differencier" nor "différencier".

    >>> fold("Différencier les îlots, ÉVALUER")
    'differencier les ilots, evaluer'
    """
    decomposed = unicodedata.normalize("NFD", text.lower())
    kept = "".join(char for char in decomposed if not unicodedata.combining(char))
    return unicodedata.normalize("NFC", kept)


# Xapian refuses a term over 245 bytes, and libzim gives up on a whole ZIM when too many of a
# small collection's titles lose one ("Too much loss of data during title indexing"): one
# fiche with a 250-letter word in its title must not fail every night's ZIM. 60 characters
# are at most 240 bytes of UTF-8; no French word comes near.
MAX_WORD = 60


def bounded_words(text: str) -> str:
    """``text`` with every run of non-space characters cut to :data:`MAX_WORD` characters.

    >>> bounded_words("Un " + "x" * 300 + " titre") == "Un " + "x" * 60 + " titre"
    True
    >>> bounded_words("Différencier ses pratiques")
    'Différencier ses pratiques'
    """
    if len(text) <= MAX_WORD:
        return text
    return _LONG_WORD.sub(lambda word: word.group()[:MAX_WORD], text)


_LONG_WORD = re.compile(rf"\S{{{MAX_WORD + 1},}}")


def both_forms(text: str) -> str:
    r"""``text`` folded (:func:`fold`), then as written when that differs.

    Readers built on libzim 9 fold the query and find the folded words; Debian 12's
    kiwix-serve (libzim 8.0) searches the query as typed, and finds "differencier" in the
    folded words and "différencier" in the words as written.

    >>> both_forms("Îlots"), both_forms("classe")
    ('ilots\nÎlots', 'classe')
    """
    folded = fold(text)
    return folded if folded == text else f"{folded}\n{text}"


class _Text(IndexData):
    """What full-text search finds a page by: its title, and the text given (no HTML),
    folded as libzim folds a page it reads itself, and as written (:func:`both_forms`)."""

    def __init__(self, title: str, text: str, keywords: str) -> None:
        super().__init__()
        title, text = bounded_words(title), bounded_words(text)
        self.title = fold(title)  # as libzim's own index data holds it
        self.text = both_forms(f"{title}\n\n{text}" if title else text)
        self.keywords = both_forms(bounded_words(keywords))
        self.words = len(text.split())

    def has_indexdata(self) -> bool:
        return bool(self.text)

    def get_title(self) -> str:
        return self.title

    def get_content(self) -> str:
        return self.text

    def get_keywords(self) -> str:
        return self.keywords

    def get_wordcount(self) -> int:
        return self.words

    def get_geoposition(self) -> tuple[float, float] | None:
        return None


class _Entry(Item):
    def __init__(self, entry: ZimEntry) -> None:
        super().__init__()
        self.entry = entry
        if entry.index_text is not None:
            index = _Text(entry.title, entry.index_text, entry.keywords)
            self.get_indexdata = lambda: index

    def get_path(self) -> str:
        return self.entry.path

    def get_title(self) -> str:
        return bounded_words(self.entry.title)  # what the title index holds (the page: whole)

    def get_mimetype(self) -> str:
        return self.entry.mimetype

    def get_contentprovider(self) -> ContentProvider:
        source = self.entry.source
        if source.data is not None:
            return StringProvider(source.data)
        if source.path is None:  # a Source is bytes or a file: never neither
            raise ValueError(f"{self.entry.path}: no bytes and no file")
        return FileProvider(source.path)

    def get_hints(self) -> dict[Hint, int]:
        return {
            COMPRESS: int(self.entry.compress),
            FRONT_ARTICLE: int(self.entry.front),
        }


def item_of(entry: ZimEntry) -> Item:
    """The libzim item that writes ``entry``."""
    return _Entry(entry)
