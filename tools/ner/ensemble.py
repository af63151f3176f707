"""Combining the token classifier with the lexicon's abbreviation and consistency rules."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from tools.ner.lexicon import LexiconRecognizer, abbreviation_spans
from tools.ner.model import DiseaseTagger
from tools.ner.pubtator import Mention, PubtatorDoc, tokenize

logger = logging.getLogger(__name__)


def _overlaps(span: tuple[int, int], others: Sequence[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in others)


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
    ):
        self.tagger = tagger
        self.lexicon = lexicon
        self.abbreviations = abbreviations
        self.propagation = propagation
        self.lexicon_fill = lexicon_fill
        self.lexicon_first = lexicon_first

    def combine(self, doc: PubtatorDoc, model_doc: PubtatorDoc) -> PubtatorDoc:
        """Merge the classifier's mentions of one record with the rule-based additions."""
        text = doc.text
        spans = {(m.start, m.end) for m in model_doc.mentions}
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
