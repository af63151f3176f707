"""Base model versus LoRA adapters on held-out instruction items.

Each reply is parsed for its first JSON value and compared with the expected answer:
- tagging tasks (any task named ``ner_*``): the mention lists are compared as multisets (case and blanks
  normalised); exact match = identical multisets; precision/recall/F1 over mentions;
- object tasks (``tnm``, ``extraction``, ``icd10``): field by field; exact match = every expected
  field equal; precision/recall/F1 over the non-null fields.
A reply without parseable JSON scores zero (and counts against ``parse_rate``).

The German cross-lingual effect is the difference on German items between an adapter trained
with the German instructions and one trained without them.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oncoboard.llm.instructions import InstructionItem, load_instructions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemScore:
    """How one reply compares with the expected answer."""

    id: str
    task: str
    lang: str
    parsed: bool
    exact: bool
    tp: int
    fp: int
    fn: int
    reply: str


def first_json_value(text: str) -> Any | None:
    """The first JSON array or object in ``text`` (replies may wrap it in prose or code fences)."""
    decoder = json.JSONDecoder()
    for index, ch in enumerate(text):
        if ch in "[{":
            try:
                value, _ = decoder.raw_decode(text, index)
            except json.JSONDecodeError:
                continue
            return value
    return None


def _norm(value: Any) -> str:
    return " ".join(str(value).lower().split())


def score_reply(item: InstructionItem, reply: str) -> ItemScore:
    """Score one reply against the item's expected JSON answer."""
    gold = json.loads(item.answer)
    pred = first_json_value(reply)
    if item.task.startswith("ner_"):
        gold_set = Counter(_norm(m) for m in gold)
        ok = isinstance(pred, list)
        pred_set = (
            Counter(_norm(m) for m in pred if isinstance(m, str | int | float)) if isinstance(pred, list) else Counter()
        )
        tp = sum((gold_set & pred_set).values())
        return ItemScore(
            item.id,
            item.task,
            item.lang,
            ok,
            ok and gold_set == pred_set,
            tp,
            sum(pred_set.values()) - tp,
            sum(gold_set.values()) - tp,
            reply,
        )
    ok = isinstance(pred, dict)
    pred_map: dict[str, Any] = dict(pred) if isinstance(pred, dict) else {}
    tp = fp = fn = 0
    for key, expected in gold.items():
        got = pred_map.get(key)
        if expected is not None and got is not None and _norm(got) == _norm(expected):
            tp += 1
            continue
        if expected is not None:
            fn += 1
        if got is not None:
            fp += 1
    exact = ok and all(
        (pred_map.get(k) is None and v is None) or (v is not None and _norm(pred_map.get(k)) == _norm(v))
        for k, v in gold.items()
    )
    return ItemScore(item.id, item.task, item.lang, ok, exact, tp, fp, fn, reply)


def summarise(scores: Sequence[ItemScore]) -> dict[str, dict[str, float]]:
    """Per ``task/lang`` (and ``all``): items, exact match, precision, recall, F1 and parse rate."""
    groups: dict[str, list[ItemScore]] = defaultdict(list)
    for s in scores:
        groups[f"{s.task}/{s.lang}"].append(s)
        groups["all"].append(s)
    out: dict[str, dict[str, float]] = {}
    for key in sorted(groups):
        group = groups[key]
        tp, fp, fn = (sum(getattr(s, f) for s in group) for f in ("tp", "fp", "fn"))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[key] = {
            "items": len(group),
            "exact_match": round(sum(s.exact for s in group) / len(group), 4),
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "parse_rate": round(sum(s.parsed for s in group) / len(group), 4),
        }
    return out


