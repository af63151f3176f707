"""Intake: validate the case, detect its language, de-identify it and give it a pseudonymous id."""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from functools import lru_cache
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from agents.base import ConsultContext, run_settings
from graphs.state import Intake
from oncoboard.deid import Pseudonymizer, deidentify, extract_patient_id
from oncoboard.domain import CaseInput, Language
from oncoboard.knowledge import load_table
from oncoboard.lang import detect_language

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


class InputRejected(ValueError):
    """The case cannot be consulted; the message is the one-line reason."""


@lru_cache(maxsize=1)
def _screening() -> tuple[dict[str, frozenset[str]], float, int, tuple[re.Pattern[str], ...]]:
    table = load_table("intake/screening.yaml")
    words = {lang: frozenset(w.lower() for w in ws) for lang, ws in table["function_words"].items()}
    patterns = tuple(re.compile(p, re.IGNORECASE) for p in table["injection_patterns"])
    return words, float(table["min_supported_share"]), int(table["min_words_for_check"]), patterns


def validate_text(text: object, max_bytes: int) -> str:
    """The text if it can be consulted; raises :class:`InputRejected` with a one-line reason otherwise."""
    if not isinstance(text, str):
        raise InputRejected("case text must be a string")
    if len(text.encode("utf-8", errors="surrogatepass")) > max_bytes:
        raise InputRejected(f"case text is larger than the limit of {max_bytes} bytes")
    if not text.strip():
        raise InputRejected("case text is empty")
    if "\x00" in text:
        raise InputRejected("case text contains binary data (NUL bytes)")
    controls = sum(1 for ch in text if unicodedata.category(ch) in {"Cc", "Cs", "Co"} and ch not in "\n\r\t\f")
    if controls > max(8, len(text) // 100):
        raise InputRejected("case text looks binary (too many control characters)")
    if not _WORD.search(text):
        raise InputRejected("case text contains no words")
    return text


def check_language(text: str) -> None:
    """Refuse a text written in a language other than English or German."""
    words, min_share, min_words, _ = _screening()
    tokens = [t.lower() for t in _WORD.findall(text[:20000])]
    if len(tokens) < min_words:
        return
    hits = {lang: sum(1 for t in tokens if t in ws) for lang, ws in words.items()}
    total = sum(hits.values())
    if total == 0:
        return
    supported = max(hits["en"], hits["de"])
    best_other = max((n for lang, n in hits.items() if lang not in {"en", "de"}), default=0)
    if supported / total < min_share and best_other > 2 * supported:
        raise InputRejected("case text is not in a supported language (English or German)")


def injection_findings(text: str) -> list[str]:
    """Review reasons for instructions embedded in the note."""
    *_, patterns = _screening()
    found = []
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            found.append(f"possible instruction inside the case text ignored: '{match.group(0)}'")
    return found


def intake(state: dict, runtime: Runtime[ConsultContext]) -> Command[Literal["extractor", "report"]]:
    """Validate, detect language, de-identify; refused cases go straight to the report."""
    case: CaseInput = state["case"]
    settings = run_settings(runtime)
    requested = case.lang if case.lang != "auto" else settings.language
    try:
        text = validate_text(case.text, settings.max_text_bytes)
        if requested in {"en", "de"}:
            language: Language = requested  # type: ignore[assignment]
        else:
            check_language(text)
            language = detect_language(text)
    except InputRejected as exc:
        case_id = Pseudonymizer().pseudonymous_case_id(None)
        fallback: Language = requested if requested in {"en", "de"} else "en"  # type: ignore[assignment]
        update = Intake(case_id=case_id, language=fallback, text="", accepted=False, error=str(exc))
        return Command(update={"intake": update}, goto="report")
    patient_id = extract_patient_id(text)
    key = runtime.context.pseudonym_key if runtime is not None and runtime.context is not None else None
    pseudonymizer = Pseudonymizer(key)
    started = time.perf_counter()
    result = deidentify(text, lang=language, pseudonymizer=pseudonymizer)
    recorder = runtime.context.recorder if runtime is not None and runtime.context is not None else None
    if recorder is not None:
        # The raw text never enters the trace: only what de-identification did.
        kinds: dict[str, int] = {}
        for span in result.spans:
            kinds[span.kind] = kinds.get(span.kind, 0) + 1
        recorder.tool("deidentify", {"chars": len(text), "lang": language}, {"phi_spans": kinds}, started)
    sink = runtime.context.phi_sink if runtime is not None and runtime.context is not None else None
    if sink is not None:
        sink["mapping"] = pseudonymizer.mapping()
    reasons = injection_findings(text)
    update = Intake(
        case_id=pseudonymizer.pseudonymous_case_id(patient_id),
        language=language,
        text=result.text,
        accepted=True,
        review_reasons=tuple(reasons),
        phi_spans=len(result.spans),
    )
    return Command(update={"intake": update}, goto="extractor")
