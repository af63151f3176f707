"""Combining the token classifier with the lexicon's abbreviation and consistency rules."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from tools.ner.lexicon import LexiconRecognizer, abbreviation_spans
from tools.ner.model import DiseaseTagger
from tools.ner.pubtator import Mention, PubtatorDoc, Token, tokenize

logger = logging.getLogger(__name__)


def _overlaps(span: tuple[int, int], others: Sequence[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in others)


def trim_span(text: str, span: tuple[int, int], boundary_words: frozenset[str]) -> tuple[int, int] | None:
    """``span`` without leading/trailing function words, stray punctuation or an unclosed bracket.

    Annotated disease names never start or end with "of"/"or"/"and" or a dangling hyphen, and their
    brackets are balanced ("G6PD deficiency", not "dehydrogenase (G6PD"). ``None`` when nothing is left.
    """
    start, end = span
    tokens = [Token(t.text, t.start + start, t.end + start) for t in tokenize(text[start:end])]

    def droppable(tok: Token, closing_ok: bool) -> bool:
        if tok.text.lower() in boundary_words and not tok.text.isupper():
            return True
        return not tok.text.isalnum() and not (closing_ok and tok.text == ")")

    changed = True
    while tokens and changed:
        changed = False
        stack: list[int] = []
        for k, tok in enumerate(tokens):
            if tok.text == "(":
                stack.append(k)
            elif tok.text == ")" and stack:
                stack.pop()
            elif tok.text == ")":
                # its opening bracket lies before the span: the name ended before it
                tokens, stack, changed = tokens[:k], [], True
                break
        if stack:
            tokens, changed = tokens[: stack[0]], True
        if tokens and droppable(tokens[0], closing_ok=False):
            tokens, changed = tokens[1:], True
        if tokens and droppable(tokens[-1], closing_ok=True):
            tokens, changed = tokens[:-1], True
    if not tokens:
        return None
    return tokens[0].start, tokens[-1].end


def gene_short_forms(tokens: Sequence[Token], gene_words: frozenset[str], max_len: int) -> set[str]:
    """Short forms a record defines for a gene or its product, which are not disease mentions there.

    Two shapes: "tumor suppressor gene (VHL)" and "LPP (lipoma preferred partner gene)". The
    corpus annotates the disease ("von Hippel-Lindau disease"), never the gene symbol defined this way.
    """
    found: set[str] = set()
    for i in range(1, len(tokens) - 2):
        if tokens[i].text != "(":
            continue
        sf = tokens[i + 1].text
        if tokens[i - 1].text.lower() in gene_words and tokens[i + 2].text == ")" and 2 <= len(sf) <= max_len:
            found.add(sf)
            continue
        inner = tokens[i + 1 :]
        for k, tok in enumerate(inner[:12]):
            if tok.text == ")":
                prev = tokens[i - 1].text
                named_gene = k > 0 and inner[k - 1].text.lower() in gene_words
                if named_gene and 2 <= len(prev) <= max_len and any(c.isupper() for c in prev):
                    found.add(prev)
                break
            if tok.text == "(":
                break
    return found


def propagate(text: str, spans: set[tuple[int, int]], min_length: int = 3) -> set[tuple[int, int]]:
    """Tag every other whole-word, same-case occurrence of a found mention string in the record.

    A record names its disease consistently: once "Krabbe disease" or "AO2" is a mention, its
    repeats are too, even where the classifier's context was weaker.
    """
    out = set(spans)
    taken = sorted(spans)
    for surface in sorted({text[s:e] for s, e in spans}, key=len, reverse=True):
        if len(surface) < min_length:
            continue
        for m in re.finditer(re.escape(surface), text):
            span = (m.start(), m.end())
            before = text[span[0] - 1] if span[0] else " "
            after = text[span[1]] if span[1] < len(text) else " "
            if before.isalnum() or after.isalnum() or before == "-" or after == "-":
                continue
            if span not in out and not _overlaps(span, taken):
                out.add(span)
                taken.append(span)
    return out


class EnsembleRecognizer:
    """Classifier spans, extended by abbreviation definitions, in-record propagation and the lexicon.

    ``lexicon_fill`` adds dictionary spans that overlap no classifier span; ``lexicon_first`` turns
    this round: dictionary spans win and classifier spans fill the gaps between them.
    """

    def __init__(
        self,
        tagger: DiseaseTagger,
        lexicon: LexiconRecognizer,
        abbreviations: bool = True,
        propagation: bool = True,
        lexicon_fill: bool = False,
        lexicon_first: bool = False,
        trim: bool = False,
        gene_filter: bool = False,
    ):
        self.tagger = tagger
        self.lexicon = lexicon
        self.abbreviations = abbreviations
        self.propagation = propagation
        self.lexicon_fill = lexicon_fill
        self.lexicon_first = lexicon_first
        self.trim = trim
        self.gene_filter = gene_filter

    def combine(self, doc: PubtatorDoc, model_doc: PubtatorDoc) -> PubtatorDoc:
        """Merge the classifier's mentions of one record with the rule-based additions."""
        text = doc.text
        spans = {(m.start, m.end) for m in model_doc.mentions}
        rules = self.lexicon.rules
        if self.gene_filter:
            genes = gene_short_forms(tokenize(text), rules.gene_words, rules.abbreviation_max_length)
            spans = {s for s in spans if text[s[0] : s[1]] not in genes}
        if self.trim:
            trimmed = (trim_span(text, s, rules.boundary_words) for s in spans)
            spans = {s for s in trimmed if s is not None}
        if self.lexicon_first:
            lexical = self.lexicon.spans(text)
            spans = set(lexical) | {s for s in spans if not _overlaps(s, lexical)}
        elif self.lexicon_fill:
            base = sorted(spans)
            spans |= {s for s in self.lexicon.spans(text) if not _overlaps(s, base)}
        if self.abbreviations:
            found = abbreviation_spans(text, tokenize(text), spans, self.lexicon.rules.abbreviation_max_length)
            spans |= {s for s in found if not _overlaps(s, sorted(spans - {s}))}
        if self.propagation:
            spans = propagate(text, spans)
        return doc.with_mentions(Mention(s, e, text[s:e]) for s, e in spans)

    def recognise(self, docs: Sequence[PubtatorDoc]) -> list[PubtatorDoc]:
        """Records with their mentions replaced by the combined spans."""
        model_docs = self.tagger.recognise(docs)
        return [self.combine(d, md) for d, md in zip(docs, model_docs, strict=True)]
