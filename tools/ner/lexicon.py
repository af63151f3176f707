"""Dictionary and rule based disease-mention recognition.

A lexicon of mention strings learnt from training annotations (each with how often the string was
annotated versus seen), longest match over word tokens, then word-formation rules (disease suffixes,
"X syndrome"/"X disease"/"X deficiency" heads) and abbreviation definitions ``long form (SF)``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oncoboard.knowledge import knowledge_path, load_jsonl, load_table
from tools.ner.pubtator import Mention, PubtatorDoc, Token, tokenize

logger = logging.getLogger(__name__)

LEXICON_TABLE = "ner/disease_lexicon.jsonl"
RULES_TABLE = "ner/rules.yaml"
Key = tuple[str, ...]


def term_key(tokens: Sequence[Token] | Sequence[str]) -> Key:
    """Match key of a token sequence: lower-cased, except short all-capital abbreviations.

    Abbreviations keep their case because "CHD" (a disease) and "chd" or "Chd" (often a gene or
    a word) are different things in biomedical text.
    """
    words = [t.text if isinstance(t, Token) else t for t in tokens]
    return tuple(w if (w.isupper() and len(w) <= 6) else w.lower() for w in words)


@dataclass(frozen=True)
class Rules:
    """Word-formation rules loaded from ``knowledge/ner/rules.yaml``."""

    disease_suffixes: tuple[str, ...]
    head_nouns: frozenset[str]
    head_needs_modifier: frozenset[str]
    stop_modifiers: frozenset[str]
    abbreviation_max_length: int
    suffix_min_length: int
    modifier_suffixes: tuple[str, ...] = ()
    boundary_words: frozenset[str] = frozenset()
    gene_words: frozenset[str] = frozenset()

    @classmethod
    def from_table(cls, table: dict[str, Any] | None = None) -> Rules:
        """Build from the shipped table (or a given mapping of the same shape)."""
        t = table if table is not None else load_table(RULES_TABLE)
        return cls(
            disease_suffixes=tuple(sorted(t["disease_suffixes"], key=len, reverse=True)),
            head_nouns=frozenset(t["head_nouns"]),
            head_needs_modifier=frozenset(t["head_needs_modifier"]),
            stop_modifiers=frozenset(t["stop_modifiers"]),
            abbreviation_max_length=int(t["abbreviation_max_length"]),
            suffix_min_length=int(t["suffix_min_length"]),
            modifier_suffixes=tuple(t.get("modifier_suffixes", ())),
            boundary_words=frozenset(t.get("boundary_words", ())),
            gene_words=frozenset(t.get("gene_words", ())),
        )


@dataclass
class Lexicon:
    """Mention strings with training counts, plus the modifier words seen inside longer mentions."""

    annotated: dict[Key, int]
    seen: dict[Key, int]
    modifiers: dict[str, int] = field(default_factory=dict)

    def terms(self, min_precision: float, min_annotated: int = 1) -> set[Key]:
        """Keys whose training precision (annotated / seen as a longest match) reaches the threshold."""
        return {
            k
            for k, a in self.annotated.items()
            if a >= min_annotated and a / max(self.seen.get(k, a), a) >= min_precision
        }

    @classmethod
    def build(cls, docs: Iterable[PubtatorDoc]) -> Lexicon:
        """Learn terms from annotations and count how often each is found by longest match."""
        docs = list(docs)
        annotated: Counter[Key] = Counter()
        modifiers: Counter[str] = Counter()
        for doc in docs:
            for m in doc.mentions:
                toks = tokenize(doc.text[m.start : m.end])
                if toks:
                    annotated[term_key(toks)] += 1
                    for t in toks[:-1]:
                        if t.text.isalnum():
                            modifiers[t.text.lower()] += 1
        seen: Counter[Key] = Counter()
        matcher = _Matcher(set(annotated))
        for doc in docs:
            for i, j in matcher.find(tokenize(doc.text)):
                seen[term_key(tokenize(doc.text)[i:j])] += 1
        return cls(dict(annotated), dict(seen), dict(modifiers))

    def save(self, path: Path, source: str, edition: str) -> None:
        """Write as JSONL: a header line, then one row per term and per modifier word."""
        rows: list[dict[str, Any]] = [{"source": source, "edition": edition}]
        for k in sorted(self.annotated):
            rows.append(
                {"kind": "term", "tokens": list(k), "annotated": self.annotated[k], "seen": self.seen.get(k, 0)}
            )
        for w in sorted(self.modifiers):
            rows.append({"kind": "modifier", "word": w, "count": self.modifiers[w]})
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]]) -> Lexicon:
        """Rebuild from table rows (as returned by ``load_jsonl``)."""
        annotated: dict[Key, int] = {}
        seen: dict[Key, int] = {}
        modifiers: dict[str, int] = {}
        for r in rows:
            if r["kind"] == "term":
                key = tuple(r["tokens"])
                annotated[key], seen[key] = int(r["annotated"]), int(r["seen"])
            elif r["kind"] == "modifier":
                modifiers[r["word"]] = int(r["count"])
        return cls(annotated, seen, modifiers)

    @classmethod
    def from_table(cls, relative: str = LEXICON_TABLE) -> Lexicon:
        """Load the shipped lexicon table from ``knowledge/``."""
        return cls.from_rows(load_jsonl(relative))


class _Matcher:
    """Longest match of token-sequence keys over a token list."""

    def __init__(self, keys: set[Key]):
        self.keys = keys
        self.max_len = max((len(k) for k in keys), default=0)

    def find(self, tokens: Sequence[Token]) -> list[tuple[int, int]]:
        keys = [term_key([t])[0] for t in tokens]
        out: list[tuple[int, int]] = []
        i = 0
        while i < len(tokens):
            for n in range(min(self.max_len, len(tokens) - i), 0, -1):
                if tuple(keys[i : i + n]) in self.keys and _joined(tokens, i, i + n):
                    out.append((i, i + n))
                    i += n
                    break
            else:
                i += 1
        return out


def _joined(tokens: Sequence[Token], i: int, j: int) -> bool:
    """A match must not cut a word glued to its neighbours ("HPRT-deficient" is not "HPRT")."""
    left_ok = i == 0 or tokens[i - 1].end < tokens[i].start or _free(tokens[i - 1].text)
    right_ok = j >= len(tokens) or tokens[j].start > tokens[j - 1].end or _free(tokens[j].text)
    return left_ok and right_ok


def _free(neighbour: str) -> bool:
    """A glued neighbour that is punctuation other than a hyphen leaves the word boundary intact."""
    return not neighbour.isalnum() and neighbour != "-"


class LexiconRecognizer:
    """Lexicon longest match plus rules; the thresholds were tuned on the NCBI dev split."""

    def __init__(
        self,
        lexicon: Lexicon,
        rules: Rules,
        min_precision: float = 0.4,
        min_modifier_count: int = 2,
        use_rules: bool = True,
        use_abbreviations: bool = True,
    ):
        self.lexicon = lexicon
        self.rules = rules
        self.matcher = _Matcher(lexicon.terms(min_precision))
        self.modifiers = {w for w, c in lexicon.modifiers.items() if c >= min_modifier_count} - rules.stop_modifiers
        self.use_rules = use_rules
        self.use_abbreviations = use_abbreviations

    @classmethod
    def from_knowledge(cls, **kwargs: Any) -> LexiconRecognizer:
        """The recogniser over the shipped lexicon and rules tables."""
        return cls(Lexicon.from_table(), Rules.from_table(), **kwargs)

    def _rule_spans(self, tokens: Sequence[Token], taken: list[bool]) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        r = self.rules
        for i, tok in enumerate(tokens):
            if taken[i]:
                continue
            low = tok.text.lower()
            is_head = low in r.head_nouns
            is_suffix = len(low) >= r.suffix_min_length and low.isalpha() and low.endswith(r.disease_suffixes)
            if not (is_head or is_suffix):
                continue
            start = i
            while start > 0 and not taken[start - 1] and self._modifier(tokens, start - 1):
                start -= 1
            if is_head and start == i and low in r.head_needs_modifier:
                continue
            # a bare generic head ("cancer") only counts when training data used it alone
            bare = is_head and not is_suffix and start == i and low not in self.modifiers
            if bare and (low,) not in self.matcher.keys:
                continue
            spans.append((start, i + 1))
        return spans

    def _extend_left(self, tokens: Sequence[Token], i: int, j: int, taken: list[bool]) -> tuple[int, int]:
        """Grow a dictionary match ending in a disease head leftwards over modifiers ("colorectal cancers")."""
        low = tokens[j - 1].text.lower()
        r = self.rules
        if not (low in r.head_nouns or (len(low) >= r.suffix_min_length and low.endswith(r.disease_suffixes))):
            return i, j
        start = i
        while start > 0 and not taken[start - 1] and self._modifier(tokens, start - 1):
            start -= 1
            taken[start] = True
        return start, j

    def _modifier(self, tokens: Sequence[Token], k: int) -> bool:
        tok = tokens[k]
        low = tok.text.lower()
        if low in self.rules.stop_modifiers:
            return False
        if tok.text == "-":
            return k > 0 and tokens[k - 1].end == tok.start and tokens[k + 1].start == tok.end
        if low in self.modifiers:
            return True
        if len(low) >= 6 and low.isalpha() and low.endswith(self.rules.modifier_suffixes):
            return True
        # Eponyms and gene symbols name diseases and deficiencies: "Krabbe disease", "C7 deficiency".
        return (
            tok.text[:1].isupper()
            and k > 0
            and tokens[k - 1].text not in {".", "(", ":"}
            or (any(c.isdigit() for c in tok.text) and any(c.isupper() for c in tok.text))
        )

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of disease mentions in ``text``."""
        tokens = tokenize(text)
        found = self.matcher.find(tokens)
        taken = [False] * len(tokens)
        for i, j in found:
            for k in range(i, j):
                taken[k] = True
        if self.use_rules:
            found = [self._extend_left(tokens, i, j, taken) for i, j in found]
            for i, j in self._rule_spans(tokens, taken):
                found.append((i, j))
                for k in range(i, j):
                    taken[k] = True
        char_spans = {(tokens[i].start, tokens[j - 1].end) for i, j in found}
        if self.use_abbreviations:
            char_spans |= abbreviation_spans(text, tokens, char_spans, self.rules.abbreviation_max_length)
        return sorted(char_spans)

    def recognise(self, docs: Sequence[PubtatorDoc]) -> list[PubtatorDoc]:
        """Records with their mentions replaced by the recogniser's spans."""
        return [d.with_mentions(Mention(s, e, d.text[s:e]) for s, e in self.spans(d.text)) for d in docs]


