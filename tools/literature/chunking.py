"""Sentence-based chunking of evidence text into passages sized for the MiniLM encoder.

MiniLM-L6 truncates at 256 word pieces, so passages are kept between roughly 60 and 200 tokens:
whole sentences are packed until the budget is reached, and a short tail is merged back into the
previous passage rather than left as a fragment that carries no context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
# Abbreviations that end with a full stop without ending a sentence in trial reports.
_NO_BREAK = ("e.g.", "i.e.", "vs.", "et al.", "approx.", "cf.", "no.", "fig.", "ca.", "bzw.", "z.b.", "d.h.")
_BOUNDARY = re.compile(r"(?<=[.!?;])\s+(?=[\"'(\[]?[A-Z0-9ÄÖÜ])")


@dataclass(frozen=True)
class Chunk:
    """One passage of a document."""

    seq: int
    text: str
    n_tokens: int


def count_tokens(text: str) -> int:
    """Approximate token count (words and punctuation marks)."""
    return len(_TOKEN.findall(text))


def split_sentences(text: str) -> list[str]:
    """Split text into sentences on terminal punctuation followed by a capital letter or digit."""
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    pieces = _BOUNDARY.split(text)
    sentences: list[str] = []
    for piece in pieces:
        if sentences and sentences[-1].lower().endswith(_NO_BREAK):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return [s.strip() for s in sentences if s.strip()]


def _split_long(sentence: str, max_tokens: int) -> list[str]:
    """Cut a sentence longer than ``max_tokens`` at word boundaries."""
    words = sentence.split(" ")
    parts: list[str] = []
    current: list[str] = []
    for word in words:
        if current and count_tokens(" ".join([*current, word])) > max_tokens:
            parts.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        parts.append(" ".join(current))
    return parts


def chunk_text(text: str, *, min_tokens: int = 60, max_tokens: int = 200) -> list[Chunk]:
    """Pack whole sentences into passages of about ``min_tokens``..``max_tokens`` tokens.

    A document shorter than ``min_tokens`` becomes a single passage; a final passage shorter than
    ``min_tokens`` is merged into the previous one when the merged passage stays within
    ``max_tokens`` plus half a passage (a slightly long passage beats a context-free fragment).
    """
    if min_tokens <= 0 or max_tokens < min_tokens:
        raise ValueError("need 0 < min_tokens <= max_tokens")
    sentences: list[str] = []
    for sentence in split_sentences(text):
        if count_tokens(sentence) > max_tokens:
            sentences.extend(_split_long(sentence, max_tokens))
        else:
            sentences.append(sentence)
    groups: list[list[str]] = []
    current: list[str] = []
    current_tokens = 0
    for sentence in sentences:
        n = count_tokens(sentence)
        if current and current_tokens + n > max_tokens:
            groups.append(current)
            current, current_tokens = [], 0
        current.append(sentence)
        current_tokens += n
    if current:
        tail_tokens = current_tokens
        if groups and tail_tokens < min_tokens:
            merged = count_tokens(" ".join(groups[-1])) + tail_tokens
            if merged <= max_tokens + max_tokens // 2:
                groups[-1].extend(current)
                current = []
        if current:
            groups.append(current)
    chunks = []
    for seq, group in enumerate(groups):
        body = " ".join(group)
        chunks.append(Chunk(seq=seq, text=body, n_tokens=count_tokens(body)))
    return chunks
