"""Disease-mention recognition suite: exact-span precision, recall and F1 on a PubTator file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tools.ner import evaluate, read_pubtator, recognise

logger = logging.getLogger(__name__)

# BC5CDR also annotates chemicals; only its disease mentions are the task here.
_BC5CDR_TYPES = ["Disease"]


def evaluate_ner(path: str | Path, method: str = "best", types: list[str] | None = None) -> dict[str, object]:
    """Run ``method`` over the records in ``path`` and score it against their gold annotations.

    Gold types default to every annotation, except for files under a ``bc5cdr`` folder, where only
    ``Disease`` annotations count. Returns counts, precision, recall, F1, record count and seconds.
    """
    path = Path(path)
    if types is None and "bc5cdr" in path.parts:
        types = _BC5CDR_TYPES
    gold = read_pubtator(path, types)
    started = time.perf_counter()
    pred = recognise(gold, method=method)
    seconds = time.perf_counter() - started
    result: dict[str, object] = {"data": str(path), "method": method, "records": len(gold)}
    result.update(evaluate(gold, pred).as_dict())
    result["seconds"] = round(seconds, 2)
    logger.info("NER %s on %s: F1 %.4f", method, path, result["f1"])
    return result