def abbreviation_spans(
    text: str, tokens: Sequence[Token], spans: set[tuple[int, int]], max_len: int
) -> set[tuple[int, int]]:
    """Short forms defined as ``long form (SF)`` after a found mention, and every later use of them.

    A short form is accepted when its first letter starts a word of the long form, the usual test
    for an abbreviation definition. The bracket may go on after the short form with a synonym
    ("Schwartz-Jampel syndrome (SJS; chondrodystrophic myotonia)").
    """
    by_end = {e: s for s, e in spans}
    short_forms: set[str] = set()
    for i in range(1, len(tokens) - 2):
        if tokens[i].text != "(" or tokens[i + 2].text not in {")", ";", ","}:
            continue
        sf = tokens[i + 1].text
        long_start = by_end.get(tokens[i - 1].end)
        if long_start is None or not (2 <= len(sf) <= max_len) or not any(c.isupper() for c in sf):
            continue
        initials = {w[0].lower() for w in text[long_start : tokens[i - 1].end].split() if w}
        if sf[0].lower() in initials:
            short_forms.add(sf)
    out: set[tuple[int, int]] = set()
    for k, tok in enumerate(tokens):
        if tok.text in short_forms and _joined(tokens, k, k + 1):
            out.add((tok.start, tok.end))
    return out


def build_table(train_paths: Sequence[str], out: Path | None = None) -> Path:
    """Build the lexicon table from training PubTator files (``PATH`` or ``PATH:Type,...``)."""
    from tools.ner.pubtator import read_pubtator

    docs: list[PubtatorDoc] = []
    for spec in train_paths:
        path, _, types = spec.partition(":")
        docs.extend(read_pubtator(path, types.split(",") if types else None))
    lexicon = Lexicon.build(docs)
    target = out or knowledge_path(LEXICON_TABLE)
    names = ", ".join(Path(s.partition(":")[0]).parent.name + "/" + Path(s.partition(":")[0]).name for s in train_paths)
    lexicon.save(
        target,
        source=f"disease mention strings and counts derived from the training splits: {names} "
        "(NCBI Disease corpus and BioCreative V CDR, public domain)",
        edition="2026-11",
    )
    logger.info("wrote %d terms to %s", len(lexicon.annotated), target)
    return target