def generate_batch(llm: Any, items: Sequence[InstructionItem], *, max_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy replies for ``items`` from a :class:`TransformersModel`, several prompts per forward pass.

    Prompts are rendered with the tokenizer's chat template exactly as the backend renders them
    and padded on the left, so each reply equals what ``llm.generate`` returns for the item alone
    (up to floating-point ties).
    """
    import torch

    from oncoboard.llm.finetune import render_prompt

    tokenizer = llm.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    replies: list[str] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        encoded = [
            tokenizer(render_prompt(tokenizer, [t.model_dump() for t in it.prompt]))["input_ids"] for it in chunk
        ]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        with torch.inference_mode():
            out = llm.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=pad_id,
            )
        for row in range(len(chunk)):
            replies.append(str(tokenizer.decode(out[row, width:], skip_special_tokens=True)).strip())
    return replies


def select_items(
    items: Sequence[InstructionItem], *, per_group: int | None = None, langs: set[str] | None = None
) -> list[InstructionItem]:
    """At most ``per_group`` items per task/language (file order), optionally only some languages."""
    seen: Counter[tuple[str, str]] = Counter()
    chosen: list[InstructionItem] = []
    for item in items:
        if langs is not None and item.lang not in langs:
            continue
        key = (item.task, item.lang)
        if per_group is not None and seen[key] >= per_group:
            continue
        seen[key] += 1
        chosen.append(item)
    return chosen


def evaluate_model(
    model_dir: Path,
    adapter_dir: Path | None,
    items: Sequence[InstructionItem],
    *,
    max_tokens: int = 48,
    batch_size: int = 8,
    threads: int = 2,
) -> dict[str, Any]:
    """Scores of one model (with or without an adapter) on ``items``, with per-item replies."""
    from oncoboard.llm.transformers_backend import TransformersModel

    llm = TransformersModel(model_dir, adapter_dir, threads=threads)
    started = time.perf_counter()
    replies = generate_batch(llm, items, max_tokens=max_tokens, batch_size=batch_size)
    scores = [score_reply(it, r) for it, r in zip(items, replies, strict=True)]
    return {
        "model": llm.describe,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summarise(scores),
        "replies": [{"id": s.id, "exact": s.exact, "reply": s.reply} for s in scores],
    }


def compare_adapters(
    model_dir: Path,
    heldout: Path,
    adapters: Mapping[str, Path],
    *,
    per_group: int | None = 10,
    german_only: Sequence[str] = (),
    max_tokens: int = 48,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Base model and each adapter on the held-out items; adapters named in ``german_only`` see German items only.

    The result holds one summary per model and, when both ``with_de`` and ``without_de`` adapters
    are given, the German cross-lingual effect (F1 and exact-match differences per German group).
    """
    items = select_items(load_instructions(heldout), per_group=per_group)
    results: dict[str, Any] = {"heldout": str(heldout), "per_group": per_group, "models": {}}
    results["models"]["base"] = evaluate_model(model_dir, None, items, max_tokens=max_tokens, batch_size=batch_size)
    for name, path in adapters.items():
        subset = [it for it in items if it.lang == "de"] if name in german_only else items
        results["models"][name] = evaluate_model(model_dir, path, subset, max_tokens=max_tokens, batch_size=batch_size)
        logger.info("%s: %s", name, results["models"][name]["summary"].get("all"))
    models = results["models"]
    if "with_de" in models and "without_de" in models:
        results["german_effect"] = german_effect(models["with_de"]["summary"], models["without_de"]["summary"])
    return results


def german_effect(
    with_de: Mapping[str, Mapping[str, float]], without_de: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """Per German group: F1 and exact match of the adapter trained with German items minus the one without."""
    effect: dict[str, dict[str, float]] = {}
    for key, with_scores in with_de.items():
        without = without_de.get(key)
        if key.endswith("/de") and without:
            effect[key] = {
                "f1_with_de": with_scores["f1"],
                "f1_without_de": without["f1"],
                "f1_delta": round(with_scores["f1"] - without["f1"], 4),
                "exact_with_de": with_scores["exact_match"],
                "exact_without_de": without["exact_match"],
                "exact_delta": round(with_scores["exact_match"] - without["exact_match"], 4),
            }
    return effect
