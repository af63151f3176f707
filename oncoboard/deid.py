"""De-identification of English and German clinical text.

Protected health information (PHI) is found by cue words and patterns loaded from ``knowledge/deid/``
(honorifics, titles, record-number labels, month names, institution words, street suffixes, given names),
never by a list of the patients themselves. Each finding becomes a :class:`PhiSpan` with offsets into the
input, and the text is rewritten with pseudonyms that stay consistent within a document and, when the same
:class:`Pseudonymizer` is reused, across the documents of one case.

Replacement design:

* Names, identifiers, contacts, addresses, institutions and places become numbered tags
  (``[NAME-1]``, ``[ID-2]``): a tag cannot be mistaken for a real person or number, and the same surface
  always gets the same tag, so "Frau Muster" and "Anna Muster" still read as one person.
* Dates are shifted by a whole number of days derived from the pseudonymizer's secret key and written back
  in the format they came in. Intervals between dates (time to progression, cycles, age at diagnosis) stay
  exact, which matters clinically; the shift is deterministic per key so a stored case can be re-read
  consistently. Dates that cannot be read unambiguously become ``[DATE-n]``; ``date_mode="tag"`` tags all.
* Ages over 89 become ``90+`` (HIPAA Safe Harbor aggregates them); younger ages are clinical data and kept.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from oncoboard.knowledge import KnowledgeError, load_table

logger = logging.getLogger(__name__)

PhiKind = Literal["name", "date", "age", "id", "phone", "email", "address", "institution", "location", "url"]
DateMode = Literal["shift", "tag"]

PHI_KINDS: tuple[str, ...] = (
    "name",
    "date",
    "age",
    "id",
    "phone",
    "email",
    "address",
    "institution",
    "location",
    "url",
)

# When two findings overlap, the more specific pattern wins (an e-mail address contains a name-like part,
# a street line may contain a date-like number).
_PRIORITY: dict[str, int] = {
    "email": 100,
    "url": 95,
    "id": 90,
    "phone": 85,
    "date": 80,
    "age": 75,
    "address": 70,
    "institution": 60,
    "name": 50,
    "location": 40,
}


class PhiSpan(BaseModel):
    """One piece of protected health information found in the input text."""

    model_config = ConfigDict(frozen=True)

    start: int = Field(description="Offset of the first character in the input text.")
    end: int = Field(description="Offset after the last character in the input text.")
    kind: PhiKind = Field(description="What kind of PHI the span is.")
    surface: str = Field(description="The original string, input[start:end].")
    replacement: str = Field(description="What the pseudonymised text carries instead.")


class DeidResult(BaseModel):
    """The pseudonymised text and the spans that were replaced (offsets into the input)."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="The pseudonymised text.")
    spans: list[PhiSpan] = Field(default_factory=list, description="Replaced spans, ordered by start.")
    language: Literal["en", "de"] = Field(description="Language the text was treated as.")


# --------------------------------------------------------------------------------------------------------
# Lexicon
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeidLexicon:
    """Cue words and word lists from ``knowledge/deid/``; built once and shared read-only."""

    honorifics: tuple[str, ...]
    colleague_words: tuple[str, ...]
    salutations: tuple[str, ...]
    titles: tuple[str, ...]
    plural_titles: frozenset[str]
    postnominals: tuple[str, ...]
    roles: tuple[str, ...]
    patient_cues: tuple[str, ...]
    label_cues: tuple[str, ...]
    relative_cues: tuple[str, ...]
    closings: tuple[str, ...]
    id_cues: tuple[str, ...]
    patient_id_cues: tuple[str, ...]
    public_id_prefixes: tuple[str, ...]
    ward_cues: tuple[str, ...]
    phone_cues: tuple[str, ...]
    age_cues: tuple[str, ...]
    edition_cues: tuple[str, ...]
    eponym_followers: tuple[str, ...]
    date_cues: tuple[str, ...]
    birth_cues: tuple[str, ...]
    place_prepositions: tuple[str, ...]
    units: tuple[str, ...]
    months: dict[int, dict[str, str]]
    month_lookup: dict[str, int]
    first_names: frozenset[str]
    stopwords: frozenset[str]
    institution_stems: tuple[str, ...]
    institution_heads_en: tuple[str, ...]
    generic_unit_words: frozenset[str]
    street_suffixes: tuple[str, ...]
    street_words: tuple[str, ...]
    address_cues: tuple[str, ...]
    cities: tuple[str, ...]
    ambiguous_cities: tuple[str, ...]


