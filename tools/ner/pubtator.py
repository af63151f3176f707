"""PubTator title/abstract records: reading, writing and word tokenisation with character offsets.

Offsets follow the NCBI Disease corpus convention: they index into ``title + " " + abstract``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)

_HEADER = re.compile(r"^(?P<pmid>[^|\t]+)\|(?P<kind>[ta])\|(?P<text>.*)$")
# Words are runs of letters/digits; every other non-space character is its own token, so that
# mention boundaries at hyphens, slashes and brackets (frequent in disease names) stay reachable.
_WORD = re.compile(r"[^\W_]+|[^\w\s]|_", re.UNICODE)


@dataclass(frozen=True)
class Mention:
    """One annotated span of a record."""

    start: int
    end: int
    text: str
    type: str = "Disease"
    concept: str = "-"


@dataclass(frozen=True)
class Token:
    """A word token with its character offsets into the record text."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class PubtatorDoc:
    """A PubTator record: identifier, title, abstract and its mention annotations."""

    pmid: str
    title: str
    abstract: str
    mentions: tuple[Mention, ...] = field(default_factory=tuple)
    relations: tuple[str, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        """The annotated text: title and abstract joined by one space."""
        return f"{self.title} {self.abstract}"

    def with_mentions(self, mentions: Iterable[Mention]) -> PubtatorDoc:
        """A copy of this record carrying ``mentions`` (sorted, duplicates removed) instead."""
        unique = {(m.start, m.end): m for m in mentions}
        ordered = tuple(unique[k] for k in sorted(unique))
        return replace(self, mentions=ordered, relations=())


def _lines(source: str | Path | Iterable[str]) -> Iterable[str]:
    if isinstance(source, (str, Path)):
        return Path(source).read_text(encoding="utf-8").splitlines()
    return (line.rstrip("\n").rstrip("\r") for line in source)


def read_pubtator(path_or_lines: str | Path | Iterable[str], types: Sequence[str] | None = None) -> list[PubtatorDoc]:
    """Parse PubTator records from a file path or an iterable of lines.

    ``types`` keeps only annotations whose type is listed (e.g. ``["Disease"]`` for BC5CDR);
    ``None`` keeps every annotation. Relation lines (4 columns) are kept verbatim.
    Offsets are authoritative: where the corpus's mention column disagrees with the text at those
    offsets (a handful of NCBI records carry such slips), a warning is logged and the column kept.
    """
    docs: list[PubtatorDoc] = []
    pmid: str | None = None
    title = abstract = ""
    mentions: list[Mention] = []
    relations: list[str] = []

    def flush() -> None:
        if pmid is not None:
            docs.append(PubtatorDoc(pmid, title, abstract, tuple(mentions), tuple(relations)))

    for raw in _lines(path_or_lines):
        if not raw.strip():
            continue
        header = _HEADER.match(raw)
        if header and "\t" not in raw.split("|", 1)[0]:
            doc_id, kind, text = header["pmid"], header["kind"], header["text"]
            if kind == "t":
                flush()
                pmid, title, abstract, mentions, relations = doc_id, text, "", [], []
            else:
                if doc_id != pmid:
                    raise ValueError(f"abstract line for {doc_id} does not follow its title")
                abstract = text
            continue
        cols = raw.split("\t")
        if pmid is None or cols[0] != pmid:
            raise ValueError(f"annotation line outside its record: {raw[:80]!r}")
        if len(cols) >= 5 and cols[1].isdigit() and cols[2].isdigit():
            start, end = int(cols[1]), int(cols[2])
            kind_col = cols[4]
            if types is not None and kind_col not in types:
                continue
            full = f"{title} {abstract}"
            if not 0 <= start < end <= len(full):
                raise ValueError(f"{pmid}: offsets {start}-{end} fall outside the record")
            if full[start:end] != cols[3]:
                logger.warning("%s: text at %d-%d differs from mention %r", pmid, start, end, cols[3])
            concept = cols[5] if len(cols) > 5 else "-"
            mentions.append(Mention(start, end, cols[3], kind_col, concept))
        else:
            relations.append(raw)
    flush()
    logger.debug("read %d PubTator records", len(docs))
    return docs


def write_pubtator(docs: Iterable[PubtatorDoc], stream: TextIO) -> None:
    """Write records in PubTator format, one blank line between records."""
    for i, doc in enumerate(docs):
        if i:
            stream.write("\n")
        stream.write(f"{doc.pmid}|t|{doc.title}\n{doc.pmid}|a|{doc.abstract}\n")
        for m in doc.mentions:
            stream.write(f"{doc.pmid}\t{m.start}\t{m.end}\t{m.text}\t{m.type}\t{m.concept}\n")
        for rel in doc.relations:
            stream.write(rel + "\n")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into word and punctuation tokens with character offsets."""
    return [Token(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def sentence_spans(tokens: Sequence[Token], text: str) -> list[tuple[int, int]]:
    """Group token indices into sentences as half-open ``(first, last)`` index pairs.

    A sentence ends at ``.``, ``?`` or ``!`` followed by whitespace and a token that does not
    start lower-case, which keeps abbreviations such as "e.g. the" inside their sentence.
    """
    spans: list[tuple[int, int]] = []
    begin = 0
    for i, tok in enumerate(tokens):
        if tok.text not in {".", "?", "!"} or i + 1 >= len(tokens):
            continue
        nxt = tokens[i + 1]
        if nxt.start > tok.end and not nxt.text[0].islower():
            spans.append((begin, i + 1))
            begin = i + 1
    if begin < len(tokens):
        spans.append((begin, len(tokens)))
    return spans
