"""From case findings to a literature query; German clinical terms normalised to English.

The evidence cards are written in English, so a German case is searched with English terms
produced by the vocabulary in ``knowledge/literature/de_en.yaml``. Site, stage, biomarkers,
setting, fitness and histology become query text; the site becomes a hard filter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from oncoboard.domain import Findings, Site, Tumor
from oncoboard.knowledge import load_table

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_WORD = re.compile(r"[\w][\w./+-]*[\w+]|[\w]", re.UNICODE)
_MIN_COMPOUND_PART = 5


class LiteratureQuery(BaseModel):
    """What to search the evidence for: free text plus metadata filters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(description="Query text, e.g. 'EGFR exon 19 deletion metastatic lung adenocarcinoma'.")
    site: Site | None = Field(default=None, description="Tumour site; when given, only that site's evidence.")
    language: Literal["en", "de"] = Field(default="en", description="Language of `text`; German is normalised.")
    biomarkers: tuple[str, ...] = Field(default=(), description="Biomarkers of the case (informational).")
    settings: tuple[str, ...] = Field(default=(), description="Hard filter on treatment settings (any of).")
    min_year: int | None = Field(default=None, description="Hard filter: published in or after this year.")
    levels: tuple[str, ...] = Field(default=(), description="Hard filter on evidence levels (any of).")

    def english_text(self) -> str:
        """The query text in English (German normalised by the vocabulary table)."""
        return normalise_german(self.text) if self.language == "de" else self.text


def _fold(text: str) -> str:
    return text.lower().translate(_FOLD)


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[list[tuple[re.Pattern[str], str]], dict[str, str]]:
    """Multi-word phrase patterns (longest first) and the single-word table, both folded."""
    terms = {_fold(str(k)): str(v) for k, v in load_table("literature/de_en.yaml")["terms"].items()}
    phrases = sorted((k for k in terms if " " in k), key=len, reverse=True)
    # A phrase may carry a German inflection ending on its last word (lokal fortgeschrittenes).
    patterns = [(re.compile(rf"(?<![\w-]){re.escape(p)}(?:es|er|en|em|e)?(?![\w-])"), terms[p]) for p in phrases]
    words = {k: v for k, v in terms.items() if " " not in k}
    return patterns, words


def _split_compound(word: str, words: dict[str, str]) -> list[str] | None:
    """Cover a German compound completely with known parts (longest parts first), else None."""
    if not word:
        return []
    for end in range(len(word), _MIN_COMPOUND_PART - 1, -1):
        head = word[:end]
        if head in words and len(head) >= _MIN_COMPOUND_PART:
            rest = word[end:]
            # German joins compound parts with a linking -s- or -n- now and then.
            for tail in (rest, rest[1:] if rest[:1] in {"s", "n", "-"} else None):
                if tail is None:
                    continue
                split = _split_compound(tail, words)
                if split is not None:
                    return [words[head], *split]
    return None


# German adjective and noun endings tried when the inflected form is not in the table
# (metastasiertes -> metastasiert, HER2-positives -> her2-positiv, postmenopausale -> postmenopausal).
_ENDINGS = ("es", "er", "en", "em", "e", "s", "n")


def _inflected(word: str, words: dict[str, str]) -> str | None:
    """The table entry for ``word`` or for it without a German inflection ending."""
    if word in words:
        return word
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 4 and word[: -len(ending)] in words:
            return word[: -len(ending)]
    return None


def _translate_word(word: str, words: dict[str, str]) -> str | None:
    """A word as an inflected entry, a compound of entries, or hyphen-joined parts (BRCA-Keimbahnmutation)."""
    stem = _inflected(word, words)
    if stem is not None:
        return words[stem]
    if len(word) > _MIN_COMPOUND_PART:
        for candidate in (word, *(word[: -len(e)] for e in _ENDINGS if word.endswith(e))):
            parts = _split_compound(candidate, words)
            if parts:
                return " ".join(parts)
    if "-" in word:
        pieces = [p for p in word.split("-") if p]
        translated = [_translate_word(p, words) for p in pieces]
        if any(translated):
            return " ".join(t if t is not None else p for p, t in zip(pieces, translated, strict=True))
    return None