def _strs(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = table.get(key) or []
    for value in values:
        # YAML reads a bare No/On/Yes as a boolean; such an entry must be quoted to mean the word.
        if not isinstance(value, str):
            raise KnowledgeError(f"deid lexicon '{key}': {value!r} is not a string; quote it in the YAML file")
    return tuple(values)


@lru_cache(maxsize=1)
def load_lexicon() -> DeidLexicon:
    """Load the de-identification lexicon from ``knowledge/deid/`` (cached)."""
    cues = load_table("deid/cues.yaml")
    months_table = load_table("deid/months.yaml")
    places = load_table("deid/places.yaml")
    first = load_table("deid/first_names.yaml")
    stop = load_table("deid/stopwords.yaml")
    months: dict[int, dict[str, str]] = {}
    lookup: dict[str, int] = {}
    for number, spellings in months_table["months"].items():
        month = int(number)
        columns = {k: str(v) for k, v in spellings.items() if k != "other"}
        months[month] = columns
        for spelling in [*columns.values(), *(str(o) for o in spellings.get("other") or [])]:
            lookup[spelling.lower()] = month
    return DeidLexicon(
        honorifics=_strs(cues, "honorifics"),
        colleague_words=_strs(cues, "colleague_words"),
        salutations=_strs(cues, "salutations"),
        titles=_strs(cues, "titles"),
        plural_titles=frozenset(_strs(cues, "plural_titles")),
        postnominals=_strs(cues, "postnominals"),
        roles=_strs(cues, "roles"),
        patient_cues=_strs(cues, "patient_cues"),
        label_cues=_strs(cues, "label_cues"),
        relative_cues=_strs(cues, "relative_cues"),
        closings=_strs(cues, "closings"),
        id_cues=_strs(cues, "id_cues"),
        patient_id_cues=_strs(cues, "patient_id_cues"),
        public_id_prefixes=_strs(cues, "public_id_prefixes"),
        ward_cues=_strs(cues, "ward_cues"),
        phone_cues=_strs(cues, "phone_cues"),
        age_cues=_strs(cues, "age_cues"),
        edition_cues=_strs(cues, "edition_cues"),
        eponym_followers=_strs(places, "eponym_followers"),
        date_cues=_strs(cues, "date_cues"),
        birth_cues=_strs(cues, "birth_cues"),
        place_prepositions=_strs(cues, "place_prepositions"),
        units=_strs(cues, "units"),
        months=months,
        month_lookup=lookup,
        first_names=frozenset(_strs(first, "names")),
        stopwords=frozenset(_strs(stop, "words")),
        institution_stems=_strs(places, "institution_stems_de"),
        institution_heads_en=_strs(places, "institution_heads_en"),
        generic_unit_words=frozenset(_strs(places, "generic_unit_words")),
        street_suffixes=_strs(places, "street_suffixes_de"),
        street_words=(*_strs(places, "street_words_de"), *_strs(places, "street_words_en")),
        address_cues=_strs(places, "address_cues"),
        cities=_strs(places, "cities"),
        ambiguous_cities=_strs(places, "ambiguous_cities"),
    )


def _alt(words: Iterable[str]) -> str:
    """Regex alternation of literal words, longest first so that "Dr. med." beats "Dr."."""
    unique = sorted({w for w in words if w}, key=len, reverse=True)
    return "|".join(re.escape(w) for w in unique)


# Letters without digits or underscore; a name word may be hyphenated or carry an apostrophe.
_L = r"[^\W\d_]"
_WORD = rf"{_L}+(?:[-'’]{_L}+)*"
_NOUN_SUFFIXES = (
    "ung",
    "heit",
    "keit",
    "tion",
    "ität",
    "schaft",
    "ismus",
    "itis",
    "ektomie",
    "ose",
    "logie",
    "graphie",
    "grafie",
    "skopie",
    "therapie",
    "diagnostik",
    "befund",
    "untersuchung",
    "anamnese",
    "ierung",
    "ment",
    "ness",
    "ology",
    "arzt",
    "ärztin",
    "direktor",
    "direktorin",
    "leiter",
    "leiterin",
    "pflege",
    "ologist",
)
# Department names ("Ophthalmology Clinic", "Plastic Surgery") are generic, not a named institution.
_DEPARTMENT_SUFFIXES = (
    "ology",
    "iatry",
    "iatrics",
    "ics",
    "ery",
    "ative",
    "ical",
    "ologist",
    "care",
    "ition",
    "ial",
)


@dataclass(frozen=True)
class _Patterns:
    """Regular expressions compiled from the lexicon."""

    title: re.Pattern[str]
    word: re.Pattern[str]
    honorific: re.Pattern[str]
    patient: re.Pattern[str]
    label: re.Pattern[str]
    relative: re.Pattern[str]
    salutation: re.Pattern[str]
    role: re.Pattern[str]
    closing: re.Pattern[str]
    title_start: re.Pattern[str]
    colleague: re.Pattern[str]
    postnominal: re.Pattern[str]
    first_name: re.Pattern[str]
    birth: re.Pattern[str]
    header_dob: re.Pattern[str]
    id_cue: re.Pattern[str]
    ward: re.Pattern[str]
    phone_cue: re.Pattern[str]
    phone_generic: re.Pattern[str]
    phone_us: re.Pattern[str]
    email: re.Pattern[str]
    url: re.Pattern[str]
    long_number: re.Pattern[str]
    alnum_id: re.Pattern[str]
    date_iso: re.Pattern[str]
    date_dotted: re.Pattern[str]
    date_slashed: re.Pattern[str]
    date_month_year_num: re.Pattern[str]
    date_day_month_name: re.Pattern[str]
    date_month_name_day: re.Pattern[str]
    date_month_name_year: re.Pattern[str]
    date_short: re.Pattern[str]
    date_short_range: re.Pattern[str]
    date_day_range: re.Pattern[str]
    date_year: re.Pattern[str]
    unit_after: re.Pattern[str]
    age_suffix: re.Pattern[str]
    age_cue: re.Pattern[str]
    street_de: re.Pattern[str]
    street_words: re.Pattern[str]
    street_en: re.Pattern[str]
    zip_city: re.Pattern[str]
    us_city_state: re.Pattern[str]
    institution_de: re.Pattern[str]
    institution_en: re.Pattern[str]
    city: re.Pattern[str]
    ambiguous_city: re.Pattern[str]
    address_cue_before: re.Pattern[str]
    lymph_after: re.Pattern[str]
    node_before: re.Pattern[str]
    ratio_context: re.Pattern[str]
    date_cue_before: re.Pattern[str]
    edition_before: re.Pattern[str]
    edition_after: re.Pattern[str]
    eponym_after: re.Pattern[str]


@lru_cache(maxsize=1)
def _patterns() -> _Patterns:
    lex = load_lexicon()
    # Month names are matched with a capital letter only ("may" is a verb, "May" and "Mai" are months).
    month_cap = _alt(s[0].upper() + s[1:] for s in lex.month_lookup if s and s[0].isalpha())
    units = [u for u in lex.units if u]
    word_units = _alt(u for u in units if len(u) > 1 and u[0].isalpha())
    short_units = _alt(u for u in units if len(u) == 1 and u[0].isalpha())
    symbol_units = _alt(u for u in units if not u[0].isalpha())
    unit_after = re.compile(
        rf"\s*(?:(?:{word_units})|(?:{short_units})(?!{_L})|(?:{symbol_units})|[.,]\d|-?\s?(?:{_L}*jähr|year))"
    )
    short_id_cues = [c for c in lex.id_cues if len(c) <= 4 and c.isupper()]
    long_id_cues = [c for c in lex.id_cues if c not in short_id_cues]
    id_value = r"(?:[A-Z]{0,4}[-/]?)?\d[\dA-Za-z]*(?:[-/.][\dA-Za-z]+)*(?:[ ]\d{2,}){0,3}"
    institution_stems = _alt(lex.institution_stems)
    cap = r"(?:[A-ZÄÖÜ][^\W\d_]*(?:[-'’][^\W\d_]+)*\.?)"
    return _Patterns(
        title=re.compile(rf"(?:{_alt(lex.titles)})(?!{_L})"),
        word=re.compile(_WORD),
        honorific=re.compile(rf"(?<!{_L})(?:{_alt(lex.honorifics)})(?!{_L})"),
        patient=re.compile(rf"(?<!{_L})(?:{_alt(lex.patient_cues)})(?!{_L})(?P<colon>[ \t]*:)?"),
        label=re.compile(rf"(?<!{_L})(?:{_alt(lex.label_cues)})[ \t]*:"),
        relative=re.compile(rf"(?<!{_L})(?:{_alt(lex.relative_cues)})(?!{_L})"),
        # A colleague named without honorific ("Konsil durch Kollegen Schmitt") or a salutation.
        salutation=re.compile(rf"(?<!{_L})(?:{_alt((*lex.salutations, *lex.colleague_words))})(?!{_L})"),
        role=re.compile(rf"(?<!{_L})(?:{_alt(lex.roles)})(?!{_L})"),
        closing=re.compile(rf"(?:{_alt(lex.closings)})[ \t]*[,.]?"),
        colleague=re.compile(rf"[ \t]+(?:{_alt(lex.colleague_words)})(?!{_L})"),
        title_start=re.compile(rf"(?<![^\s(,;|/])(?:{_alt(lex.titles)})(?!{_L})"),
        postnominal=re.compile(rf"[ \t]*,?[ \t]*(?:{_alt(lex.postnominals)})(?!{_L})"),
        first_name=re.compile(rf"(?<![\w.-])(?:{_alt(lex.first_names)})(?!{_L}|[-'’.])"),
        birth=re.compile(rf"[ \t]*,?[ \t]*\(?[ \t]*(?:{_alt(lex.birth_cues)})(?:[ \t]*am)?[ \t:]*(?=\d)"),
        header_dob=re.compile(r"[ \t]*,[ \t]*(?=\d{1,2}[./]\d{1,2}[./]\d{2,4})"),
        id_cue=re.compile(
            rf"(?:(?<![\w-])(?:{_alt(short_id_cues)})|(?i:(?<![\w-])(?:{_alt(long_id_cues)})))"
            rf"\.?(?:[ \t]*(?:[.:#]|Nr\.?|No\.?|number|nummer))*[ \t]*(?P<value>{id_value})(?![\w])"
        ),
        ward=re.compile(
            rf"(?<!{_L})(?:{_alt(lex.ward_cues)})[ \t]+"
            r"(?P<value>(?:[A-Z]{1,3}-?\d{1,3}[A-Za-z]?|\d{1,3}[A-Z]{0,2}))(?![\w.,/]\w)"
        ),
        phone_cue=re.compile(
            rf"(?i:(?<!{_L})(?:{_alt(lex.phone_cues)}))\.?[ \t]*(?:[.:]|(?i:nr|no|nummer|number)\.?)?[ \t]*"
            r"(?P<value>\+?\(?\d[\d ()/-]{4,}\d)"
        ),
        phone_generic=re.compile(
            r"(?<![\w/.,:+-])(?!\d{1,2}[/.]\d{1,2}[/.]\d{2,4}(?!\d))"
            r"(?:\+\d{1,3}[ /-]?(?:\(0\)[ ]?)?\d{1,5}|\(?0\d{1,5}\)?)"
            r"(?:(?:[ ]?[/-][ ]?|[ ])?\d{2,}){1,4}"
            r"(?![\w/,]|\.\d)"
        ),
        phone_us=re.compile(r"(?<![\w/.-])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\w/]|\.\d)"),
        email=re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
        url=re.compile(r"(?i)(?<![\w@])(?:https?://|www\.)[^\s<>\"')\]]+"),
        long_number=re.compile(r"(?<![\w.,/-])\d{7,}(?![\w]|[.,]\d)"),
        alnum_id=re.compile(r"(?<![\w.-])(?:[A-Z]{1,4}-?\d{7,}|[A-Z]\d{9})(?![\w]|[.,]\d)"),
        date_iso=re.compile(r"(?<![\w.])(?P<y>(?:19|20)\d{2})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?![\w]|\.\d)"),
        date_dotted=re.compile(r"(?<![\w.,])(?P<d>\d{1,2})\.[ ]?(?P<m>\d{1,2})\.[ ]?(?P<y>\d{4}|\d{2})(?![\w]|[.,]\d)"),
        date_slashed=re.compile(r"(?<![\w./,])(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4}|\d{2})(?![\w]|[./]\d)"),
        date_month_year_num=re.compile(
            r"(?<![\w./,:-])(?P<m>0?[1-9]|1[0-2])(?P<sep>[/.])(?P<y>(?:19|20)\d{2}|\d{2})"
            r"(?![\w]|[./,:]\d|,[ ]?\d{3}(?!\d))"
        ),
        date_day_month_name=re.compile(
            rf"(?<![\w.])(?P<d>\d{{1,2}})(?:\.|st|nd|rd|th)?[ \t]*(?:of[ \t]+)?(?P<mon>{month_cap})\.?"
            rf"(?!{_L})(?:,?[ \t]*(?P<y>(?:19|20)\d{{2}})(?!\d))?"
        ),
        date_month_name_day=re.compile(
            rf"(?<!{_L})(?P<mon>{month_cap})\.?[ \t]+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?[ \t]+"
            rf"(?P<y>(?:19|20)\d{{2}})(?!\d)"
        ),
        date_month_name_year=re.compile(
            rf"(?<!{_L})(?P<mon>{month_cap})\.?,?[ \t]+(?P<y>(?:19|20)\d{{2}}|'\d{{2}})(?![\d.,]\d|\d)"
        ),
        date_short=re.compile(
            rf"(?:(?<!{_L})(?:{_alt(lex.date_cues)})[ \t]+)(?P<date>(?P<d>\d{{1,2}})\.(?P<m>\d{{1,2}})\.)"
            r"(?![\d]|\.\d)"
        ),
        date_short_range=re.compile(
            r"(?<![\w.,])(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.?"
            r"(?=[ \t]*(?:[-–]|bis|to|until)[ \t]*\d{1,2}\.\d{1,2}\.(?P<y2>\d{4}|\d{2}(?!\d))?)"
        ),
        date_day_range=re.compile(
            r"(?<![\w.,])(?P<d>\d{1,2})\.?"
            r"(?=[ \t]*[-–/][ \t]*\d{1,2}\.[ ]?(?P<m2>\d{1,2})\.[ ]?(?P<y2>\d{4}|\d{2})(?!\d))"
        ),
        date_year=re.compile(r"(?<![\w.,/:+-])(?P<y>19\d{2}|20\d{2})(?![\w]|[.,/:]\d)"),
        unit_after=unit_after,
        age_suffix=re.compile(
            r"(?<![\w.,])(?P<age>9\d|1[01]\d)"
            r"(?=[ \t]*-?[ \t]*(?:year|yr|y/o|y\.o\.|yo\b|jährig|Jahre|jähr|[jJ]\.|-J))"
        ),
        age_cue=re.compile(rf"(?<!{_L})(?:{_alt(lex.age_cues)})[ \t]*:?[ \t]*(?P<age>9\d|1[01]\d)(?![\w]|[.,]\d)"),
        street_de=re.compile(
            rf"(?<![\w-])(?P<street>[A-ZÄÖÜ][\w.-]*?(?:{_alt(lex.street_suffixes)}))[ \t]+"
            r"(?P<no>\d{1,4}[ \t]?(?:[a-g]|-\d{1,3})?)(?![\w]|[.,]\d)"
        ),
        street_words=re.compile(
            rf"(?<![\w-])(?:{cap}[ \t]+){{1,3}}(?:{_alt(lex.street_words)})(?!{_L})[ \t]+"
            r"\d{1,4}[a-g]?(?![\w]|[.,]\d)"
        ),
        street_en=re.compile(
            rf"(?<![\w.,/-])\d{{1,5}}[ \t]+(?:{cap}[ \t]+){{1,3}}(?:{_alt(lex.street_words)})(?!{_L})"
            r"(?:,?[ \t]*(?:Apt\.?|Suite|Unit|#)[ \t]*\w+)?"
        ),
        zip_city=re.compile(
            rf"(?<![\w.,/-])(?:(?:D|A|CH)-)?(?P<zip>\d{{4,5}})[ \t]+"
            rf"(?P<city>[A-ZÄÖÜ]{_L}+(?:[-][A-ZÄÖÜ]{_L}+)*"
            rf"(?:[ \t]+(?:(?:an[ \t]+der|am|im|bei|ob|in)[ \t]+)?[A-ZÄÖÜ]{_L}+)?)"
        ),
        us_city_state=re.compile(
            r"(?<![\w])(?P<city>[A-Z][a-z]+(?: [A-Z][a-z]+)?),[ \t]+"
            r"(?P<state>[A-Z]{2})[ \t]+(?P<zip>\d{5}(?:-\d{4})?)(?!\d)"
        ),
        institution_de=re.compile(
            rf"(?<![\w-])(?P<pre>(?:(?:St\.|Sankt|[A-ZÄÖÜ]{_L}+(?:-[A-ZÄÖÜ]{_L}+)*)[ \t]+){{0,2}})"
            rf"(?P<head>(?=[A-ZÄÖÜ])[\w-]*?(?i:{institution_stems})(?:en|s|e)?"
            rf"(?i:verbund|gesellschaft|zentrum|gruppe|verband|bereich)?)(?![\w-])"
            rf"(?P<tail>(?:[ \t]+(?:(?:der|des|am|an[ \t]+der|im|in|bei|zu|zum|zur|ob|vor[ \t]+der"
            rf"|auf[ \t]+der)[ \t]+)?"
            rf"(?:St\.|Sankt|Bad|{cap}|[A-ZÄÖÜ]{{2,}}))+)?"
        ),
        institution_en=re.compile(
            rf"(?<![\w-])(?P<pre>(?:(?:{cap}|St\.|Saint|of|the|and|&)[ \t]+){{1,5}})"
            rf"(?P<head>{_alt(lex.institution_heads_en)})(?!{_L})"
            rf"(?P<tail>[ \t]+of[ \t]+(?:the[ \t]+)?(?:{cap}[ \t]*){{1,4}})?"
        ),
        city=re.compile(rf"(?<![\w-])(?:{_alt(lex.cities)})(?![\w-])"),
        ambiguous_city=re.compile(
            rf"(?<![\w-])(?:(?:{_alt(lex.place_prepositions)})[ \t]+|\d{{4,5}}[ \t]+)"
            rf"(?P<city>{_alt(lex.ambiguous_cities)})(?![\w-])"
        ),
        address_cue_before=re.compile(rf"(?i:{_alt(lex.address_cues)})[ \t:]*(?:in[ \t]+)?$"),
        lymph_after=re.compile(
            r"[ \t]*(?:\)?[ \t]*(?:LK|Lk|Lymphknoten|lymph|nodes?|HPF|HPFs|Gesichtsfeld|befallen|positiv|"
            r"Punkte|points|Stanzen|cores|Biopsien))"
        ),
        node_before=re.compile(r"(?:\bp?y?c?N\d\w*|\bL\d|\bV\d|Zyklus|cycle|ECOG|Score|Kriterien)[ \t,]*\(?[ \t]*$"),
        ratio_context=re.compile(
            r"(?i:lymph|node|LK\b|metasta|positiv|befallen|carcinom|karzinom|tumou?r|stanz|core|biops|mitos|\+)"
        ),
        date_cue_before=re.compile(rf"(?<!{_L})(?:{_alt(lex.date_cues)}|in|im|seit|Juni|ED:?)[ \t]*\(?[ \t]*$"),
        edition_before=re.compile(
            rf"(?:{_alt(lex.edition_cues)})[^\n\d]{{0,16}}(?:\d{{1,2}}(?:st|nd|rd|th|\.)?[^\n\d]{{0,12}})?$"
        ),
        edition_after=re.compile(rf"[ \t,;)(]*(?:{_alt(lex.edition_cues)})(?!{_L})"),
        eponym_after=re.compile(rf"[ \t]+(?:{_alt(lex.eponym_followers)})(?!{_L})"),
    )


# --------------------------------------------------------------------------------------------------------
# What a "3/12" counts, written right before or after it: nodes, biopsy cores, positivity.
_COUNT_BEFORE = re.compile(
    r"(?i)(?:\bLK|lymph[ \t]*nodes?|nodes?|lymphknoten|lymphonod\w*|stanzen|stanzzylinder|cores?|biopsies|"
    r"positive|positiv|involved|befallen)[ \t]*[:=]?[ \t]*\(?[ \t]*$"
)
_COUNT_AFTER = re.compile(
    r"(?i)[ \t]*\)?[ \t]*(?:[a-zäöü-]+[ \t]+){0,2}?(?:LK\b|lymph|nodes?\b|lymphknoten|stanzen|stanzzylinder|cores?\b|"
    r"positive|positiv|involved|befallen|tumorbefallen|metastat)"
)

# IASLC thoracic lymph node stations: 1-14, optionally with side (R/L) or 3A/3P
_NODE_STATION = re.compile(r"(?:1[0-4]|[1-9])(?:[RLrl]|[AaPp])?")

# Candidates
# --------------------------------------------------------------------------------------------------------


# (field, value, start, end): a date field ("d", "m", "mon", "y") with its place inside the surface;
# start -1 marks a field read from the context (the other end of a range), not written in the surface.
_DateFields = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    kind: str
    # For dates: (day, month, year) as read, with None where the text leaves it out, and where each field
    # sits inside the surface, so a shift can be written back in the same format.
    date_fields: _DateFields = ()


def detect_language(text: str) -> Literal["en", "de"]:
    """Guess whether a clinical text is German or English from frequent function words."""
    sample = text[:20000].lower()
    de = len(re.findall(r"\b(?:der|die|das|und|mit|bei|nicht|wir|ist|eine?|vom|zur|zum|für|über|sich)\b", sample))
    en = len(re.findall(r"\b(?:the|and|with|was|were|of|is|for|on|this|patient|has|had|which)\b", sample))
    de += 3 * len(re.findall(r"[äöüß]", sample))
    return "de" if de > en else "en"


def _is_name_word(word: str, lex: DeidLexicon, allow_caps: bool = False) -> bool:
    """A capitalised word that may be (part of) a person's name."""
    if len(word) < 2 or not word[0].isupper():
        return False
    if word.isupper() and not (allow_caps and len(word) >= 3):
        return False
    base = word.rstrip(".")
    if base in lex.stopwords or base in lex.generic_unit_words or base.lower() in lex.month_lookup:
        return False
    lower = base.lower()
    return not (len(base) > 5 and lower.endswith(_NOUN_SUFFIXES))


# One blank between the parts of a name; a wider gap separates columns (two signatures side by side).
_PARTICLES = re.compile(r"[ \t](?:(?:von|van|de|der|den|zu|zur|da|di|del|dos|du|le|la|ten|ter|vom|van der)[ \t])*")
_LEADING_PARTICLE = re.compile(r"(?:von der|von dem|van der|van den|von|van|de|zu|du|da|di|del|della|le|la)[ \t]+")
_INITIAL = re.compile(r"[A-ZÄÖÜ]\.")
_BOUNDARY_AFTER = re.compile(r"(?:[ \t]*(?:[,;:)(\]|/]|$)|[ \t]*\n|[ \t]{2,}|\t|[ \t]+(?:und|and|u\.)[ \t])", re.M)


class _NameScanner:
    """Reads a person's name starting at a cue; titles before the name are not part of its span."""

    def __init__(self, text: str, lex: DeidLexicon, pats: _Patterns) -> None:
        self.text = text
        self.lex = lex
        self.pats = pats
        self._tokens: dict[tuple[int, bool], tuple[int, int, str] | None] = {}

    def skip_titles(self, pos: int, allow_newline: bool = False) -> tuple[int, bool, bool]:
        """Skip blanks and academic titles; says whether a title was seen and whether it was plural."""
        text = self.text
        seen = plural = False
        while True:
            p = pos
            while p < len(text) and (text[p] in " \t" or (allow_newline and text[p] in "\r\n")):
                p += 1
            m = self.pats.title.match(text, p)
            if not m:
                return p, seen, plural
            seen = True
            plural = plural or m.group(0) in self.lex.plural_titles
            pos = m.end()
            allow_newline = False

    def token(self, pos: int, allow_caps: bool = False) -> tuple[int, int, str] | None:
        """The name token at ``pos`` as (start, end, "initial" | "first" | "word"), or None."""
        key = (pos, allow_caps)
        if key not in self._tokens:
            self._tokens[key] = self._read_token(pos, allow_caps)
        return self._tokens[key]

    def _read_token(self, pos: int, allow_caps: bool) -> tuple[int, int, str] | None:
        text = self.text
        m = _INITIAL.match(text, pos)
        if m and (m.end() >= len(text) or not text[m.end()].isalpha()):
            return pos, m.end(), "initial"
        w = self.pats.word.match(text, pos)
        if not w:
            return None
        word = w.group(0)
        if word.endswith(("'s", "’s")):
            word = word[:-2]
        if not _is_name_word(word, self.lex, allow_caps):
            return None
        if self.pats.title.fullmatch(word) or self.pats.title.match(text, pos):
            return None
        kind = "first" if word in self.lex.first_names else "word"
        return pos, pos + len(word), kind

    def take(
        self, pos: int, *, allow_newline: bool = False, allow_caps: bool = False, comma_first: bool = False
    ) -> tuple[int, int] | None:
        """A name starting at ``pos`` (after optional titles): one to three tokens."""
        text = self.text
        p, titled, _ = self.skip_titles(pos, allow_newline)
        # Nobiliary particles open a surname ("Herr von Muster") and belong to the name.
        particle = _LEADING_PARTICLE.match(text, p)
        if particle and self.token(particle.end(), allow_caps) is not None:
            first = self.token(particle.end(), allow_caps)
            if first is not None:
                first = (p, first[1], first[2])
        else:
            first = self.token(p, allow_caps)
        # A capitalised word followed by a colon is a heading ("Patient Type:"), unless a title precedes it.
        if first is None or (not titled and text[first[1] : first[1] + 1] == ":"):
            return None
        tokens = [first]
        while len(tokens) < 3:
            last = tokens[-1]
            q = last[1]
            sep = _PARTICLES.match(text, q)
            if not sep:
                break
            nxt = self.token(sep.end(), allow_caps)
            if nxt is None:
                break
            boundary = _BOUNDARY_AFTER.match(text, nxt[1]) is not None
            if last[2] in ("initial", "first") or (len(tokens) == 1 and boundary):
                tokens.append(nxt)
                continue
            break
        start, end = tokens[0][0], tokens[-1][1]
        if comma_first:
            m = re.match(r",[ \t]*", text[end : end + 4])
            if m:
                nxt = self.token(end + m.end(), allow_caps)
                if nxt and _BOUNDARY_AFTER.match(text, nxt[1]) is not None:
                    end = nxt[1]
        return start, end

    def plural_partner(self, end: int) -> tuple[int, int] | None:
        """After "Drs. A", the surname joined by "und"/"and" is a second person."""
        m = re.match(r"[ \t]+(?:und|and|u\.|&)[ \t]+", self.text[end : end + 8])
        if not m:
            return None
        nxt = self.token(end + m.end())
        return (nxt[0], nxt[1]) if nxt else None


def _find_names(text: str, lex: DeidLexicon, pats: _Patterns) -> list[_Candidate]:
    scanner = _NameScanner(text, lex, pats)
    found: list[tuple[int, int]] = []

    def add(span: tuple[int, int] | None) -> None:
        """Record a non-empty name span."""
        if span and span[1] > span[0]:
            found.append(span)

    for m in pats.honorific.finditer(text):
        after = m.end()
        if not text[m.start() : after].endswith(".") and after < len(text) and text[after] == ".":
            after += 1
        # "Sehr geehrter Herr Kollege Muster": the colleague word sits between honorific and name.
        colleague = pats.colleague.match(text, after)
        if colleague:
            after = colleague.end()
        # In an address block the honorific stands alone on its line ("Herrn\nKarl Muster").
        alone = re.match(r"[ \t]*\r?\n", text[after : after + 4]) is not None
        add(scanner.take(after, allow_caps=True, allow_newline=alone))
    chain_end = -1
    for m in pats.title_start.finditer(text):
        if m.start() < chain_end:
            continue  # inside a chain of titles already read ("Prof. Dr. med.")
        chain_end, _, plural = scanner.skip_titles(m.start())
        span = scanner.take(m.start())
        add(span)
        if span and plural:
            add(scanner.plural_partner(span[1]))
    for m in pats.patient.finditer(text):
        add(scanner.take(m.end(), allow_newline=True, comma_first=bool(m.group("colon"))))
    for m in pats.label.finditer(text):
        add(scanner.take(m.end(), allow_newline=False, comma_first=True))
    for m in pats.relative.finditer(text):
        # "her daughter, Margaret," names the relative after a comma.
        after = m.end() + 1 if text[m.end() : m.end() + 1] == "," else m.end()
        add(scanner.take(after))
    for m in pats.role.finditer(text):
        add(scanner.take(m.end()))
    for m in pats.salutation.finditer(text):
        add(scanner.take(m.end()))
    covered = -1
    for m in pats.first_name.finditer(text):
        if m.start() < covered:
            continue
        span = scanner.take(m.start())
        if span and span[1] > m.end():
            add(span)
            covered = span[1]
        # "Muster, Anna" at the start of a line: surname first, as in forms and lists.
        line_begin = text.rfind("\n", 0, m.start()) + 1
        before = re.fullmatch(rf"[ \t]*({_WORD}),[ \t]*", text[line_begin : m.start()])
        if before and scanner.token(line_begin + before.start(1)) is not None:
            add((line_begin + before.start(1), m.end()))
    words = list(pats.word.finditer(text))
    found.extend(_names_before(text, words, scanner, pats.postnominal, pats))
    found.extend(_names_before(text, words, scanner, pats.birth, pats))
    found.extend(_names_before(text, words, scanner, pats.header_dob, pats, line_start=True))
    found.extend(_signature_names(text, scanner, lex, pats))
    cands = [_Candidate(s, e, "name") for s, e in found]
    return cands + _propagate_names(text, cands, lex)


def _names_before(
    text: str,
    words: list[re.Match[str]],
    scanner: _NameScanner,
    follower: re.Pattern[str],
    pats: _Patterns,
    line_start: bool = False,
) -> list[tuple[int, int]]:
    """Names written right before a marker such as a birth date ("Max Muster, * 1.2.1950") or a degree."""
    out: list[tuple[int, int]] = []
    for i, w in enumerate(words):
        if not text[w.start()].isupper() or not follower.match(text, w.end()) or scanner.token(w.start()) is None:
            continue
        keep = [w]
        j = i - 1
        while j >= 0 and len(keep) < 3:
            prev = words[j]
            gap = text[prev.end() : keep[0].start()]
            if not re.fullmatch(r"[ \t]+|\.[ \t]+", gap) or scanner.token(prev.start()) is None:
                break
            keep.insert(0, prev)
            j -= 1
        start = keep[0].start()
        if line_start:
            line_begin = text.rfind("\n", 0, start) + 1
            if text[line_begin:start].strip() or len(keep) < 2:
                continue
        elif len(keep) < 2 and follower is pats.postnominal:
            continue
        out.append((start, w.end()))
    return out


def _signature_names(text: str, scanner: _NameScanner, lex: DeidLexicon, pats: _Patterns) -> list[tuple[int, int]]:
    """Names on the lines after a closing formula: signature blocks carry names without any cue."""
    out: list[tuple[int, int]] = []
    for m in pats.closing.finditer(text):
        window_end = min(len(text), m.end() + 400)
        lines_seen = 0
        pos = m.end()
        while pos < window_end and lines_seen < 8:
            nl = text.find("\n", pos)
            line_end = window_end if nl < 0 or nl > window_end else nl
            line = text[pos:line_end]
            if line.strip():
                lines_seen += 1
                for seg in re.finditer(r"[^|\t\n]+?(?=[ ]{2,}|[|\t]|$)", line):
                    out.extend(_segment_names(pos + seg.start(), pos + seg.end(), scanner, pats))
            pos = line_end + 1
    return out


def _segment_names(start: int, end: int, scanner: _NameScanner, pats: _Patterns) -> list[tuple[int, int]]:
    """Names in one signature segment; the segment must hold nothing but roles, titles and names."""
    text = scanner.text
    names: list[tuple[int, int]] = []
    p = start
    while p < end:
        while p < end and text[p] in " \t,;()":
            p += 1
        if p >= end:
            break
        r = pats.role.match(text, p)
        if r:
            p = r.end()
            continue
        t = pats.title.match(text, p)
        if t:
            p = t.end()
            continue
        pn = pats.postnominal.match(text, p)
        if pn and pn.end() > p:
            p = pn.end()
            continue
        tok = scanner.token(p)
        if tok is None:
            return []
        name_start = p
        name_end = tok[1]
        count = 1
        while count < 3:
            sep = _PARTICLES.match(text, name_end)
            if not sep or sep.end() >= end:
                break
            nxt = scanner.token(sep.end())
            if nxt is None or nxt[1] > end:
                break
            name_end = nxt[1]
            count += 1
        names.append((name_start, name_end))
        p = name_end
    return names


def _propagate_names(text: str, cands: list[_Candidate], lex: DeidLexicon) -> list[_Candidate]:
    """Every other mention of a found name word ("Frau Muster" ... "Muster") is the same person."""
    words: set[str] = set()
    for c in cands:
        for w in re.findall(_WORD, text[c.start : c.end]):
            if len(w) >= 3 and w not in lex.stopwords:
                words.add(w)
    if not words:
        return []
    # An eponym after "Morbus" or before "-Demenz" names a disease, not the person.
    pattern = re.compile(rf"(?<![\w-])(?:{_alt(words)})(?![\w-])")
    out = []
    for m in pattern.finditer(text):
        before = text[max(0, m.start() - 8) : m.start()]
        if re.search(r"(?:Morbus|M\.|disease of|Mb\.)\s*$", before):
            continue
        if re.match(r"(?:'s|’s)?[ \t]+(?:disease|syndrome|Krankheit|Syndrom|Demenz|dementia)", text[m.end() :]):
            continue
        out.append(_Candidate(m.start(), m.end(), "name"))
    return out


def _find_institutions(text: str, lex: DeidLexicon, pats: _Patterns) -> list[_Candidate]:
    out: list[_Candidate] = []
    for m in pats.institution_de.finditer(text):
        named: list[str] = []
        # Words before the head: keep saints, adjectives ("Städtisches") and proper names ("Helios"),
        # drop everything before the last word that is none of these ("Im", "Verlegung").
        start = m.start("head")
        for w in reversed(list(re.finditer(r"\S+", m.group("pre")))):
            word = w.group(0)
            adjective = re.search(r"(?:isches|ische|isch|liches|iches|es|er)$", word) is not None
            if word in ("St.", "Sankt") or (
                _is_name_word(word, lex, allow_caps=True)
                and word not in lex.generic_unit_words
                and not word.lower().endswith(_DEPARTMENT_SUFFIXES)
            ):
                if not adjective and word not in ("St.", "Sankt"):
                    named.append(word)
                start = m.start("pre") + w.start()
            elif adjective and word[0].isupper() and word not in lex.stopwords:
                start = m.start("pre") + w.start()
            else:
                break
        head_parts = m.group("head").split("-")[:-1]
        named += [p for p in head_parts if _is_name_word(p, lex) and p not in lex.generic_unit_words]
        tail = m.group("tail") or ""
        if pats.title.match(tail.strip()):
            tail = ""
        end = m.end("head")
        for w in re.finditer(rf"{_WORD}|St\.", tail):
            word = w.group(0)
            if word[0].isupper() and (_is_name_word(word, lex, allow_caps=True) or word in lex.cities):
                named.append(word)
                # The name ends with its last proper word ("St. Peter im Walde", not "... zur Reha").
                end = m.start("tail") + w.end()
        if not named:
            continue
        while end > start and text[end - 1] in " \t":
            end -= 1
        out.append(_Candidate(start, end, "institution"))
    for m in pats.institution_en.finditer(text):
        start = m.start()
        # Drop leading connectors and function words ("At the", "of the") picked up before the name.
        for w in re.finditer(rf"{_WORD}\.?|&", m.group("pre")):
            word = w.group(0).rstrip(".")
            if word in ("of", "the", "and", "&") or word in lex.stopwords or word in lex.generic_unit_words:
                start = m.start() + w.end()
                continue
            break
        while start < m.end() and text[start] in " \t":
            start += 1
        pre_words = [w for w in re.findall(_WORD, text[start : m.start("head")]) if w[0].isupper()]
        tail_words = [w for w in re.findall(_WORD, m.group("tail") or "") if w[0].isupper()]
        named = [
            w
            for w in pre_words + tail_words
            if _is_name_word(w, lex, allow_caps=True)
            and not w.lower().endswith(_DEPARTMENT_SUFFIXES)
            and not (w.isupper() and len(w) > 4)
        ]
        if not named:
            continue
        end = m.end()
        while end > start and text[end - 1] in " \t":
            end -= 1
        out.append(_Candidate(start, end, "institution"))
    return out


def _find_addresses(text: str, lex: DeidLexicon, pats: _Patterns) -> list[_Candidate]:
    out: list[_Candidate] = []
    street_ends: list[int] = []
    for m in pats.street_de.finditer(text):
        street = m.group("street")
        # "Monitoring 2" is not a street: a -ring street ("Ostring") has a consonant before "ring".
        if street.lower().endswith("ring") and len(street) > 4 and street[-5].lower() in "aeiouäöü":
            continue
        if street in lex.stopwords:
            continue
        out.append(_Candidate(m.start(), m.end(), "address"))
        street_ends.append(m.end())
    for pat in (pats.street_words, pats.street_en):
        for m in pat.finditer(text):
            out.append(_Candidate(m.start(), m.end(), "address"))
            street_ends.append(m.end())
    city_set = set(lex.cities)
    for m in pats.zip_city.finditer(text):
        city = m.group("city")
        first_city_word = city.split()[0]
        before = text[max(0, m.start() - 60) : m.start()]
        after_street = any(0 <= m.start() - e <= 4 for e in street_ends)
        cued = pats.address_cue_before.search(before) is not None
        line_begin = text.rfind("\n", 0, m.start()) + 1
        at_line_start = not text[line_begin : m.start()].strip()
        known = first_city_word in city_set or city in city_set
        if first_city_word in lex.stopwords or first_city_word in lex.generic_unit_words:
            continue
        if not (after_street or cued or (known and len(m.group("zip")) >= 4) or (at_line_start and known)):
            continue
        out.append(_Candidate(m.start("zip"), m.end("zip"), "address"))
        out.append(_Candidate(m.start("city"), m.end("city"), "location"))
    for m in pats.us_city_state.finditer(text):
        out.append(_Candidate(m.start("city"), m.end("city"), "location"))
        out.append(_Candidate(m.start("state"), m.end("zip"), "address"))
    for m in pats.city.finditer(text):
        if pats.eponym_after.match(text, m.end()):
            continue
        out.append(_Candidate(m.start(), m.end(), "location"))
    for m in pats.ambiguous_city.finditer(text):
        out.append(_Candidate(m.start("city"), m.end("city"), "location"))
    return out


def _find_contacts_and_ids(text: str, lex: DeidLexicon, pats: _Patterns) -> list[_Candidate]:
    out: list[_Candidate] = []
    for m in pats.email.finditer(text) if "@" in text else ():
        out.append(_Candidate(m.start(), m.end(), "email"))
    lowered = text.lower()
    for m in pats.url.finditer(text) if ("www." in lowered or "http" in lowered) else ():
        end = m.end()
        while end > m.start() and text[end - 1] in ".,;:!?":
            end -= 1
        out.append(_Candidate(m.start(), end, "url"))
    public = tuple(lex.public_id_prefixes)
    for m in pats.id_cue.finditer(text):
        value = m.group("value")
        if not any(ch.isdigit() for ch in value) or value.startswith(public):
            continue
        out.append(_Candidate(m.start("value"), m.end("value"), "id"))
    for m in pats.ward.finditer(text):
        if pats.unit_after.match(text, m.end()):
            continue
        if _NODE_STATION.fullmatch(m.group("value")) and pats.ratio_context.search(
            text, max(0, m.start() - 80), min(len(text), m.end() + 80)
        ):
            # "Station 10R (EBUS) positive", "stations 7 and 4L": a thoracic lymph node station
            # beside node or tumour words, not a hospital ward
            continue
        out.append(_Candidate(m.start("value"), m.end("value"), "id"))
    phones: list[_Candidate] = []
    for m in pats.phone_cue.finditer(text):
        value = m.group("value").rstrip(" -/(")
        if sum(ch.isdigit() for ch in value) >= 6:
            phones.append(_Candidate(m.start("value"), m.start("value") + len(value), "phone"))
    for pat in (pats.phone_generic, pats.phone_us):
        for m in pat.finditer(text):
            if sum(ch.isdigit() for ch in m.group(0)) >= 7:
                phones.append(_Candidate(m.start(), m.end(), "phone"))
    out.extend(phones)
    for pat in (pats.long_number, pats.alnum_id):
        for m in pat.finditer(text):
            # The subscriber part of a phone number is not a record number.
            if any(p.start <= m.start() and m.end() <= p.end for p in phones):
                continue
            before = text[max(0, m.start() - 10) : m.start()]
            if m.group(0).startswith(public) or before.rstrip().endswith(public):
                continue
            out.append(_Candidate(m.start(), m.end(), "id"))
    return out


def _fields(m: re.Match[str], names: Iterable[str]) -> _DateFields:
    """(field, value, start, end) for each present group, positions relative to the match start."""
    out = []
    for name in names:
        if m.group(name) is None:
            continue
        raw = m.group(name)
        value = load_lexicon().month_lookup.get(raw.lower(), 0) if name == "mon" else int(raw.lstrip("'"))
        out.append((name, value, m.start(name) - m.start(), m.end(name) - m.start()))
    return tuple(out)


def _find_dates(text: str, lang: str, pats: _Patterns) -> list[_Candidate]:
    out: list[_Candidate] = []
    for m in pats.date_iso.finditer(text):
        out.append(_Candidate(m.start(), m.end(), "date", _fields(m, ("y", "m", "d"))))
    for m in pats.date_dotted.finditer(text):
        d, mo, y = int(m.group("d")), int(m.group("m")), m.group("y")
        if len(y) == 2 and (" " in m.group(0) or not (1 <= d <= 31 and 1 <= mo <= 12)):
            continue
        if not ((1 <= d <= 31 and 1 <= mo <= 12) or (1 <= mo <= 31 and 1 <= d <= 12)):
            continue
        out.append(_Candidate(m.start(), m.end(), "date", _fields(m, ("d", "m", "y"))))
    for m in pats.date_slashed.finditer(text):
        a, b = int(m.group("a")), int(m.group("b"))
        if not (1 <= a <= 31 and 1 <= b <= 31 and min(a, b) <= 12):
            continue
        month_first = lang == "en"
        if month_first and a > 12:
            month_first = False
        elif not month_first and b > 12:
            month_first = True
        fa, fb = ("m", "d") if month_first else ("d", "m")
        fields = (
            (fa, a, m.start("a") - m.start(), m.end("a") - m.start()),
            (fb, b, m.start("b") - m.start(), m.end("b") - m.start()),
            ("y", int(m.group("y")), m.start("y") - m.start(), m.end("y") - m.start()),
        )
        out.append(_Candidate(m.start(), m.end(), "date", fields))
    for m in pats.date_month_year_num.finditer(text):
        if m.group("sep") == "." and len(m.group("y")) == 2:
            continue  # "3.12" is a decimal number, not March 2012
        before = text[max(0, m.start() - 30) : m.start()]
        if pats.lymph_after.match(text, m.end()) or pats.node_before.search(before):
            continue
        if len(m.group("y")) == 2 and not pats.date_cue_before.search(before):
            # "LK 3/12", "2/24 periesophageal nodes positive", "4/12 Stanzen": counts next to what they
            # count are not dates, and shifting them would change the staging
            if _COUNT_BEFORE.search(text, max(0, m.start() - 30), m.start()) or _COUNT_AFTER.match(text, m.end()):
                continue
            # "(03/12)" after "lymph nodes" counts positive nodes: a ratio never has a numerator above
            # its denominator, so "(12/08)" stays a date.
            near = text[max(0, m.start() - 25) : m.start()]
            bracketed = before.rstrip().endswith("(") and text[m.end() : m.end() + 1] == ")"
            in_bracket = near.rfind("(") > near.rfind(")")
            ratio_words = (in_bracket or bracketed) and pats.ratio_context.search(near) is not None
            if int(m.group("m")) <= int(m.group("y")) and (bracketed or ratio_words):
                continue
        if pats.unit_after.match(text, m.end()):
            continue
        out.append(_Candidate(m.start(), m.end(), "date", _fields(m, ("m", "y"))))
    for m in pats.date_day_month_name.finditer(text):
        d = int(m.group("d"))
        if not 1 <= d <= 31:
            continue
        mon = m.group("mon")
        if len(mon) <= 4 and not m.group("y") and not text[m.start() : m.end()].find(".") > 0:
            continue  # "3 Mar" without a year or day dot is too weak
        out.append(_Candidate(m.start(), m.end(), "date", _fields(m, ("d", "mon", "y"))))
    for m in pats.date_month_name_day.finditer(text):
        out.append(_Candidate(m.start(), m.end(), "date", _fields(m, ("mon", "d", "y"))))
    for m in pats.date_month_name_year.finditer(text):
        out.append(_Candidate(m.start(), m.end(), "date", _fields(m, ("mon", "y"))))
    for m in pats.date_short.finditer(text):
        d, mo = int(m.group("d")), int(m.group("m"))
        if 1 <= d <= 31 and 1 <= mo <= 12:
            out.append(_Candidate(m.start("date"), m.end("date"), "date", _shifted_fields(m, "date", ("d", "m"))))
    for m in pats.date_short_range.finditer(text):
        d, mo = int(m.group("d")), int(m.group("m"))
        if 1 <= d <= 31 and 1 <= mo <= 12:
            # The year of a range's end date also dates its start ("2.11. - 24.11.2028").
            year_context: _DateFields = (("y", int(m.group("y2")), -1, -1),) if m.group("y2") else ()
            out.append(_Candidate(m.start(), m.end(), "date", _fields(m, ("d", "m")) + year_context))
    for m in pats.date_day_range.finditer(text):
        if 1 <= int(m.group("d")) <= 31:
            # "(13. - 24.10.2023)": the day takes month and year from the end of the range.
            range_context: _DateFields = (
                ("m", int(m.group("m2")), -1, -1),
                ("y", int(m.group("y2")), -1, -1),
            )
            out.append(_Candidate(m.start(), m.end(), "date", _fields(m, ("d",)) + range_context))
    for m in pats.date_year.finditer(text):
        if pats.unit_after.match(text, m.end()):
            continue
        before = text[max(0, m.start() - 40) : m.start()]
        if pats.edition_before.search(before) or pats.edition_after.match(text, m.end()):
            continue
        out.append(_Candidate(m.start(), m.end(), "date", _fields(m, ("y",))))
    return out


def _shifted_fields(m: re.Match[str], outer: str, names: Iterable[str]) -> _DateFields:
    base = m.start(outer)
    return tuple((n, int(m.group(n)), m.start(n) - base, m.end(n) - base) for n in names if m.group(n) is not None)


def _find_ages(text: str, pats: _Patterns) -> list[_Candidate]:
    out: list[_Candidate] = []
    for m in pats.age_suffix.finditer(text):
        out.append(_Candidate(m.start("age"), m.end("age"), "age"))
    for m in pats.age_cue.finditer(text):
        if pats.unit_after.match(text, m.end()):
            continue
        out.append(_Candidate(m.start("age"), m.end("age"), "age"))
    return out


def _resolve(cands: list[_Candidate]) -> list[_Candidate]:
    """Keep non-overlapping findings: higher priority first, then the longer span."""
    ordered = sorted(cands, key=lambda c: (-_PRIORITY[c.kind], -(c.end - c.start), c.start))
    starts: list[int] = []  # sorted starts of the kept, mutually disjoint spans
    ends: list[int] = []
    taken: list[_Candidate] = []
    for c in ordered:
        if c.end <= c.start:
            continue
        i = bisect.bisect_left(starts, c.end)
        # Only the kept span starting last before c.end can overlap, since kept spans are disjoint.
        if i > 0 and ends[i - 1] > c.start:
            continue
        starts.insert(i, c.start)
        ends.insert(i, c.end)
        taken.append(c)
    return sorted(taken, key=lambda c: c.start)


def find_phi(text: str, *, lang: str | None = None) -> list[tuple[int, int, str]]:
    """PHI spans in ``text`` as (start, end, kind), non-overlapping and ordered by start."""
    return [(c.start, c.end, c.kind) for c in _find_candidates(text, lang)]


def _find_candidates(text: str, lang: str | None) -> list[_Candidate]:
    if not text:
        return []
    language = lang if lang in ("en", "de") else detect_language(text)
    lex = load_lexicon()
    pats = _patterns()
    cands: list[_Candidate] = []
    cands += _find_contacts_and_ids(text, lex, pats)
    cands += _find_dates(text, language, pats)
    cands += _find_ages(text, pats)
    cands += _find_addresses(text, lex, pats)
    cands += _find_institutions(text, lex, pats)
    cands += _find_names(text, lex, pats)
    return _resolve(cands)


# --------------------------------------------------------------------------------------------------------
# Pseudonymisation
# --------------------------------------------------------------------------------------------------------

_TAG = re.compile(r"^\[([A-Z]+)-(\d+)\]$")
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class Pseudonymizer:
    """Holds the surface-to-pseudonym mapping of a case and the secret key behind deterministic pseudonyms.

    The same surface always gets the same replacement from one instance. Dates are shifted by a number
    of days derived from the key (one to two years into the past, so even a bare year changes); intervals
    between dates are kept and the same key always gives the same shift. ``mapping()`` exposes the
    mapping for encrypted storage; a stored mapping can be handed back to the constructor to continue a
    case.
    """

    def __init__(
        self,
        key: bytes | None = None,
        *,
        date_mode: DateMode = "shift",
        mapping: Mapping[str, str] | None = None,
    ) -> None:
        """Create a pseudonymizer; without a key a random 32-byte key is drawn."""
        self._key = key if key is not None else secrets.token_bytes(32)
        if len(self._key) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 bytes")
        self.date_mode: DateMode = date_mode
        self._by_key: dict[tuple[str, str], str] = {}
        self._surface: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        for surface, replacement in (mapping or {}).items():
            self._surface[surface] = replacement
            tag = _TAG.match(replacement)
            if tag:
                kind = tag.group(1).lower()
                self._by_key[(kind, _normalise(surface))] = replacement
                self._counters[kind] = max(self._counters.get(kind, 0), int(tag.group(2)))

    @property
    def date_shift_days(self) -> int:
        """Days added to every date (negative: into the past); fixed by the key."""
        digest = hmac.new(self._key, b"oncoboard-date-shift", hashlib.sha256).digest()
        return -(365 + int.from_bytes(digest[:4], "big") % 366)

    def mapping(self) -> dict[str, str]:
        """A copy of the surface -> replacement mapping collected so far."""
        return dict(self._surface)

    def pseudonymous_case_id(self, patient_id: str | None) -> str:
        """A case id "P-<keyed hash of the patient id>-<random code>"; never contains the id itself.

        The hash part is stable for one patient under one key, so a patient's cases can be linked by
        whoever holds the key; the random part makes every case id unique. Without a patient id the
        hash part is random too.
        """
        if patient_id and patient_id.strip():
            norm = re.sub(r"\s+", "", patient_id).upper().encode("utf-8", "surrogatepass")
            stem = hmac.new(self._key, b"oncoboard-patient:" + norm, hashlib.sha256).hexdigest()[:10]
        else:
            stem = secrets.token_hex(5)
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(6))
        return f"P-{stem}-{code}"

    def _tag(self, kind: str, surface: str) -> str:
        norm = _normalise(surface)
        existing = self._by_key.get((kind, norm))
        if existing is not None:
            return existing
        if kind == "name" and " " not in norm:
            # A lone surname reuses the pseudonym of the full name it belongs to.
            for (k, other), rep in self._by_key.items():
                if k == "name" and other.split(" ")[-1] == norm:
                    self._by_key[(kind, norm)] = rep
                    return rep
        count = self._counters.get(kind, 0) + 1
        self._counters[kind] = count
        rep = f"[{kind.upper()}-{count}]"
        self._by_key[(kind, norm)] = rep
        return rep

    def replace(self, kind: str, surface: str, date_fields: _DateFields = ()) -> str:
        """The replacement for one finding, recorded in the mapping."""
        if surface in self._surface:
            return self._surface[surface]
        if kind == "age":
            rep = "90+"
        elif kind == "date":
            shifted = self._shift_date(surface, date_fields) if self.date_mode == "shift" else None
            rep = shifted if shifted is not None else self._tag("date", surface)
        else:
            rep = self._tag(kind, surface)
        self._surface[surface] = rep
        return rep

    def _shift_date(self, surface: str, fields: _DateFields) -> str | None:
        """The date moved by the key's shift and written in its original format; None when unreadable."""
        values = {name: value for name, value, _, _ in fields}
        if not values:
            return None
        if "m" not in values and "mon" in values:
            values["m"] = values["mon"]
        year = values.get("y")
        if year is not None and year < 100:
            year += 2000 if year <= 50 else 1900
        month = values.get("m")
        day = values.get("d")
        if month is not None and not 1 <= month <= 12:
            if day is not None and 1 <= day <= 12 and 1 <= month <= 31:
                month, day = day, month
                values["m"], values["d"] = month, day
                fields = tuple((("d" if n == "m" else "m" if n == "d" else n), v, s, e) for n, v, s, e in fields)
            else:
                return None
        # Missing parts are read as the middle of the period so the shift moves it by the right amount;
        # 2000 is a leap year, so "29.2." without a year stays valid.
        try:
            base = date(year if year is not None else 2000, month or 7, day or (15 if month else 2))
            new = base + timedelta(days=self.date_shift_days)
        except (ValueError, OverflowError):
            return None
        # Zero-padding follows the surface: "2.11." stays unpadded, "02.11.2021" and "24.11.28" padded.
        padded = not any(n in ("d", "m") and s >= 0 and e - s == 1 for n, _, s, e in fields)
        pieces = []
        last = 0
        for name, _, start, end in sorted(fields, key=lambda f: f[2]):
            if start < 0:
                continue  # read from the context, not written in this surface
            raw = surface[start:end]
            pieces.append(surface[last:start])
            if name == "d":
                pieces.append(f"{new.day:02d}" if padded else str(new.day))
            elif name == "m":
                pieces.append(f"{new.month:02d}" if padded else str(new.month))
            elif name == "mon":
                pieces.append(_month_like(new.month, raw))
            elif name == "y":
                if raw.startswith("'"):
                    pieces.append(f"'{new.year % 100:02d}")
                elif len(raw) <= 2:
                    pieces.append(f"{new.year % 100:02d}")
                else:
                    pieces.append(str(new.year))
            last = end
        pieces.append(surface[last:])
        return "".join(pieces)


