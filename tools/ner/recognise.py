"""Entry point for disease-mention recognition: method selection and cached loading of recognisers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol, TextIO

from oncoboard.knowledge import knowledge_path, load_table
from tools.ner.pubtator import PubtatorDoc

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("lexicon", "model", "ensemble")
METHODS_TABLE = "ner/methods.yaml"
ARTIFACT_DIR = "ner/minilm_lora"


class Recognizer(Protocol):
    """Anything that fills disease mentions into PubTator records."""

    def recognise(self, docs: Sequence[PubtatorDoc]) -> list[PubtatorDoc]:
        """Records with their mentions replaced by predictions."""
        ...


def best_method() -> str:
    """The method the shipped dev measurements found best (``knowledge/ner/methods.yaml``)."""
    best = str(load_table(METHODS_TABLE)["best"])
    if best not in METHODS:
        raise ValueError(f"{METHODS_TABLE}: unknown best method {best!r}")
    return best


def artifact_dir() -> Path:
    """Folder of the shipped LoRA adapter and head."""
    return knowledge_path(ARTIFACT_DIR)


@lru_cache(maxsize=4)
def get_recognizer(method: str) -> Recognizer:
    """Build (once per process) the recogniser for ``method``; ``"best"`` resolves via the methods table."""
    name = best_method() if method == "best" else method
    if name == "lexicon":
        from tools.ner.lexicon import LexiconRecognizer

        return LexiconRecognizer.from_knowledge()
    if name in {"model", "ensemble"}:
        from tools.ner.model import DiseaseTagger

        table = load_table(METHODS_TABLE)
        tagger = DiseaseTagger.load(
            artifact_dir(), inside_bias=float(table.get("decoding", {}).get("inside_bias", 0.0))
        )
        if name == "model":
            return tagger
        from tools.ner.ensemble import EnsembleRecognizer
        from tools.ner.lexicon import LexiconRecognizer

        options = table.get("ensemble_options", {})
        return EnsembleRecognizer(tagger, LexiconRecognizer.from_knowledge(), **options)
    raise ValueError(f"unknown NER method {method!r}; choose one of {('best', *METHODS)}")


def recognise(docs: Sequence[PubtatorDoc], method: str = "best") -> list[PubtatorDoc]:
    """Disease mentions for each record (existing annotations are replaced), by ``method``."""
    recognizer = get_recognizer(method)
    logger.info("recognising disease mentions in %d records with %s", len(docs), method)
    return recognizer.recognise(docs)


def run_ner(in_path: str | Path, stream: TextIO, method: str = "best") -> int:
    """``oncoboard ner IN.pubtator``: tag the records of ``in_path`` and write them to ``stream``.

    Returns the number of mentions written.
    """
    from tools.ner.pubtator import read_pubtator, write_pubtator

    tagged = recognise(read_pubtator(in_path), method=method)
    write_pubtator(tagged, stream)
    return sum(len(d.mentions) for d in tagged)