def normalise_german(text: str) -> str:
    """Translate German oncology terms to English; words the table does not know are kept."""
    patterns, words = _vocabulary()
    folded = _fold(text)
    for pattern, english in patterns:
        folded = pattern.sub(f" {english} ", folded)
    out: list[str] = []
    for token in folded.split():
        match = _WORD.search(token)
        core = match.group(0) if match else token
        translated = _translate_word(core, words)
        out.append(token if translated is None else translated)
    return re.sub(r"\s+", " ", " ".join(p for p in out if p)).strip()


# --------------------------------------------------------------------------- findings -> query


def _stage_numeral(stage_group: str | None) -> str | None:
    if not stage_group:
        return None
    match = re.match(r"(IV|III|II|I|0)", stage_group.upper())
    return match.group(1) if match else None


def _setting_keys(findings: Findings, tumor: Tumor | None, site: str | None) -> list[str]:
    """Which setting phrases apply: metastatic disease first, then post-surgical states, then stage."""
    table = load_table("literature/query_terms.yaml")
    conditions = set(findings.conditions)
    keys: list[str] = []
    numeral = _stage_numeral(tumor.tnm.stage_group) if tumor else None
    m_category = (tumor.tnm.m or "") if tumor else ""
    finding_mets = any(t.metastases and not t.metastases_negated for t in findings.tumors)
    metastatic = "metastatic" in conditions or m_category.startswith("M1") or numeral == "IV" or finding_mets
    if metastatic:
        if site == "prostate":
            psa_rising_on_adt = "castration_resistant" in (findings.setting_hint or "")
            keys.append("castration_resistant" if psa_rising_on_adt else "hormone_sensitive")
        keys.append("metastatic")
    elif "post_neoadjuvant" in conditions or (tumor and tumor.tnm.prefix == "yp"):
        keys.append("post_neoadjuvant")
    elif "resected" in conditions or (tumor and tumor.tnm.prefix == "p"):
        keys.append("resected")
    elif numeral in set(table["locally_advanced_stage"].get(site or "", [])):
        keys.append("locally_advanced")
    elif numeral in {"I", "II", "III"}:
        keys.append("early")
    if "recurrent" in conditions:
        keys.append("recurrent")
    return keys


def query_from_findings(findings: Findings, tumors: Sequence[Tumor]) -> LiteratureQuery:
    """Build the literature query of a case from the extractor's findings and the staged tumours.

    The primary tumour's site is the filter; histology, stage, biomarkers (positive ones by
    result, negative ones where the negative result itself selects the evidence), setting and
    fitness become English query text.
    """
    table = load_table("literature/query_terms.yaml")
    tumor = next((t for t in tumors if t.primary), tumors[0] if tumors else None)
    finding = next((t for t in findings.tumors if t.primary), findings.tumors[0] if findings.tumors else None)
    site = tumor.site if tumor else (finding.site if finding else None)
    histology = (tumor.histology if tumor else None) or (finding.histology if finding else None)
    parts: list[str] = []
    if histology:
        parts.append(histology)
    if site:
        parts.append(str(table["site_terms"].get(site, "")))
    if tumor and tumor.tnm.stage_group:
        parts.append(f"stage {tumor.tnm.stage_group}")
    for key in _setting_keys(findings, tumor, site):
        parts.append(str(table["setting_terms"][key]))
    if findings.setting_hint:
        parts.append(findings.setting_hint.replace("_", " "))
    negatives_matter = {b.upper() for b in table["negative_biomarkers_matter"]}
    markers: list[str] = []
    for marker in findings.biomarkers:
        if marker.status == "positive":
            markers.append(marker.name)
            result = marker.result if marker.result.lower() not in {"positive", "positiv", "+"} else ""
            parts.append(f"{marker.name} {result} positive".replace("  ", " ").strip())
        elif marker.status == "negative" and marker.name.upper() in negatives_matter:
            parts.append(f"{marker.name} negative")
    if findings.ecog is not None:
        parts.append(str(table["fitness_terms"]["unfit" if findings.ecog >= 2 else "fit"]))
    elif findings.age is not None and findings.age >= 75:
        parts.append(str(table["fitness_terms"]["unfit"]))
    text = normalise_german(" ".join(p for p in parts if p))
    return LiteratureQuery(text=text, site=site, language="en", biomarkers=tuple(markers))