def _month_like(month: int, raw: str) -> str:
    """The new month's name in the same spelling column (English/German, full/abbreviated) as ``raw``."""
    lex = load_lexicon()
    old = lex.month_lookup.get(raw.lower())
    if old is None:
        return raw
    columns = lex.months[old]
    fallback = "en_abbr" if len(raw) <= 4 else "en"
    column = next((c for c, s in columns.items() if s.lower() == raw.lower()), fallback)
    return lex.months[month].get(column, lex.months[month]["en"])


def _normalise(surface: str) -> str:
    return re.sub(r"\s+", " ", surface.replace(".", " ")).strip().casefold()


# --------------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------------


def deidentify(text: str, *, lang: str | None = None, pseudonymizer: Pseudonymizer | None = None) -> DeidResult:
    """Find PHI in an English or German clinical text and replace it with consistent pseudonyms.

    ``lang`` ("en" or "de") decides how day/month order is read in slashed dates; None detects it.
    Offsets of the returned spans refer to the input text. Clinical content (drugs, TNM, lab values,
    codes, genes, ages up to 89) is left as it is.
    """
    if not isinstance(text, str):
        raise TypeError("deidentify expects a str")
    language: Literal["en", "de"] = lang if lang in ("en", "de") else detect_language(text)  # type: ignore[assignment]
    pseudo = pseudonymizer if pseudonymizer is not None else Pseudonymizer()
    cands = _find_candidates(text, language)
    spans: list[PhiSpan] = []
    pieces: list[str] = []
    last = 0
    for c in cands:
        surface = text[c.start : c.end]
        replacement = pseudo.replace(c.kind, surface, c.date_fields)
        spans.append(
            PhiSpan(start=c.start, end=c.end, kind=c.kind, surface=surface, replacement=replacement)  # type: ignore[arg-type]
        )
        pieces.append(text[last : c.start])
        pieces.append(replacement)
        last = c.end
    pieces.append(text[last:])
    logger.debug("de-identified %d characters, %d spans", len(text), len(spans))
    return DeidResult(text="".join(pieces), spans=spans, language=language)


def extract_patient_id(text: str) -> str | None:
    """The patient's record number (MRN, Patienten-ID, Fallnummer, ...) named in the text, if any.

    Patient-level labels win over case-level ones, following the order of ``patient_id_cues``.
    """
    if not text:
        return None
    lex = load_lexicon()
    best: tuple[int, int, str] | None = None
    rank = {c.lower(): i for i, c in enumerate(lex.patient_id_cues)}
    for m in _patterns().id_cue.finditer(text):
        value = m.group("value")
        if not any(ch.isdigit() for ch in value) or value.startswith(lex.public_id_prefixes):
            continue
        label = text[m.start() : m.start("value")]
        label_key = re.sub(r"[\s.:#]+$", "", label).strip()
        label_key = re.sub(r"[ \t]*(?:Nr\.?|No\.?|number|nummer)$", "", label_key, flags=re.I).strip()
        r = rank.get(label_key.lower())
        if r is None:
            r = next((i for c, i in rank.items() if label.lower().startswith(c)), len(rank))
        if best is None or (r, m.start()) < (best[0], best[1]):
            best = (r, m.start(), value.strip())
    return best[2] if best else None
