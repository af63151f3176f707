"""Parse stated TNM categories (``pT2 pN1 M0``, ``ypT2N1``, ``pT 2 N 1``) out of free text.

Pathology reports state TNM in many shapes: compact (``T3N1M0``), spaced with per-category
prefixes (``pT3 pN1a (2/14) cM0``), spread over a synoptic form (``Primary Tumor (pT): pT2 ...
Regional Lymph Nodes (pN): pN0``) and damaged by OCR (``pNO``, ``MO``, ``pT 2``). The parser
reads them all and returns the categories without prefix; the prefix is kept separately.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

Prefix = Literal["c", "p", "yp"]

_PREFIX = r"(?P<{name}>yp|yc|rp|p|P|c|u|y|r|a)?"
# OCR often reads the digit 0 as the letter O; it is accepted and normalised.
# ... and the digit 1 as l, I or i (``pTla``, ``Tia``); ``Tis`` is tried first so it keeps its meaning.
_T_BODY = (
    r"\s?T\s?(?P<t>is|IS|Is|[Xx]|a|(?:[0-4O]|[lI]|i(?=[a-d]))(?:mi|[a-dA-D](?:[1-3](?![0-9]))?)?)"
    r"(?P<tmult>\s?\((?:m|\d{1,2})\))?"
)
_N_BODY = (
    r"\s?N\s?(?P<n>[Xx]|(?:[0-3O]|l)(?:mi|[a-cA-C])?)"
    r"(?P<nsub>\s?\((?:i\+|i-|mol\+|mol-|sn|f)\))?"
    r"(?P<ratio>\s?\(?\s?\d{1,3}\s?/\s?\d{1,3}\s?\)?)?"
)
_M_BODY = r"\s?M\s?(?P<m>[Xx]|[01O](?:[a-dA-D])?)(?P<msub>\s?\(i\+\))?"
_END = r"(?=$|[^A-Za-z0-9]|[NMLVRGP])"
_SEP = r"[\s,;.:/-]{0,4}"

_T_RE = re.compile(r"(?<![A-Za-z0-9])" + _PREFIX.format(name="tpre") + _T_BODY + _END)
_N_RE = re.compile(r"(?<![A-Za-z0-9])" + _PREFIX.format(name="npre") + _N_BODY + _END)
_M_RE = re.compile(r"(?<![A-Za-z0-9])" + _PREFIX.format(name="mpre") + _M_BODY + _END)
# Continuations right after a T (or N) token: the look-behind is dropped so that ``T2N0M0`` works.
_N_CONT = re.compile(_SEP + _PREFIX.format(name="npre") + _N_BODY + _END)
_M_CONT = re.compile(_SEP + _PREFIX.format(name="mpre") + _M_BODY + _END)
_EXTRA_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<key>Pn|L|V|R|G)\s?(?P<val>[0-4O]|[Xx])(?![A-Za-z0-9])",
)
_RATIO_RE = re.compile(r"(\d{1,3})\s?/\s?(\d{1,3})")
_CONTEXT_RE = re.compile(
    r"stag|tnm|patholog|clinical|primary tumou?r|regional lymph|distant metasta|categor|"
    r"classif|ajcc|uicc|befund|klassifikation",
    re.IGNORECASE,
)
_CONTEXT_WINDOW = 40
_EXTRAS_WINDOW = 40
_AXIS_WINDOW = 15


class ParsedTNM(BaseModel):
    """TNM categories stated in a text, without prefix (``T2a``, ``N1mi``, ``M0``, ``Tis``, ``TX``)."""

    model_config = ConfigDict(frozen=True)

    prefix: Prefix | None = Field(default=None, description="c, p or yp; taken from T, else N.")
    t: str | None = Field(default=None, description="T category without prefix.")
    n: str | None = Field(default=None, description="N category without prefix.")
    m: str | None = Field(default=None, description="M category without prefix.")
    t_prefix: str | None = Field(default=None, description="Prefix written on the T category.")
    n_prefix: str | None = Field(default=None, description="Prefix written on the N category.")
    m_prefix: str | None = Field(default=None, description="Prefix written on the M category.")
    nodes_positive: int | None = Field(default=None, description="Involved nodes from '(2/14)'.")
    nodes_examined: int | None = Field(default=None, description="Examined nodes from '(2/14)'.")
    extras: dict[str, str] = Field(
        default_factory=dict, description="L, V, Pn, R, G, multiplicity, itc as written, e.g. {'L': 'L0'}."
    )
    text: str | None = Field(default=None, description="The stretch of text the categories came from.")

    @property
    def empty(self) -> bool:
        """True when no T, N or M category was found."""
        return self.t is None and self.n is None and self.m is None

    def render(self) -> str:
        """The categories as one line, e.g. ``pT2a pN1 cM0``."""
        parts: list[str] = []
        for value, pre in ((self.t, self.t_prefix), (self.n, self.n_prefix), (self.m, self.m_prefix)):
            if value:
                parts.append(f"{pre or ''}{value}")
        return " ".join(parts)


@dataclass(frozen=True)
class _Token:
    axis: Literal["t", "n", "m"]
    value: str
    prefix: str | None
    start: int
    end: int
    in_cluster: bool
    ocr_misread: bool
    ratio: tuple[int, int] | None = None
    sub: str | None = None


def _norm_prefix(raw: str | None) -> str | None:
    if not raw:
        return None
    raw = raw.lower()
    # u (endosonography, "uT3 uN1") is a clinical classification
    return {"p": "p", "c": "c", "u": "c", "yp": "yp", "y": "yp", "yc": "yc", "rp": "rp", "r": "r", "a": "a"}[raw]


def _norm_category(axis: str, raw: str) -> tuple[str, bool]:
    """Normalise a category body: ``2a`` -> ``T2a``, ``is`` -> ``Tis``, ``x`` -> ``TX``, ``la`` -> ``T1a``.

    The flag says the body was read through an OCR misreading (O for 0; l, I or i for 1).
    """
    if raw.lower() == "is":
        return "Tis", False
    ocr_misread = raw[:1] in ("O", "l", "I", "i")
    body = {"O": "0", "l": "1", "I": "1", "i": "1"}.get(raw[:1], raw[:1]) + raw[1:]
    if body.lower() == "is":
        return "Tis", ocr_misread
    if body in ("x", "X"):
        return f"{axis.upper()}X", ocr_misread
    if body == "a":
        return "Ta", ocr_misread
    head, tail = body[0], body[1:]
    if tail != "mi":
        tail = tail[:1].lower() + tail[1:]
    return f"{axis.upper()}{head}{tail}", ocr_misread


def _ratio(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    match = _RATIO_RE.search(raw)
    if match is None:
        return None
    positive, examined = int(match.group(1)), int(match.group(2))
    if examined == 0 or positive > examined:
        return None
    return positive, examined


def _n_token(match: re.Match[str], in_cluster: bool) -> _Token:
    value, ocr = _norm_category("n", match.group("n"))
    sub = match.group("nsub")
    return _Token(
        "n",
        value,
        _norm_prefix(match.group("npre")),
        match.start("n") - 1,
        match.end(),
        in_cluster,
        ocr,
        ratio=_ratio(match.group("ratio")),
        sub=sub.strip().strip("()") if sub else None,
    )


def _m_token(match: re.Match[str], in_cluster: bool) -> _Token:
    value, ocr = _norm_category("m", match.group("m"))
    return _Token("m", value, _norm_prefix(match.group("mpre")), match.start("m") - 1, match.end(), in_cluster, ocr)


def _tokens(text: str) -> list[_Token]:
    """All T, N and M tokens; N/M tokens glued to a preceding token are marked as cluster members."""
    tokens: list[_Token] = []
    covered: set[int] = set()
    for t_match in _T_RE.finditer(text):
        value, ocr = _norm_category("t", t_match.group("t"))
        t_prefix = t_match.group("tpre")
        if t_prefix == "P" and re.match(r"PT\s", t_match.group(0)):
            # "PT 2" in notes is more often physical therapy than a pT category: treat it as unprefixed.
            t_prefix = None
        mult = t_match.group("tmult")
        members: list[_Token] = []
        pos = t_match.end()
        n_match = _N_CONT.match(text, pos)
        if n_match:
            members.append(_n_token(n_match, True))
            pos = n_match.end()
        m_match = _M_CONT.match(text, pos)
        if m_match:
            members.append(_m_token(m_match, True))
        t_token = _Token(
            "t",
            value,
            _norm_prefix(t_prefix),
            t_match.start(),
            t_match.end(),
            bool(members),
            ocr,
            sub=mult.strip().strip("()") if mult else None,
        )
        tokens.append(t_token)
        tokens.extend(members)
        for token in (t_token, *members):
            covered.update(range(token.start, token.end))
    for n_match in _N_RE.finditer(text):
        if n_match.start("n") in covered:
            continue
        token = _n_token(n_match, False)
        m_match = _M_CONT.match(text, n_match.end())
        if m_match and m_match.start("m") not in covered:
            m_token = _m_token(m_match, True)
            token = replace(token, in_cluster=True)
            tokens.append(m_token)
            covered.update(range(m_token.start, m_token.end))
        tokens.append(token)
        covered.update(range(token.start, token.end))
    for m_match in _M_RE.finditer(text):
        if m_match.start("m") in covered:
            continue
        tokens.append(_m_token(m_match, False))
    return sorted(tokens, key=lambda tok: tok.start)


def _has_context(text: str, start: int) -> bool:
    return _CONTEXT_RE.search(text, max(0, start - _CONTEXT_WINDOW), start) is not None


def _accepted(token: _Token, text: str) -> bool:
    """A token counts when it carries a prefix, sits in a T-N-M cluster, or follows staging words.

    Bare ``T2``/``N1``/``M1`` occur in unrelated senses (MRI weighting, nerve roots, macrophages),
    so they need support; OCR misreadings (``NO``, ``MO``, ``Tl``) need a prefix, a cluster or
    their axis letter just before them.
    """
    if token.prefix in ("p", "c", "yp", "yc", "rp"):
        return True
    if token.in_cluster:
        return True
    if token.ocr_misread:
        # ``Clinical M. MO`` or ``(pN): NO``: the axis letter itself just before the token vouches for it.
        window = text[max(0, token.start - _AXIS_WINDOW) : token.start]
        return re.search(rf"\b[pc]?{token.axis.upper()}\b\)?[\s.:]*$", window) is not None
    if token.value in ("Ta",):
        return False
    return _has_context(text, token.start)


def _rank(token: _Token) -> int:
    """Pathological (and post-therapy) statements win over clinical ones, as the latest staging."""
    if token.prefix in ("p", "yp", "rp"):
        return 3
    if token.axis == "m" and token.prefix == "c":
        return 2
    if token.in_cluster:
        return 2
    return 1


def parse_tnm(text: str) -> ParsedTNM:
    """Parse stated TNM categories from a short string or a whole report.

    Returns categories without prefix (``T2a``, ``N1``, ``M0``) and the prefix separately
    (``p``, ``c``, ``yp``); extras (``L0``, ``V1``, ``Pn0``, ``R0``, ``G2``, ``(m)``, node ratio
    ``(2/14)``) are returned when written next to the categories. When a text states both a
    clinical and a pathological category, the pathological one is returned.
    """
    if not text:
        return ParsedTNM()
    chosen: dict[str, _Token] = {}
    for token in _tokens(text):
        if not _accepted(token, text):
            continue
        best = chosen.get(token.axis)
        if best is None or _rank(token) > _rank(best):
            chosen[token.axis] = token
    if not chosen:
        return ParsedTNM()
    t_tok, n_tok, m_tok = chosen.get("t"), chosen.get("n"), chosen.get("m")
    raw_prefix = (t_tok.prefix if t_tok else None) or (n_tok.prefix if n_tok else None)
    prefix: Prefix | None = None
    if raw_prefix in ("p", "c", "yp"):
        prefix = raw_prefix  # type: ignore[assignment]
    elif raw_prefix == "rp":
        prefix = "p"
    elif raw_prefix == "yc":
        prefix = "c"
    start = min(tok.start for tok in chosen.values())
    end = max(tok.end for tok in chosen.values())
    extras: dict[str, str] = {}
    for match in _EXTRA_RE.finditer(text, start, min(len(text), end + _EXTRAS_WINDOW)):
        key, val = match.group("key"), match.group("val").upper().replace("O", "0")
        extras.setdefault(key, f"{key}{val}")
    if raw_prefix in ("r", "a", "yc", "rp"):
        extras["prefix_written"] = raw_prefix
    if t_tok and t_tok.sub:
        extras["multiplicity"] = t_tok.sub
    if n_tok and n_tok.sub:
        extras["n_suffix"] = n_tok.sub
    ratio = n_tok.ratio if n_tok else None
    parsed = ParsedTNM(
        prefix=prefix,
        t=t_tok.value if t_tok else None,
        n=n_tok.value if n_tok else None,
        m=m_tok.value if m_tok else None,
        t_prefix=t_tok.prefix if t_tok else None,
        n_prefix=n_tok.prefix if n_tok else None,
        m_prefix=m_tok.prefix if m_tok else None,
        nodes_positive=ratio[0] if ratio else None,
        nodes_examined=ratio[1] if ratio else None,
        extras=extras,
        text=text[start:end],
    )
    logger.debug("parsed TNM %s from %r", parsed.render(), parsed.text)
    return parsed


_SINGLE_RE = re.compile(r"^\s*(?P<pre>yp|yc|p|P|c|y|r|a)?\s?(?P<axis>[TNMtnm])\s?(?P<body>\S+?)\s*\.?$")


def strip_prefix(category: str | None) -> tuple[str | None, str | None]:
    """Split one category such as ``pT2a`` into (``p``, ``T2a``); ``T2a`` gives (None, ``T2a``).

    A value that is not a single category is returned unchanged with no prefix.
    """
    if category is None or not category.strip():
        return None, None
    match = _SINGLE_RE.match(category)
    if match is None:
        return None, category.strip()
    axis = match.group("axis").lower()
    body = re.sub(r"\(.*\)$", "", match.group("body"))
    if body[:1] in "O0" and len(body) <= 2 or body[:1].isdigit() or body.lower() in ("is", "x", "a"):
        value, _ = _norm_category(axis, body)
    else:
        return None, category.strip()
    return _norm_prefix(match.group("pre")), value
