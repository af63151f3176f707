"""Numbers and measurements as clinical text writes them (``2.6 cm``, ``26 mm``, ``6,2 cm``,
``3.1 x 2.4 x 2.0 cm``, ``4.2, 2.1 and 1.5 cm``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBER = r"\d{1,4}(?:[.,]\d{1,3})?"
_NUM_RE = re.compile(NUMBER)
_UNIT = r"(?P<unit>(?i:cm|mm))"
# a dimension chain: "3.1 x 2.4 x 2.0 cm" or "3.1 cm x 2.4 cm"; the largest dimension is the size
_DIMS = re.compile(
    rf"(?<![\w.,])(?P<body>{NUMBER}(?:\s*(?i:cm|mm))?(?:\s*[x×X\*]\s*{NUMBER}(?:\s*(?i:cm|mm))?){{0,3}})\s*{_UNIT}(?![\w²³])"
)
# a list of lesions sharing one unit: "4.2, 2.1 and 1.5 cm", "3,1 und 2,0 cm"
_LIST = re.compile(rf"(?<![\w.,])(?P<body>{NUMBER}(?:\s*(?:,|;|and|und|/|&)\s*{NUMBER})+)\s*{_UNIT}(?![\w²³])")


@dataclass(frozen=True, slots=True)
class SizeHit:
    """One measurement: its span, the sizes it gives in cm, and whether it lists several lesions."""

    start: int
    end: int
    text: str
    sizes_cm: tuple[float, ...]
    is_list: bool

    @property
    def largest_cm(self) -> float:
        """The largest dimension in cm."""
        return max(self.sizes_cm)


def parse_number(raw: str) -> float | None:
    """A decimal number written with a point or a German decimal comma; None if it is not one."""
    cleaned = raw.strip().replace(" ", "")
    if not cleaned:
        return None
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        return None


def _to_cm(value: float, unit: str) -> float:
    return round(value / 10.0 if unit.lower() == "mm" else value, 2)


def find_sizes(text: str) -> list[SizeHit]:
    """All tumour-like measurements in cm or mm, in text order."""
    hits: list[SizeHit] = []
    taken: set[int] = set()
    for m in _LIST.finditer(text):
        unit = m.group("unit")
        parsed = [parse_number(n) for n in _NUM_RE.findall(m.group("body"))]
        sizes = tuple(_to_cm(v, unit) for v in parsed if v is not None and v > 0)
        if len(sizes) > 1:
            hits.append(SizeHit(m.start(), m.end(), m.group(0), sizes, True))
            taken.update(range(m.start(), m.end()))
    for m in _DIMS.finditer(text):
        if m.start() in taken or (m.end() - 1) in taken:
            continue
        unit = m.group("unit")
        body = m.group("body")
        # a unit written after an inner dimension applies to that dimension ("3 cm x 25 mm")
        dims: list[float] = []
        for part in re.split(r"[x×X\*]", body):
            num = _NUM_RE.search(part)
            if not num:
                continue
            value = parse_number(num.group(0))
            if value is None:
                continue
            inner = re.search(r"(?i)(cm|mm)", part)
            dims.append(_to_cm(value, inner.group(1) if inner else unit))
        dims = [v for v in dims if v > 0]
        if dims:
            hits.append(SizeHit(m.start(), m.end(), m.group(0), (max(dims),), False))
    hits.sort(key=lambda h: h.start)
    return hits
